"""HTTP for video search: ``GET /v1/video-search/search?q=...&k=20``, new videos indexed
without a restart (``POST /v1/video-search/videos``, admin) and a reload.

The handlers only translate HTTP to and from
:class:`~mlsd.systems.video_search.serving.VideoSearcher` (loaded by
:func:`~mlsd.systems.video_search.serving.load_scorer`), which runs both retrievals in
parallel, fuses, re-ranks and times each stage.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import numpy as np
import pandas as pd
from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field

from mlsd.api.deps import (
    AdminOnly,
    JsonInt,
    ModelSlot,
    Observer,
    ServedSystem,
    error_responses,
)
from mlsd.settings import Settings
from mlsd.systems.video_search.serving import SYSTEM, VideoSearcher, load_scorer
from mlsd.systems.video_search.world_config import VideoSearchConfig

MAX_K = 100
MAX_QUERY = 200
# searchable text: at least one letter or digit (Latin script: the catalogue's language);
# a query without one is a 422 naming the pattern. Control characters are dropped by the
# tokeniser like any other punctuation.
QUERY_PATTERN = "[0-9A-Za-z\u00c0-\u024f]"
_CFG = VideoSearchConfig.for_scale("small")
FRAME_VALUES = _CFG.frames * 3 * _CFG.frame_size**2


class HitOut(BaseModel):
    video_id: int
    score: float
    title: str
    upload_day: int


class SearchResponse(BaseModel):
    query: str
    ranker: str
    hits: list[HitOut]
    candidates: int
    timings_ms: dict[str, float]


class NewVideo(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")

    title: str = Field(min_length=1, max_length=200)
    description: str = Field(default="", max_length=2000)
    tags: list[Annotated[str, Field(max_length=50)]] = Field(default_factory=list, max_length=20)
    duration_s: JsonInt = Field(default=60, ge=1, le=86_400)
    frames: list[float] | None = Field(
        default=None,
        min_length=FRAME_VALUES,
        max_length=FRAME_VALUES,
        description=f"the frames, flattened: {_CFG.frames} x 3 x {_CFG.frame_size} x "
        f"{_CFG.frame_size} values (none: the video has no visual signal)",
    )


class IngestResponse(BaseModel):
    video_id: int
    catalogue: int
    ingest_ms: float


class ReloadResponse(BaseModel):
    ranker: str
    version: int
    load_ms: float


def make_served_system(run_dir: Path, settings: Settings, load: bool = True) -> ServedSystem:
    """The video-search router for :func:`mlsd.api.main.create_app`, serving ``run_dir``."""
    run_dir = Path(run_dir)
    slot: ModelSlot[VideoSearcher] = ModelSlot(load_scorer(run_dir, settings) if load else None)
    router = APIRouter(prefix="/v1/video-search", tags=[SYSTEM])

    @router.get("/search", response_model=SearchResponse)
    def search(
        observe: Observer,
        q: Annotated[
            str,
            Query(
                min_length=1,
                max_length=MAX_QUERY,
                pattern=QUERY_PATTERN,
                description="the text query: at least one letter or digit, no control characters",
            ),
        ],
        k: Annotated[int, Query(ge=1, le=MAX_K, description="how many videos")] = 20,
    ) -> SearchResponse:
        """The top ``k`` videos for the query: text and visual retrieval in parallel, fusion,
        re-ranking (safety, duplicates), with per-stage timings."""
        searcher = slot.get()
        res = searcher.search(q.strip(), k=k)
        observe(SYSTEM, np.array([h.score for h in res.hits]))
        return SearchResponse(
            query=res.query,
            ranker=res.ranker,
            hits=[HitOut(**vars(h)) for h in res.hits],
            candidates=res.candidates,
            timings_ms=res.timings_ms,
        )

    @router.post(
        "/videos",
        response_model=IngestResponse,
        dependencies=[AdminOnly],
    )
    def add_video(video: NewVideo) -> IngestResponse:
        """Index one new video now (no restart): its text into BM25 and the semantic index,
        its frames (if given) into the visual index."""
        searcher = slot.get()
        frames = None
        if video.frames is not None:
            # JSON carries no inf or nan, but a float32 can overflow: clip what the encoder sees
            arr = np.nan_to_num(np.asarray(video.frames, np.float32), posinf=1e6, neginf=-1e6)
            frames = arr.reshape(1, _CFG.frames, 3, _CFG.frame_size, _CFG.frame_size)
        row = pd.DataFrame(
            {
                "upload_day": [searcher.day],
                "popularity": [0],
                "duration_s": [video.duration_s],
                "flagged": [False],
                "title": [video.title],
                "description": [video.description],
                "tags": [",".join(video.tags)],
            }
        )
        t0 = time.perf_counter()
        ids = searcher.add_videos(row, frames)
        return IngestResponse(
            video_id=int(ids[0]),
            catalogue=len(searcher.videos),
            ingest_ms=(time.perf_counter() - t0) * 1e3,
        )

    @router.post(
        "/reload",
        response_model=ReloadResponse,
        dependencies=[AdminOnly],
        responses=error_responses(500),
    )
    def reload() -> ReloadResponse:
        """Load the run directory's artifacts again and swap them in atomically (videos added
        since are dropped: they are not in the artifacts); broken artifacts are a 500 and the
        previous searcher stays."""
        searcher, load_ms = slot.reload(lambda: load_scorer(run_dir, settings))
        return ReloadResponse(ranker=searcher.ranker, version=slot.version, load_ms=load_ms)

    return ServedSystem(name=SYSTEM, router=router, ready=lambda: slot.ready)
