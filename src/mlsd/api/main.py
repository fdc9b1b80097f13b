"""The HTTP app: one FastAPI app for every system, with health, readiness and metrics.

The book's serving chapter asks for a prediction service that answers within a latency budget,
can swap models without downtime and is observable. :func:`create_app` builds one app from a list
of :class:`~mlsd.api.deps.ServedSystem` (one router per system under ``/v1/<system>/...``, from
``mlsd.api.routes.<package>``), with ``/healthz`` (the process is alive), ``/readyz`` (every
system's model is loaded) and ``/metrics`` (Prometheus text format). Every bad request becomes a
JSON ``{"error": ...}`` with a 4xx status, never a 500.

Hardening, in the order a request meets it: the metrics middleware (bounded labels, an access
log with hashed ids), the API-key middleware (401 before the body is read; see
:mod:`mlsd.api.guard`), the body limit (``Settings.max_body_bytes``, a 413 before the body is
parsed; a route may set its own, as visual search's upload does), then the hot routes (a
system's per-request scoring route, answered without FastAPI's per-request machinery; see
:mod:`mlsd.api.hot`), then the route. The OpenAPI document declares every answer
(:mod:`mlsd.api.openapi`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from importlib import metadata

import uvicorn
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp

from mlsd.api.deps import ApiError, ServedSystem, validation_answer
from mlsd.api.guard import API_KEY_HEADER, ApiKeyMiddleware, BodyLimitMiddleware
from mlsd.api.hot import HotRouteMiddleware
from mlsd.api.metrics import UNMATCHED, IdHasher, MetricsMiddleware, ServingMetrics
from mlsd.api.openapi import install_openapi
from mlsd.settings import Settings

log = logging.getLogger(__name__)


def _package_version() -> str:
    try:
        return metadata.version("mlsd")
    except metadata.PackageNotFoundError:  # pragma: no cover - running from a bare checkout
        return "0.0.0"


def _install_error_handlers(app: FastAPI) -> None:
    async def api_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ApiError)
        return JSONResponse({"error": exc.message}, status_code=exc.status_code)

    async def invalid_request(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        if isinstance(exc.body, bytes | bytearray):  # a JSON route got a body it did not parse
            ctype = request.headers.get("content-type") or "missing"
            return JSONResponse({"error": f"content type {ctype!r}: send application/json"}, 415)
        return JSONResponse(validation_answer(list(exc.errors())), 422)

    async def http_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        if exc.status_code == 404:
            message = f"not found: {request.method} {request.url.path}"
        elif exc.status_code == 405:
            message = f"method {request.method} not allowed on {request.url.path}"
        else:
            message = str(exc.detail)
        return JSONResponse({"error": message}, exc.status_code, headers=exc.headers)

    async def internal_error(request: Request, exc: Exception) -> JSONResponse:
        route = getattr(request.scope.get("route"), "path", UNMATCHED)  # never the raw path: ids
        log.exception("unhandled error on %s %s", request.method, route)
        # the server drops the connection after an unhandled error: tell the client not to reuse it
        return JSONResponse(
            {"error": "internal server error"}, status_code=500, headers={"connection": "close"}
        )

    app.add_exception_handler(ApiError, api_error)
    app.add_exception_handler(RequestValidationError, invalid_request)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(Exception, internal_error)


class Readiness(BaseModel):
    """``/readyz``: ``ready`` once every system's model is loaded, and each system's state."""

    status: str
    systems: dict[str, bool]


def create_app(settings: Settings, systems: Sequence[ServedSystem]) -> FastAPI:
    """One FastAPI app serving ``systems``, with ``/healthz``, ``/readyz``, ``/metrics``, ``/docs``.

    ``settings`` is read once by the caller (the CLI) and passed down; it is kept on
    ``app.state.settings`` for handlers that need it.
    """
    names = [s.name for s in systems]
    if len(set(names)) != len(names):
        raise ValueError(f"served system names must be unique, got {names}")
    app = FastAPI(
        title="mlsd",
        version=_package_version(),
        description="Machine Learning System Design Interview, served: one router per system. "
        + (
            f"Every route but /healthz and /readyz needs an API key in the {API_KEY_HEADER} "
            "header; the reloads need an admin key."
            if settings.api_keys
            else "No API keys are configured (MLSD_API_KEYS): every route is open."
        ),
    )
    metrics = ServingMetrics()
    app.state.settings = settings
    app.state.metrics = metrics
    app.state.systems = tuple(systems)
    # the last added runs first: metrics (sees every answer, 401s included), the API keys, the
    # body limit, the hot routes
    for system in systems:
        app.include_router(system.router)
    hot_routes = [route for s in systems for route in s.hot_routes]
    if hot_routes:
        app.add_middleware(
            HotRouteMiddleware,
            routes=hot_routes,
            observe=metrics.observe_predictions,
            app_routes=app.router.routes,
        )
    body_limits = {path: limit for s in systems for path, limit in s.body_limits.items()}
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes, per_path=body_limits)
    app.add_middleware(ApiKeyMiddleware, keys=settings.api_keys)
    app.add_middleware(
        MetricsMiddleware,
        metrics=metrics,
        routes=app.router.routes,
        hasher=IdHasher(settings.log_id_salt),
    )
    _install_error_handlers(app)

    @app.get("/healthz", tags=["ops"])
    def healthz() -> dict[str, str]:
        """The process is alive (it says nothing about models). Needs no API key."""
        return {"status": "ok"}

    @app.get(
        "/readyz",
        tags=["ops"],
        response_model=Readiness,
        responses={503: {"model": Readiness, "description": "A system's model is not loaded."}},
    )
    def readyz() -> JSONResponse:
        """200 once every system's model is loaded, 503 before. Needs no API key."""
        states = {s.name: bool(s.ready()) for s in systems}
        ready = all(states.values())
        body = {"status": "ready" if ready else "not ready", "systems": states}
        return JSONResponse(body, status_code=200 if ready else 503)

    @app.get("/metrics", tags=["ops"], response_class=PlainTextResponse)
    def prometheus_metrics() -> Response:
        """Prometheus text exposition of this app's registry."""
        return Response(metrics.render(), media_type=CONTENT_TYPE_LATEST)

    install_openapi(app, api_keys_configured=bool(settings.api_keys))
    if settings.api_keys:
        log.info("app built with systems %s; API keys required", names)
    else:
        log.warning(
            "app built with systems %s and NO API keys: every route, reloads included, is open "
            "to anyone who can reach it; set MLSD_API_KEYS (e.g. 'key1:admin,key2:read')",
            names,
        )
    return app


@contextmanager
def background_server(
    app: ASGIApp, host: str = "127.0.0.1", port: int = 0, timeout_s: float = 10.0
) -> Iterator[str]:
    """Serve ``app`` with uvicorn in a daemon thread; yield its base URL; stop it on exit.

    ``port=0`` lets the kernel pick a free port (no probe-then-bind race). For tests, benchmarks
    and notebooks; production runs ``uvicorn`` in the foreground (``mlsd serve``).
    """
    config = uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="mlsd-uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout_s
    try:
        while not server.started:
            if not thread.is_alive():
                raise RuntimeError(f"uvicorn exited before it started on {host}:{port}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"uvicorn did not start on {host}:{port} within {timeout_s} s")
            time.sleep(0.01)
        bound_port = server.servers[0].sockets[0].getsockname()[1]
        yield f"http://{host}:{bound_port}"
    finally:
        server.should_exit = True
        thread.join(timeout=timeout_s)
