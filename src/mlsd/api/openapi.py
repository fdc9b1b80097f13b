"""The app's OpenAPI document: every response a route can give, and how to authenticate.

FastAPI documents what a handler returns and, for routes with parameters, a 422. The framework
adds, on every route, the answers that come from the framework itself rather than from a
handler, all with the :class:`~mlsd.api.deps.ErrorResponse` body:

* 401 (no or unknown API key) on every route but :data:`~mlsd.api.guard.OPEN_PATHS`, and 403 on
  admin routes (those with :data:`~mlsd.api.deps.AdminOnly`), when API keys are configured, with
  the ``X-API-Key`` security scheme;
* 413 (body over the limit) on routes that take a body and, on JSON bodies, 400 (bytes that
  are not UTF-8) and 415 (another content type);
* 422 in the app's own error shape (not FastAPI's ``{"detail": ...}``);
* 503 (model not loaded yet) on every system route (``/v1/...``).

A handler's own answers (a 404 for unknown ids, visual search's 400) are declared by its router
with :func:`~mlsd.api.deps.error_responses`. Schemathesis checks the live server against this
document (``tests/integration/test_schemathesis.py``).
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute, RouteContext, iter_route_contexts

from mlsd.api.deps import ERROR_MEANINGS, ErrorResponse, require_admin
from mlsd.api.guard import API_KEY_HEADER, OPEN_PATHS, SECURITY_SCHEME

ERROR_REF = {"$ref": "#/components/schemas/ErrorResponse"}
BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


def _error(code: int) -> dict[str, Any]:
    return {
        "description": ERROR_MEANINGS[code],
        "content": {"application/json": {"schema": ERROR_REF}},
    }


def _is_admin(route: RouteContext) -> bool:
    return any(d.call is require_admin for d in route.dependant.dependencies)


def _document_route(op: dict[str, Any], route: RouteContext, method: str, secured: bool) -> None:
    responses: dict[str, Any] = op.setdefault("responses", {})
    path = route.path_format or ""

    def add(code: int) -> None:
        responses.setdefault(str(code), _error(code))

    if "422" in responses:  # the app answers 422 as {"error": ..., "detail": [...]}
        responses["422"] = _error(422)
    if method in BODY_METHODS:
        add(413)
        if "application/json" in op.get("requestBody", {}).get("content", {}):
            add(400)
            add(415)
    if path.startswith("/v1/"):
        add(503)
    if secured and path not in OPEN_PATHS:
        op["security"] = [{SECURITY_SCHEME: []}]
        add(401)
        if _is_admin(route):
            add(403)


def build_openapi(app: FastAPI, api_keys_configured: bool) -> dict[str, Any]:
    """The OpenAPI document of ``app`` with the framework's responses and security added."""
    schema = get_openapi(
        title=app.title,
        version=app.version,
        description=app.description,
        routes=app.routes,
    )
    for route in iter_route_contexts(app.routes):  # the routes of included routers too
        if not isinstance(route.original_route, APIRoute) or not route.include_in_schema:
            continue
        for method in sorted(route.methods or ()):
            op = schema.get("paths", {}).get(route.path_format, {}).get(method.lower())
            if op is not None:
                _document_route(op, route, method, api_keys_configured)
    components = schema.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    error_schema = ErrorResponse.model_json_schema(ref_template="#/components/schemas/{model}")
    schemas.update(error_schema.pop("$defs", {}))
    schemas["ErrorResponse"] = error_schema
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)
    if api_keys_configured:
        components["securitySchemes"] = {
            SECURITY_SCHEME: {
                "type": "apiKey",
                "in": "header",
                "name": API_KEY_HEADER,
                "description": "An API key from MLSD_API_KEYS; the reloads need the admin role.",
            }
        }
    return schema


def install_openapi(app: FastAPI, api_keys_configured: bool) -> None:
    """Serve :func:`build_openapi`'s document at ``/openapi.json`` (built once, on first use)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = build_openapi(app, api_keys_configured)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
