"""Step 6 for video recommendation: the home-feed endpoint (book ch. 6, "Serving").

``GET /v1/video-rec/users/{user_id}/recommendations?k=20`` serves a known user from the log's
indexes; ``POST /v1/video-rec/recommendations`` serves a user the system has never seen from an
inline watch history and demographics (cold start). Every response carries the time each stage
took (retrieval, ranking, re-ranking). The whole fitted :class:`Recommender` is one pickle in the
run's ``artifacts/`` (the FAISS index serialises itself), loaded once and swapped atomically on
``POST /v1/video-rec/reload``.
"""

from __future__ import annotations

import json
import logging
import pickle
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field

from mlsd.serving import ApiError, ModelSlot, Observer, ServedSystem, ServingArtifactError
from mlsd.settings import Settings
from mlsd.systems.video_rec.pipeline import Recommender, Recs
from mlsd.systems.video_rec.world_entities import AGE_BUCKETS, COUNTRIES, LANGUAGES

log = logging.getLogger(__name__)

SYSTEM = "video-rec"
MODEL_FILE = "recommender.pkl"
SERVING_FILE = "serving.json"
MAX_K = 100


def save_recommender(artifacts_dir: Path, rec: Recommender, info: dict[str, Any]) -> None:
    """Write ``recommender.pkl`` and ``serving.json`` atomically."""
    out = Path(artifacts_dir)
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / (MODEL_FILE + ".tmp")
    with tmp.open("wb") as fh:
        pickle.dump(rec, fh, protocol=pickle.HIGHEST_PROTOCOL)
    tmp.replace(out / MODEL_FILE)
    meta = {
        "system": SYSTEM,
        "users": len(rec.users),
        "videos": len(rec.cat.videos),
        "day": rec.day,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        **info,
    }
    tmp = out / (SERVING_FILE + ".tmp")
    tmp.write_text(json.dumps(meta, indent=2, default=str))
    tmp.replace(out / SERVING_FILE)


def load_recommender(artifacts_dir: Path) -> Recommender:
    path = Path(artifacts_dir) / MODEL_FILE
    if not path.is_file():
        raise ServingArtifactError(f"{path}: serving artifact missing (was the run completed?)")
    try:
        with path.open("rb") as fh:
            obj = pickle.load(fh)
    except Exception as exc:  # unpickling fails in many ways; all mean a bad file
        raise ServingArtifactError(f"{path}: unreadable recommender: {exc}") from exc
    if not isinstance(obj, Recommender):
        raise ServingArtifactError(f"{path}: holds a {type(obj).__name__}, not a Recommender")
    return obj


def artifacts_dir_of(run_dir: Path) -> Path:
    run_dir = Path(run_dir)
    return run_dir if (run_dir / MODEL_FILE).exists() else run_dir / "artifacts"


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
    watch_history: list[int] = Field(default_factory=list, max_length=1000)
    age_bucket: str = "25-34"
    country: str = "us"
    language: str = "en"
    k: int = Field(default=20, ge=1, le=MAX_K)


class ReloadResponse(BaseModel):
    version: int
    load_ms: float


def response_of(rec: Recommender, recs: Recs, user_id: int | None, total_ms: float) -> Any:
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


def make_served_system(run_dir: Path, settings: Settings, load: bool = True) -> ServedSystem:
    """The video-rec router for :func:`mlsd.serving.create_app`, serving ``run_dir``."""
    artifacts = artifacts_dir_of(run_dir)
    slot: ModelSlot[Recommender] = ModelSlot(load_recommender(artifacts) if load else None)
    lock = threading.Lock()
    router = APIRouter(prefix="/v1/video-rec", tags=[SYSTEM])

    @router.get("/users/{user_id}/recommendations", response_model=RecommendationResponse)
    def recommend_user(user_id: int, observe: Observer, k: int = Query(20, ge=1, le=MAX_K)) -> Any:
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

    @router.post("/recommendations", response_model=RecommendationResponse)
    def recommend_inline(body: InlineUser, observe: Observer) -> Any:
        """The home feed of an unseen user from an inline watch history (cold start)."""
        rec = slot.get()
        n = len(rec.cat.videos)
        bad = [v for v in body.watch_history if not 0 <= v < n]
        if bad:
            raise ApiError(422, f"watch_history: unknown video ids {bad[:10]} (ids are 0..{n - 1})")
        for name, value, allowed in (
            ("age_bucket", body.age_bucket, AGE_BUCKETS),
            ("country", body.country, COUNTRIES),
            ("language", body.language, LANGUAGES),
        ):
            if value not in allowed:
                raise ApiError(422, f"{name}: {value!r} is not one of {list(allowed)}")
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

    @router.post("/reload", response_model=ReloadResponse)
    def reload() -> ReloadResponse:
        """Load the run's recommender again and swap it in atomically."""
        with lock:
            t0 = time.perf_counter()
            try:
                new = load_recommender(artifacts)
            except ServingArtifactError as exc:
                raise ApiError(500, f"reload failed, previous model kept: {exc}") from exc
            slot.swap(new)
            return ReloadResponse(version=slot.version, load_ms=(time.perf_counter() - t0) * 1e3)

    return ServedSystem(name=SYSTEM, router=router, ready=lambda: slot.ready)
