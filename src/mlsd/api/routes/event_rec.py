"""HTTP for event recommendation: ``GET /v1/event-rec/users/{user_id}/events`` and a reload.

The handlers only translate HTTP to and from
:class:`~mlsd.systems.event_rec.serving.EventRecScorer` (loaded by
:func:`~mlsd.systems.event_rec.serving.load_scorer`), which filters, computes the features and
ranks, timing each stage. With ``MLSD_REDIS_URL`` the streaming features come from Redis
(:mod:`~mlsd.systems.event_rec.serving_store`); if it fails, the answer comes from the run's
tables and says ``"degraded": true``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import numpy as np
from fastapi import APIRouter, Query
from fastapi import Path as PathParam
from pydantic import BaseModel, Field

from mlsd.api.deps import (
    AdminOnly,
    ApiError,
    ModelSlot,
    Observer,
    ServedSystem,
    error_responses,
)
from mlsd.settings import Settings
from mlsd.systems.event_rec.serving import (
    SYSTEM,
    EventRecScorer,
    UnknownUserError,
    load_scorer,
)

MAX_K = 100
MAX_ID = 2**53 - 1


class EventOut(BaseModel):
    event_id: int
    score: float
    category: str
    start_ts: int
    hours_until: float
    distance_km: float
    price: float
    lat: float
    lon: float
    friends_registered: int


class EventsResponse(BaseModel):
    user_id: int
    model: str
    events: list[EventOut]
    candidates: int
    open_events: int
    timings_ms: dict[str, float]
    features_from: str = Field(
        "memory", description="'store' (the online store, Redis when configured) or 'memory'"
    )
    degraded: bool = Field(
        False, description="the online store failed: features from the run's tables instead"
    )


class ReloadResponse(BaseModel):
    model: str
    version: int
    load_ms: float


def make_served_system(run_dir: Path, settings: Settings, load: bool = True) -> ServedSystem:
    """The event-rec router for :func:`mlsd.api.main.create_app`, serving ``run_dir``."""
    run_dir = Path(run_dir)
    slot: ModelSlot[EventRecScorer] = ModelSlot(load_scorer(run_dir, settings) if load else None)
    router = APIRouter(prefix="/v1/event-rec", tags=[SYSTEM])

    @router.get(
        "/users/{user_id}/events", response_model=EventsResponse, responses=error_responses(404)
    )
    def events(
        observe: Observer,
        user_id: Annotated[int, PathParam(ge=-MAX_ID, le=MAX_ID, description="the user")],
        k: Annotated[int, Query(ge=1, le=MAX_K, description="how many events")] = 20,
        lat: Annotated[
            float | None, Query(ge=-90, le=90, description="search around here, not home")
        ] = None,
        lon: Annotated[float | None, Query(ge=-180, le=180)] = None,
        radius_km: Annotated[
            float | None, Query(gt=0, le=100, description="filtering radius (default 8 km)")
        ] = None,
    ) -> EventsResponse:
        """The user's top ``k`` upcoming events: filtering (within ``radius_km`` of home, or of
        ``lat``/``lon`` where given: each replaces home's coordinate; a 7-day window; open and
        not full), online features, ranking; with per-stage timings."""
        scorer = slot.get()
        try:
            rec = scorer.recommend(user_id, k=k, lat=lat, lon=lon, radius_km=radius_km)
        except UnknownUserError as exc:
            raise ApiError(404, str(exc)) from exc
        observe(SYSTEM, np.array([e.score for e in rec.events]))
        return EventsResponse(
            user_id=rec.user_id,
            model=rec.model,
            events=[EventOut(**vars(e)) for e in rec.events],
            candidates=rec.candidates,
            open_events=rec.open_events,
            timings_ms=rec.timings_ms,
            features_from=rec.features_from,
            degraded=rec.degraded,
        )

    @router.post(
        "/reload",
        response_model=ReloadResponse,
        dependencies=[AdminOnly],
        responses=error_responses(500),
    )
    def reload() -> ReloadResponse:
        """Load the run directory's artifacts again and swap them in atomically; broken
        artifacts are a 500 and the previous model stays."""
        scorer, load_ms = slot.reload(lambda: load_scorer(run_dir, settings))
        return ReloadResponse(model=scorer.model_name, version=slot.version, load_ms=load_ms)

    return ServedSystem(name=SYSTEM, router=router, ready=lambda: slot.ready)
