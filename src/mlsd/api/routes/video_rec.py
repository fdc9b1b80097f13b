"""Step 6 for video recommendation over HTTP: the home-feed endpoints (book ch. 6, "Serving").

``GET /v1/video-rec/users/{user_id}/recommendations?k=20`` serves a known user from the log's
indexes; ``POST /v1/video-rec/recommendations`` serves a user the system has never seen from an
inline watch history and demographics (cold start). Every response carries the time each stage
took (retrieval, ranking, re-ranking). The recommender is loaded once from the run's
``artifacts/`` (:func:`mlsd.systems.video_rec.serving.load_scorer`) and swapped atomically on
``POST /v1/video-rec/reload`` (an admin API key's route).

A user with no history at all (``{}`` or ``"watch_history": []``, the natural first request of a
brand-new user) gets the cold-start feed: popular videos and the two-tower's picks for the
demographics, ranked and re-ranked like any other.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
from fastapi import APIRouter, Query
from fastapi import Path as PathParam
from pydantic import BaseModel, ConfigDict, Field

from mlsd.api.deps import (
    MAX_ID,
    AdminOnly,
    ApiError,
    BoundedId,
    JsonInt,
    ModelSlot,
    Observer,
    ServedSystem,
    error_responses,
)
from mlsd.settings import Settings
from mlsd.systems.video_rec.serving import SYSTEM, Recommender, Recs, load_scorer
from mlsd.systems.video_rec.world_entities import AGE_BUCKETS, COUNTRIES, LANGUAGES

MAX_K = 100


class VideoOut(BaseModel):
    video_id: int
    title: str
    category: str
    score: float = Field(description="expected watch minutes (after the freshness boost)")
    p_click: float | None
    sources: list[str]


class RecommendationResponse(BaseModel):
    user_id: int | None
    cold_start: bool
    videos: list[VideoOut]
    timings_ms: dict[str, float]


class InlineUser(BaseModel):
    """A user the system has never seen: what they watched, and who they are."""

    model_config = ConfigDict(extra="forbid")
    watch_history: list[BoundedId] = Field(
        default_factory=list,
        max_length=1000,
        description="video ids watched, oldest first; empty for a brand-new user",
    )
    age_bucket: str = Field(default="25-34", json_schema_extra={"enum": list(AGE_BUCKETS)})
    country: str = Field(default="us", json_schema_extra={"enum": list(COUNTRIES)})
    language: str = Field(default="en", json_schema_extra={"enum": list(LANGUAGES)})
    k: JsonInt = Field(default=20, ge=1, le=MAX_K)


class ReloadResponse(BaseModel):
    version: int
    load_ms: float


def response_of(
    rec: Recommender, recs: Recs, user_id: int | None, total_ms: float
) -> RecommendationResponse:
    v = rec.cat.videos
    ids, scores, p = recs.ids[0], recs.scores[0], recs.p_click[0]
    videos = [
        VideoOut(
            video_id=int(i),
            title=str(v["title"].iat[int(i)]),
            category=str(v["category"].iat[int(i)]),
            score=float(s),
            p_click=None if np.isnan(pc) else float(pc),
            sources=src,
        )
        for i, s, pc, src in zip(ids, scores, p, recs.sources[0], strict=True)
    ]
    timings = {k: round(x, 3) for k, x in recs.timings_ms.items()}
    timings["total"] = round(total_ms, 3)
    return RecommendationResponse(
        user_id=user_id, cold_start=user_id is None, videos=videos, timings_ms=timings
    )


def _check_inline(rec: Recommender, body: InlineUser) -> None:
    """404 for video ids the catalogue does not hold, 422 naming a demographic out of range."""
    n = len(rec.cat.videos)
    bad = [v for v in body.watch_history if not 0 <= v < n]
    if bad:
        raise ApiError(404, f"watch_history: unknown video ids {bad[:10]} (ids are 0..{n - 1})")
    for name, value, allowed in (
        ("age_bucket", body.age_bucket, AGE_BUCKETS),
        ("country", body.country, COUNTRIES),
        ("language", body.language, LANGUAGES),
    ):
        if value not in allowed:
            raise ApiError(422, f"{name}: {value!r} is not one of {list(allowed)}")


def make_served_system(run_dir: Path, settings: Settings, load: bool = True) -> ServedSystem:
    """The video-rec router for :func:`mlsd.api.main.create_app`, serving ``run_dir``."""
    slot: ModelSlot[Recommender] = ModelSlot(load_scorer(run_dir, settings) if load else None)
    router = APIRouter(prefix="/v1/video-rec", tags=[SYSTEM])

    @router.get(
        "/users/{user_id}/recommendations",
        response_model=RecommendationResponse,
        responses=error_responses(404),
    )
    def recommend_user(
        observe: Observer,
        user_id: int = PathParam(ge=-MAX_ID, le=MAX_ID),
        k: int = Query(20, ge=1, le=MAX_K),
    ) -> Any:
        """The home feed of a known user: retrieval, ranking, re-ranking."""
        rec = slot.get()
        if not rec.known_user(user_id):
            raise ApiError(
                404,
                f"unknown user_id {user_id}; POST /v1/video-rec/recommendations "
                "with a watch history serves users the system has not seen",
            )
        t0 = time.perf_counter()
        recs = rec.recommend_users(np.array([user_id]), k)
        observe(SYSTEM, np.nan_to_num(recs.p_click[0]))
        return response_of(rec, recs, user_id, (time.perf_counter() - t0) * 1000.0)

    @router.post(
        "/recommendations", response_model=RecommendationResponse, responses=error_responses(404)
    )
    def recommend_inline(body: InlineUser, observe: Observer) -> Any:
        """The home feed of an unseen user from an inline watch history (cold start)."""
        rec = slot.get()
        _check_inline(rec, body)
        t0 = time.perf_counter()
        recs = rec.recommend_inline(
            list(dict.fromkeys(body.watch_history)),
            body.age_bucket,
            body.country,
            body.language,
            body.k,
        )
        observe(SYSTEM, np.nan_to_num(recs.p_click[0]))
        return response_of(rec, recs, None, (time.perf_counter() - t0) * 1000.0)

    @router.post(
        "/reload",
        response_model=ReloadResponse,
        dependencies=[AdminOnly],
        responses=error_responses(500),
    )
    def reload() -> ReloadResponse:
        """Load the run's recommender again and swap it in atomically."""
        _, load_ms = slot.reload(lambda: load_scorer(run_dir, settings))
        return ReloadResponse(version=slot.version, load_ms=load_ms)

    return ServedSystem(name=SYSTEM, router=router, ready=lambda: slot.ready)
