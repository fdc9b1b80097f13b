"""API keys and the body limit: who may call the app, and how much it may send.

Keys come from ``Settings.api_keys`` (``MLSD_API_KEYS="key1:admin,key2:read"``) and travel in
the ``X-API-Key`` header. :class:`ApiKeyMiddleware` answers 401 ``{"error": ...}`` to a request
without a known key before anything reads its body; the probes (``/healthz``, ``/readyz``) and the
API's own documentation (``/docs``, ``/redoc``, ``/openapi.json``: they describe the routes and
hold no data) stay open. A known key's role is left in ``request.state.api_role`` for
:func:`mlsd.api.deps.require_admin`, which answers 403 to a ``read`` key on an admin route.

With no keys configured every request is let through as ``admin`` (a server on a laptop, or
behind a gateway that authenticates); :func:`mlsd.api.main.create_app` logs a warning then.

:class:`BodyLimitMiddleware` answers 413 to a body over ``Settings.max_body_bytes`` (or the
route's own limit, :attr:`mlsd.api.deps.ServedSystem.body_limits`) before it is parsed.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping

from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mlsd.settings import Role

API_KEY_HEADER = "X-API-Key"
#: Paths served without a key: the orchestrator's probes and the API's own documentation.
PROBE_PATHS = frozenset({"/healthz", "/readyz"})
DOC_PATHS = frozenset({"/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json"})
OPEN_PATHS = PROBE_PATHS | DOC_PATHS
SECURITY_SCHEME = "ApiKeyAuth"


def role_of(keys: Mapping[str, Role], presented: str | None) -> Role | None:
    """The role of the key ``presented``, or ``None``; compares every key in constant time."""
    if not presented:
        return None
    found: Role | None = None
    given = presented.encode()
    for key, role in keys.items():
        if hmac.compare_digest(key.encode(), given):
            found = role
    return found


def _set_role(scope: Scope, role: Role) -> None:
    scope.setdefault("state", {})["api_role"] = role


class ApiKeyMiddleware:
    """Pure ASGI middleware: 401 without a known ``X-API-Key`` (except on :data:`OPEN_PATHS`)."""

    def __init__(self, app: ASGIApp, keys: Mapping[str, Role]) -> None:
        self.app = app
        self.keys = dict(keys)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if not self.keys:
            _set_role(scope, "admin")
        elif scope["path"] not in OPEN_PATHS:
            presented = Headers(scope=scope).get(API_KEY_HEADER)
            role = role_of(self.keys, presented)
            if role is None:
                message = (
                    f"unknown API key in the {API_KEY_HEADER} header"
                    if presented
                    else f"missing API key: send it in the {API_KEY_HEADER} header"
                )
                response = JSONResponse(
                    {"error": message},
                    status_code=401,
                    headers={"WWW-Authenticate": f'ApiKey header="{API_KEY_HEADER}"'},
                )
                await response(scope, receive, send)
                return
            _set_role(scope, role)
        await self.app(scope, receive, send)


class BodyTooLarge(HTTPException):
    """A request body over its route's limit: a 413 ``{"error": ...}``."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body exceeds {limit} bytes")


class BodyLimitMiddleware:
    """Pure ASGI middleware: a body over the limit is a 413 before it is held in memory.

    A declared ``Content-Length`` over the limit is refused before the app runs; a body without
    one (chunked) is counted as it streams and refused as soon as it passes the limit, so at most
    ``limit`` bytes are ever read. ``per_path`` gives a route its own limit (an image upload).
    """

    def __init__(self, app: ASGIApp, max_bytes: int, per_path: Mapping[str, int]) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.per_path = dict(per_path)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.per_path.get(scope["path"], self.max_bytes)
        length = Headers(scope=scope).get("content-length", "").strip()
        if length.isdigit() and int(length) > limit:
            await _too_large(BodyTooLarge(limit))(scope, receive, send)
            return
        received = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)  # a 413 from the app's HTTPException handler
            return message

        async def tracked_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited_receive, tracked_send)
        except BodyTooLarge as exc:  # raised where no handler saw it
            if started:
                raise
            await _too_large(exc)(scope, receive, send)


def _too_large(exc: BodyTooLarge) -> JSONResponse:
    return JSONResponse({"error": exc.detail}, 413, headers={"connection": "close"})
