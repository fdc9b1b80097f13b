"""FastAPI dependencies and the pieces every system's router uses.

* :class:`ApiError`: a client error (or a model not loaded yet), answered as ``{"error": ...}``;
* :class:`ModelSlot`: the served object, swapped atomically on reload;
* :class:`ServedSystem`: what a router module hands to :func:`mlsd.api.main.create_app`;
* :data:`Observer`: a handler parameter receiving the app's ``observe_predictions``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Generic, TypeVar

import numpy as np
from fastapi import APIRouter, Depends, Request

from mlsd.api.metrics import ServingMetrics

T = TypeVar("T")

PredictionObserver = Callable[[str, np.ndarray], None]


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
