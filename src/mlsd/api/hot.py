"""Hot routes: a scoring route answered by a plain ASGI handler under the app's middleware.

The book's serving step puts the model behind a latency budget. For a route called on every
feed request, the web framework's own per-request work (dependency solving, a request object,
the body through ``json.loads`` then validation, a response object) made the app's whole stack
cost ~0.37 ms around a 0.45 ms scoring call (ad click, 100 candidates, the app called in
process, no server); answered here, middleware included, ~0.23 ms. A
:class:`~mlsd.api.deps.HotRoute` (a system's ``ServedSystem.hot_routes``) names such a route:
its path, the pydantic model of its JSON body and ``handle(body, observe) -> bytes`` (the JSON
answer). :class:`HotRouteMiddleware` sits
innermost, after the metrics, API-key and body-limit middleware, so a hot route is counted,
guarded and size-limited like any other; it reads the body, validates it in one step in
pydantic-core's JSON parser and calls ``handle``. The system's FastAPI route on the same path
stays: it documents the route in the OpenAPI document and answers when the router is served
without this app (it calls the same ``handle``). Errors keep the app's contract: an
:class:`~mlsd.api.deps.ApiError` is its status with ``{"error": ...}``; a body that does not
validate is the same 422 (a 415 for a content type that is not JSON, a 400 for bytes that are
not UTF-8) the FastAPI route gives (``tests/unit/api/test_hot.py`` holds the two alike).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import ValidationError
from pydantic_core import to_json
from starlette.datastructures import Headers
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Receive, Scope, Send

from mlsd.api.deps import ApiError, HotRoute, PredictionObserver, validation_answer


def is_json(content_type: str | None) -> bool:
    """``*/json`` or ``*+json``, parameters allowed; a missing content type is not JSON (a 415,
    as FastAPI answers)."""
    if not content_type:
        return False
    media = content_type.split(";", 1)[0].strip().lower()
    return media.endswith("/json") or media.endswith("+json")


class HotRouteMiddleware:
    """Pure ASGI middleware: ``POST`` to a hot route's path is answered here; every other
    request (another method on that path included) goes on to the app."""

    def __init__(
        self,
        app: ASGIApp,
        routes: Sequence[HotRoute],
        observe: PredictionObserver,
        app_routes: Sequence[BaseRoute] = (),
    ) -> None:
        self.app = app
        self.routes: Mapping[str, HotRoute] = {r.path: r for r in routes}
        self.observe = observe
        # the documented route of each hot path, for the metrics' route label
        self.labels = {
            path: route
            for route in app_routes
            if (path := getattr(route, "path", None)) in self.routes
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        hot = self.routes.get(scope["path"]) if scope["type"] == "http" else None
        if hot is None or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        if hot.path in self.labels:
            scope["route"] = self.labels[hot.path]
        status, body = await self._answer(hot, scope, receive)
        headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def _answer(self, hot: HotRoute, scope: Scope, receive: Receive) -> tuple[int, bytes]:
        content_type = Headers(scope=scope).get("content-type")
        raw = await _read_body(receive)  # a body over the limit raises, for the body limit
        if not is_json(content_type):
            ctype = content_type or "missing"
            return _error(415, f"content type {ctype!r}: send application/json")
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError:
            return _error(400, "the body is not UTF-8: send UTF-8 JSON")
        if not raw:
            return _invalid([{"loc": ("body",), "msg": "Field required", "type": "missing"}])
        try:
            request = hot.body.model_validate_json(raw)
        except ValidationError as exc:
            return _invalid([{**e, "loc": ("body", *e["loc"])} for e in exc.errors()])
        try:
            return 200, await hot.handle(request, self.observe)
        except ApiError as exc:
            return _error(exc.status_code, exc.message)


def _invalid(errors: list[Any]) -> tuple[int, bytes]:
    return 422, to_json(validation_answer(errors))


async def _read_body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _error(status: int, message: str) -> tuple[int, bytes]:
    return status, to_json({"error": message})
