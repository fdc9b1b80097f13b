"""HTTP for the personalized news feed: ``GET /v1/news-feed/users/{user_id}/feed``, publishing
and flagging posts, and a reload.

The handlers only translate HTTP to and from
:class:`~mlsd.systems.news_feed.serving.NewsFeedScorer` (loaded by
:func:`~mlsd.systems.news_feed.serving.load_scorer`), which retrieves, computes the features,
scores every reaction head and re-ranks, timing each stage. ``POST /posts`` publishes a post
(retrievable by the author's friends and followers at once, without a restart);
``POST /posts/{post_id}/flag`` is the demotion hook another system calls. Both, and the reload,
need an admin API key.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import numpy as np
from fastapi import APIRouter, Query
from fastapi import Path as PathParam
from pydantic import BaseModel, ConfigDict, Field

from mlsd.api.deps import (
    MAX_ID,
    AdminOnly,
    ApiError,
    BoundedId,
    ModelSlot,
    Observer,
    ServedSystem,
    error_responses,
)
from mlsd.settings import Settings
from mlsd.systems.news_feed.serving import SYSTEM, NewsFeedScorer, UnknownUserError, load_scorer
from mlsd.systems.news_feed.world_config import MEDIA, TOPICS

MAX_K = 100
Topic = Literal[
    "politics", "sports", "tech", "music", "food", "travel", "science", "fashion", "gaming", "pets"
]
Media = Literal["text", "image", "video"]


class PostOut(BaseModel):
    post_id: int
    author_id: int
    topic: str
    media: str
    age_h: float
    flagged: bool = Field(description="demoted by the flag hook")
    score: float = Field(description="the ranker's score: weighted engagement (or P(any))")
    heads: dict[str, float] = Field(description="predicted reactions and dwell seconds")


class FeedResponse(BaseModel):
    user_id: int
    model: str
    posts: list[PostOut]
    candidates: int = Field(description="posts retrieval found for this request")
    timings_ms: dict[str, float]


class NewPost(BaseModel):
    model_config = ConfigDict(extra="forbid")
    author_id: BoundedId
    topic: Topic
    media: Media


class PostCreated(BaseModel):
    post_id: int
    author_id: int


class FlagResponse(BaseModel):
    post_id: int
    flagged: bool


class ReloadResponse(BaseModel):
    model: str
    version: int
    load_ms: float


def make_served_system(run_dir: Path, settings: Settings, load: bool = True) -> ServedSystem:
    """The news-feed router for :func:`mlsd.api.main.create_app`, serving ``run_dir``."""
    run_dir = Path(run_dir)
    slot: ModelSlot[NewsFeedScorer] = ModelSlot(load_scorer(run_dir, settings) if load else None)
    router = APIRouter(prefix="/v1/news-feed", tags=[SYSTEM])

    @router.get(
        "/users/{user_id}/feed", response_model=FeedResponse, responses=error_responses(404)
    )
    def feed(
        observe: Observer,
        user_id: Annotated[int, PathParam(ge=-MAX_ID, le=MAX_ID, description="the user")],
        k: Annotated[int, Query(ge=1, le=MAX_K, description="how many posts")] = 20,
    ) -> FeedResponse:
        """The user's feed: retrieval (unseen posts of friends and followed pages), online
        features, multi-task scoring, re-ranking; with per-stage timings."""
        scorer = slot.get()
        try:
            out = scorer.feed(user_id, k=k)
        except UnknownUserError as exc:
            raise ApiError(404, str(exc)) from exc
        observe(SYSTEM, np.array([p.score for p in out.posts], dtype=np.float64))
        return FeedResponse(
            user_id=out.user_id,
            model=out.model,
            posts=[PostOut(**vars(p)) for p in out.posts],
            candidates=out.candidates,
            timings_ms=out.timings_ms,
        )

    @router.post(
        "/posts",
        response_model=PostCreated,
        dependencies=[AdminOnly],
        responses=error_responses(404),
    )
    def publish(body: NewPost) -> PostCreated:
        """Publish a post now; the author's friends and followers can retrieve it at once."""
        scorer = slot.get()
        try:
            post_id = scorer.publish(
                body.author_id, TOPICS.index(body.topic), MEDIA.index(body.media)
            )
        except UnknownUserError as exc:
            raise ApiError(404, str(exc)) from exc
        return PostCreated(post_id=post_id, author_id=body.author_id)

    @router.post(
        "/posts/{post_id}/flag",
        response_model=FlagResponse,
        dependencies=[AdminOnly],
        responses=error_responses(404),
    )
    def flag(
        post_id: Annotated[int, PathParam(ge=-MAX_ID, le=MAX_ID, description="the post")],
    ) -> FlagResponse:
        """Demote a post in every feed (the hook for another system's flags)."""
        try:
            slot.get().flag(post_id)
        except UnknownUserError as exc:
            raise ApiError(404, str(exc)) from exc
        return FlagResponse(post_id=post_id, flagged=True)

    @router.post(
        "/reload",
        response_model=ReloadResponse,
        dependencies=[AdminOnly],
        responses=error_responses(500),
    )
    def reload() -> ReloadResponse:
        """Load the run directory's artifacts again and swap them in atomically (posts
        published since are forgotten); broken artifacts are a 500 and the previous model
        stays."""
        scorer, load_ms = slot.reload(lambda: load_scorer(run_dir, settings))
        return ReloadResponse(model=scorer.model_name, version=slot.version, load_ms=load_ms)

    return ServedSystem(name=SYSTEM, router=router, ready=lambda: slot.ready)
