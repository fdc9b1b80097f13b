"""Prometheus series and the access log of the served app: requests, latencies, predicted
probabilities (step 7, monitoring, reads them).

Every label takes values from a fixed set, whatever clients send: the route is the matched
route's template (``unmatched`` for any other path), the method one of :data:`METHODS` or
``other``, the status one the app answers. Ids never reach the logs in clear: the access log
names the route template and replaces each path parameter (and the path of an unmatched request)
by a keyed hash.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import time
from collections.abc import Sequence

import numpy as np
from fastapi.routing import iter_route_contexts
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

access_log = logging.getLogger("mlsd.access")

#: Latency buckets in seconds, dense between 0.5 ms and 100 ms where scoring latencies live.
_LATENCY_MS = (0.5, 1, 2, 3, 5, 7.5, 10, 15, 20, 30, 50, 75, 100, 250, 500, 1000, 2500)
LATENCY_BUCKETS = tuple(ms / 1000 for ms in _LATENCY_MS)
#: Buckets of predicted probabilities: click-through rates are small, so dense near zero.
_PROBABILITY_PER_MILLE = (1, 2, 5, 10, 20, 30, 50, 75, 100, 150, 200, 300, 500, 750, 1000)
PROBABILITY_BUCKETS = tuple(p / 1000 for p in _PROBABILITY_PER_MILLE)
#: The method label's values; any other method (a made-up one included) counts as ``other``.
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
UNMATCHED = "unmatched"


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
        """Record every predicted probability of one response: one counter increment per
        bucket hit, not one ``observe`` per value (100 candidates cost 100 locked calls)."""
        hist = self.predictions.labels(system=system)
        v = np.asarray(values, dtype=np.float64).ravel()
        bounds = getattr(hist, "_upper_bounds", None)
        buckets = getattr(hist, "_buckets", None)
        total = getattr(hist, "_sum", None)
        if bounds is None or buckets is None or total is None:  # another client version
            for value in v:
                hist.observe(float(value))
            return
        # Histogram.observe counts a value in the first bucket whose bound is >= it (NaN: none)
        counts = np.bincount(np.searchsorted(bounds, v, side="left"), minlength=len(bounds) + 1)
        for i in np.flatnonzero(counts[: len(bounds)]).tolist():
            buckets[i].inc(float(counts[i]))
        total.inc(float(v.sum()))

    def render(self) -> bytes:
        return generate_latest(self.registry)


class IdHasher:
    """A keyed hash (HMAC-SHA256, 12 hex digits) that stands for an id in the logs.

    Ids are small integers, so an unkeyed hash could be reversed by trying them all; with a
    secret salt it cannot. The same salt (``Settings.log_id_salt``) on every replica makes one
    user's requests joinable across them; without one, a random salt per process.
    """

    def __init__(self, salt: str | None = None) -> None:
        self._key = salt.encode() if salt else secrets.token_bytes(16)

    def __call__(self, value: object) -> str:
        digest = hmac.new(self._key, str(value).encode(), hashlib.sha256).hexdigest()
        return f"h:{digest[:12]}"


class MetricsMiddleware:
    """Pure ASGI middleware: counts and times every request by route template, and writes one
    access-log line per request (route template, hashed ids, status, milliseconds)."""

    def __init__(
        self,
        app: ASGIApp,
        metrics: ServingMetrics,
        routes: Sequence[BaseRoute] = (),
        hasher: IdHasher | None = None,
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.routes = routes  # the app's route list: labels requests answered before routing
        self.hasher = hasher if hasher is not None else IdHasher()

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
            elapsed = time.perf_counter() - start
            route = self._route_template(scope)
            method = method_label(scope.get("method", ""))
            self.metrics.requests.labels(route=route, method=method, status=str(status)).inc()
            self.metrics.latency.labels(route=route).observe(elapsed)
            if access_log.isEnabledFor(logging.INFO):
                access_log.info(
                    "%s %s%s %d %.1fms",
                    method,
                    route,
                    self._hashed_ids(scope, route),
                    status,
                    elapsed * 1000.0,
                )

    def _route_template(self, scope: Scope) -> str:
        """The matched route's path template, or ``unmatched`` (keeps the labels bounded)."""
        route = scope.get("route")
        if route is None:  # answered before routing (a 401): find the route it was meant for
            for candidate in iter_route_contexts(self.routes):
                match, child = candidate.matches(scope)
                if match != Match.NONE:
                    scope["route"] = route = candidate
                    scope.setdefault("path_params", child.get("path_params", {}))
                    break
        path = getattr(route, "path_format", None) or getattr(route, "path", None)
        return str(path) if path else UNMATCHED

    def _hashed_ids(self, scope: Scope, route: str) -> str:
        if route == UNMATCHED:
            return f" path={self.hasher(scope.get('path', ''))}"
        params = scope.get("path_params") or {}
        return "".join(f" {k}={self.hasher(v)}" for k, v in sorted(params.items()))


def method_label(method: str) -> str:
    """The method as a label value: one of :data:`METHODS`, or ``other``."""
    return method if method in METHODS else "other"
