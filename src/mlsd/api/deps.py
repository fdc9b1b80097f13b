"""FastAPI dependencies and the pieces every system's router uses.

* :class:`ApiError`: a client error (or a model not loaded yet), answered as ``{"error": ...}``;
* :class:`ModelSlot`: the served object, swapped atomically on reload;
* :class:`ServedSystem`: what a router module hands to :func:`mlsd.api.main.create_app`;
* :class:`HotRoute`: a scoring route answered on the hot path (:mod:`mlsd.api.hot`);
* :data:`Observer`: a handler parameter receiving the app's ``observe_predictions``;
* :data:`AdminOnly`: the dependency of routes that need an admin API key (the reloads);
* :class:`ErrorResponse` and :func:`error_responses`: the ``{"error": ...}`` body, as documented;
* :data:`BoundedId`, :data:`JsonInt`: ids and integers as JSON carries them (anything else,
  an id beyond 2^53 included, is a 422).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any, Generic, TypeVar

import numpy as np
from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, BeforeValidator, Field, Strict

from mlsd.api.metrics import ServingMetrics
from mlsd.serving import ServingArtifactError

T = TypeVar("T")

PredictionObserver = Callable[[str, np.ndarray], None]


def _integral_float(value: Any) -> Any:
    """``14.0`` as ``14`` (JSON Schema counts it an integer); everything else unchanged."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


#: Accept ``3.0`` as ``3`` before a strict int check (list it after the constraints, so the
#: JSON schema keeps them as ``minimum``/``maximum``).
AsInt = BeforeValidator(_integral_float)
#: A JSON integer: ``3`` or ``3.0``, never ``"3"``, ``true`` or ``3.5`` (those are a 422).
JsonInt = Annotated[int, Strict(), AsInt]
#: A :data:`JsonInt` of at least 1 (a count, a ``k``).
PositiveInt = Annotated[int, Strict(), Field(ge=1), AsInt]
#: The largest id: 2^53 - 1, the largest integer every JSON parser (a double) holds exactly.
#: It fits int64 with room to spare, so no id reaches numpy or a store and overflows, and a
#: bound a double holds exactly is one that clients and schema validators agree on.
MAX_ID = 2**53 - 1
#: An id of an entity (user, ad, video): a :data:`JsonInt` within ``±MAX_ID``, else a 422.
BoundedId = Annotated[int, Strict(), Field(ge=-MAX_ID, le=MAX_ID), AsInt]


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
        self._reload_lock = threading.Lock()
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

    def reload(self, load: Callable[[], T], what: str = "model") -> tuple[T, float]:
        """A reload endpoint's work: ``load()`` the run's artifacts again (one reload at a time)
        and swap the result in; ``(new object, load milliseconds)``. Broken artifacts are an
        :class:`ApiError` 500 naming the file, and the previous ``what`` keeps serving."""
        with self._reload_lock:
            t0 = time.perf_counter()
            try:
                new = load()
            except ServingArtifactError as exc:
                raise ApiError(500, f"reload failed, previous {what} kept: {exc}") from exc
            self.swap(new)
            return new, (time.perf_counter() - t0) * 1000.0


@dataclass(frozen=True)
class ServedSystem:
    """What a system hands to :func:`create_app`: its name, its router and its readiness."""

    name: str
    router: APIRouter
    ready: Callable[[], bool]
    #: A route's own request body limit in bytes, by full path (an image upload's is larger
    #: than the app's ``Settings.max_body_bytes``).
    body_limits: Mapping[str, int] = field(default_factory=dict)
    #: Routes answered on the hot path (:mod:`mlsd.api.hot`), each also a documented route.
    hot_routes: Sequence[HotRoute] = ()


#: ``handle(body, observe)``: the JSON answer of a hot route's valid body (raises ApiError).
HotHandler = Callable[[Any, PredictionObserver], Awaitable[bytes]]


@dataclass(frozen=True)
class HotRoute:
    """A ``POST`` route served on the hot path (:mod:`mlsd.api.hot`): its full path, the
    pydantic model of its JSON body and its handler."""

    path: str
    body: type[BaseModel]
    handle: HotHandler


class FieldIssue(BaseModel):
    """One field pydantic rejected: where, why, and the kind of error."""

    loc: list[str | int]
    msg: str
    type: str | None = None


class ErrorResponse(BaseModel):
    """Every 4xx/5xx body: one readable line, and for a 422 the fields that were rejected."""

    error: str
    detail: list[FieldIssue] | None = None


#: What each error status means on this API (the OpenAPI description of the response).
ERROR_MEANINGS: dict[int, str] = {
    400: "The body cannot be read: not UTF-8 JSON, or bytes that are not an image.",
    401: "No API key, or an unknown one, in the X-API-Key header.",
    403: "The API key's role may not call this route (the reloads need an admin key).",
    404: "An id the served model does not know.",
    413: "The request body (or the image) is larger than the route accepts.",
    415: "The body's Content-Type is not one the route takes.",
    422: "A field is missing, of the wrong type or out of range.",
    500: "Reloading failed; the previous model keeps serving.",
    503: "The model is not loaded yet, or a store it needs is unavailable.",
}


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """FastAPI ``responses=`` documenting ``codes`` with the :class:`ErrorResponse` body."""
    return {code: {"model": ErrorResponse, "description": ERROR_MEANINGS[code]} for code in codes}


def require_admin(request: Request) -> None:
    """FastAPI dependency: 403 unless the request's API key has the admin role.

    The key itself was checked (401 when missing or unknown) by the app's API-key middleware,
    which leaves the key's role in ``request.state.api_role``; with no keys configured every
    request is admin.
    """
    if getattr(request.state, "api_role", None) != "admin":
        raise ApiError(403, "this route needs an API key with the admin role")


#: Add to a route's ``dependencies`` to make it admin-only (``dependencies=[AdminOnly]``).
AdminOnly = Depends(require_admin)


async def prediction_observer(request: Request) -> PredictionObserver:
    """FastAPI dependency: the app's ``observe_predictions(system, values)`` callable (async:
    solved on the event loop, no thread-pool hop)."""
    metrics: ServingMetrics = request.app.state.metrics
    return metrics.observe_predictions


#: Annotate a handler parameter with this to receive the app's ``observe_predictions``.
Observer = Annotated[PredictionObserver, Depends(prediction_observer)]


def validation_answer(errors: Sequence[Any]) -> dict[str, Any]:
    """The app's 422 body for pydantic's error list: one readable line and each field's issue."""
    detail = [
        {"loc": list(e.get("loc", ())), "msg": str(e.get("msg", "")), "type": e.get("type")}
        for e in errors
    ]
    return {"error": validation_message(errors), "detail": detail}


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
