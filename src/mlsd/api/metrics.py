"""Prometheus series of the served app: requests, latencies, predicted probabilities (step 7,
monitoring, reads them)."""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

#: Latency buckets in seconds, dense between 0.5 ms and 100 ms where scoring latencies live.
_LATENCY_MS = (0.5, 1, 2, 3, 5, 7.5, 10, 15, 20, 30, 50, 75, 100, 250, 500, 1000, 2500)
LATENCY_BUCKETS = tuple(ms / 1000 for ms in _LATENCY_MS)
#: Buckets of predicted probabilities: click-through rates are small, so dense near zero.
_PROBABILITY_PER_MILLE = (1, 2, 5, 10, 20, 30, 50, 75, 100, 150, 200, 300, 500, 750, 1000)
PROBABILITY_BUCKETS = tuple(p / 1000 for p in _PROBABILITY_PER_MILLE)


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
