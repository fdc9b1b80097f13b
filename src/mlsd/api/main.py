"""The HTTP app: one FastAPI app for every system, with health, readiness and metrics.

The book's serving chapter asks for a prediction service that answers within a latency budget,
can swap models without downtime and is observable. :func:`create_app` builds one app from a list
of :class:`~mlsd.api.deps.ServedSystem` (one router per system under ``/v1/<system>/...``, from
``mlsd.api.routes.<package>``), with ``/healthz`` (the process is alive), ``/readyz`` (every
system's model is loaded) and ``/metrics`` (Prometheus text format). Every bad request becomes a
JSON ``{"error": ...}`` with a 4xx status, never a 500.
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
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp

from mlsd.api.deps import ApiError, ServedSystem, validation_message
from mlsd.api.metrics import MetricsMiddleware, ServingMetrics
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

    async def invalid_request(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        errors = list(exc.errors())
        detail = [
            {"loc": list(e.get("loc", ())), "msg": str(e.get("msg", "")), "type": e.get("type")}
            for e in errors
        ]
        return JSONResponse({"error": validation_message(errors), "detail": detail}, 422)

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
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        # the server drops the connection after an unhandled error: tell the client not to reuse it
        return JSONResponse(
            {"error": "internal server error"}, status_code=500, headers={"connection": "close"}
        )

    app.add_exception_handler(ApiError, api_error)
    app.add_exception_handler(RequestValidationError, invalid_request)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(Exception, internal_error)


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
        description="Machine Learning System Design Interview, served: one router per system.",
    )
    metrics = ServingMetrics()
    app.state.settings = settings
    app.state.metrics = metrics
    app.state.systems = tuple(systems)
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    _install_error_handlers(app)

    @app.get("/healthz", tags=["ops"])
    def healthz() -> dict[str, str]:
        """The process is alive (it says nothing about models)."""
        return {"status": "ok"}

    @app.get("/readyz", tags=["ops"], response_model=None)
    def readyz() -> JSONResponse:
        """200 once every system's model is loaded, 503 before."""
        states = {s.name: bool(s.ready()) for s in systems}
        ready = all(states.values())
        body = {"status": "ready" if ready else "not ready", "systems": states}
        return JSONResponse(body, status_code=200 if ready else 503)

    @app.get("/metrics", tags=["ops"], response_model=None)
    def prometheus_metrics() -> Response:
        """Prometheus text exposition of this app's registry."""
        return Response(metrics.render(), media_type=CONTENT_TYPE_LATEST)

    for system in systems:
        app.include_router(system.router)
    log.info("app built with systems %s", names)
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
