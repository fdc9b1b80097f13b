"""Step 6 of the book, serving: one FastAPI app for every system, with health and metrics.

The book's serving chapter asks for a prediction service that answers within a latency budget,
can swap models without downtime and is observable. This module gives every system that frame:

* :func:`create_app` builds one app from a list of :class:`ServedSystem` (one router per system
  under ``/v1/<system>/...``), with ``/healthz`` (the process is alive), ``/readyz`` (every
  system's model is loaded) and ``/metrics`` (Prometheus text format);
* :class:`ModelSlot` holds a served model and swaps it atomically on reload;
* :class:`ApiError` and the handlers turn every bad request into a JSON ``{"error": ...}`` with a
  4xx status, never a 500;
* request counts, latencies and the distribution of predicted probabilities go to a per-app
  Prometheus registry (step 7, monitoring, reads them).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Annotated, Any, Generic, TypeVar

import numpy as np
import uvicorn
from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mlsd.settings import Settings

log = logging.getLogger(__name__)

T = TypeVar("T")

#: Latency buckets in seconds, dense between 0.5 ms and 100 ms where scoring latencies live.
LATENCY_BUCKETS = (
    0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.05, 0.075, 0.1,
    0.25, 0.5, 1.0, 2.5,
)  # fmt: skip
#: Buckets of predicted probabilities: click-through rates are small, so dense near zero.
PROBABILITY_BUCKETS = (
    0.001, 0.002, 0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1.0,
)  # fmt: skip

PredictionObserver = Callable[[str, np.ndarray], None]


class ServingArtifactError(ValueError):
    """A serving artifact of a run directory is missing or unreadable; the message names the
    file. The CLI and the reload endpoints turn it into a clear error, never a crash."""


def read_artifact_json(path: Path) -> Any:
    """A JSON artifact of a run directory, or :class:`ServingArtifactError` naming the file."""
    if not path.is_file():
        raise ServingArtifactError(f"{path}: serving artifact missing (was the run completed?)")
    try:
        return json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ServingArtifactError(f"{path}: unreadable serving artifact: {exc}") from exc


class ApiError(Exception):
    """A client error (or a model not loaded yet), answered as ``{"error": message}``."""

    def __init__(self, status_code: int, message: str) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.message = message


class ModelSlot(Generic[T]):
    """Holds the object a system serves; readers never see a half-loaded replacement.

    The new object is fully built before :meth:`swap` is called, and the swap is one assignment
    under a lock, so a request either gets the old model or the new one (book ch. 1, step 6:
    deploying a new model without downtime).
    """

    def __init__(self, value: T | None = None) -> None:
        self._lock = threading.Lock()
        self._value = value
        self._version = 0 if value is None else 1

    @property
    def ready(self) -> bool:
        return self._value is not None

    @property
    def version(self) -> int:
        """How many objects have been placed in the slot (0 while empty)."""
        return self._version

    def get(self) -> T:
        """The served object; an :class:`ApiError` 503 while none is loaded."""
        value = self._value
        if value is None:
            raise ApiError(503, "model not loaded yet")
        return value

    def swap(self, new: T) -> T | None:
        """Serve ``new`` from now on and return the object it replaces."""
        with self._lock:
            old, self._value = self._value, new
            self._version += 1
        return old


@dataclass(frozen=True)
class ServedSystem:
    """What a system hands to :func:`create_app`: its name, its router and its readiness."""

    name: str
    router: APIRouter
    ready: Callable[[], bool]


class ServingMetrics:
    """The Prometheus series of one app, on its own registry (many apps can share a process)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self.requests = Counter(
            "mlsd_requests",
            "HTTP requests served, by route template, method and status code.",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "mlsd_request_latency_seconds",
            "Wall time from request start to response end, by route template.",
            ["route"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.predictions = Histogram(
            "mlsd_predictions",
            "Predicted probabilities served, by system (watched for drift in step 7).",
            ["system"],
            buckets=PROBABILITY_BUCKETS,
            registry=self.registry,
        )

    def observe_predictions(self, system: str, values: np.ndarray | Sequence[float]) -> None:
        """Record every predicted probability of one response."""
        hist = self.predictions.labels(system=system)
        for value in np.asarray(values, dtype=np.float64).ravel():
            hist.observe(float(value))

    def render(self) -> bytes:
        return generate_latest(self.registry)


class MetricsMiddleware:
    """Pure ASGI middleware: counts requests and times them by route template (not raw path)."""

    def __init__(self, app: ASGIApp, metrics: ServingMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = _route_template(scope)
            self.metrics.requests.labels(
                route=route, method=scope.get("method", ""), status=str(status)
            ).inc()
            self.metrics.latency.labels(route=route).observe(time.perf_counter() - start)


def _route_template(scope: Scope) -> str:
    """The matched route's path template, or ``unmatched`` (keeps label cardinality bounded)."""
    route = scope.get("route")
    path = getattr(route, "path", None)
    return str(path) if path else "unmatched"


def prediction_observer(request: Request) -> PredictionObserver:
    """FastAPI dependency: the app's ``observe_predictions(system, values)`` callable."""
    metrics: ServingMetrics = request.app.state.metrics
    return metrics.observe_predictions


#: Annotate a handler parameter with this to receive the app's ``observe_predictions``.
Observer = Annotated[PredictionObserver, Depends(prediction_observer)]


def validation_message(errors: Sequence[Any]) -> str:
    """One readable line from pydantic's error list, naming each offending field."""
    parts = []
    for err in errors:
        loc = [str(p) for p in err.get("loc", ()) if p != "body"]
        field = ".".join(loc) if loc else "body"
        msg = str(err.get("msg", "invalid value"))
        if err.get("type") == "json_invalid":
            ctx = err.get("ctx") or {}
            msg = f"malformed JSON ({ctx.get('error', 'decode error')})"
            field = "body"
        parts.append(f"{field}: {msg}")
    return "invalid request: " + "; ".join(parts) if parts else "invalid request"


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
