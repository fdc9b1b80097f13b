"""Step 6 for people you may know over HTTP: the precomputed lists (book ch. 11, "Serving").

``GET /v1/people-you-may-know/users/{user_id}?k=20`` answers a known user's list from the daily
batch job's artifacts (a lookup, no model at request time); an unknown user gets a 404 with a
message. ``POST /v1/people-you-may-know/new-user`` is the online path for a user who joined
after the batch: candidates, features and the served model computed at request time from their
school, employer, city, age and first friends. ``POST /v1/people-you-may-know/reload`` (an
admin API key's route) loads the run's artifacts again and swaps them in atomically. The
lists are loaded by :func:`mlsd.systems.people_you_may_know.serving.load_scorer`.
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
from mlsd.systems.people_you_may_know.serving import (
    SYSTEM,
    TOP_K,
    PymkLists,
    UnknownUsersError,
    load_scorer,
)


class PersonOut(BaseModel):
    user_id: int
    score: float = Field(description="the served model's score (higher: more likely friends)")
    mutual_friends: int


class PeopleResponse(BaseModel):
    user_id: int | None = Field(description="null for a new user (computed online)")
    online: bool = Field(description="computed at request time (a new user), not precomputed")
    model: str
    as_of_day: int | None
    people: list[PersonOut]
    latency_ms: float


class NewUser(BaseModel):
    """A user who joined after the last batch: who they are and whom they already befriended."""

    model_config = ConfigDict(extra="forbid")
    school: BoundedId = Field(default=-1, description="school id; -1 unknown")
    employer: BoundedId = Field(default=-1, description="employer id; -1 unknown")
    city: BoundedId = Field(default=-1, description="city id; -1 unknown")
    age: JsonInt = Field(default=30, ge=13, le=120)
    friends: list[BoundedId] = Field(
        default_factory=list, max_length=1000, description="user ids of their first friends"
    )
    k: JsonInt = Field(default=20, ge=1, le=TOP_K)


class ReloadResponse(BaseModel):
    version: int
    load_ms: float


def make_served_system(run_dir: Path, settings: Settings, load: bool = True) -> ServedSystem:
    """The people-you-may-know router for :func:`mlsd.api.main.create_app`, serving ``run_dir``."""
    slot: ModelSlot[PymkLists] = ModelSlot(load_scorer(run_dir, settings) if load else None)
    router = APIRouter(prefix="/v1/people-you-may-know", tags=[SYSTEM])

    @router.get("/users/{user_id}", response_model=PeopleResponse, responses=error_responses(404))
    def people(
        observe: Observer,
        user_id: int = PathParam(ge=-MAX_ID, le=MAX_ID),
        k: int = Query(20, ge=1, le=TOP_K),
    ) -> Any:
        """The people a known user may know, from the latest batch job."""
        lists = slot.get()
        t0 = time.perf_counter()
        if not lists.known(user_id):
            raise ApiError(
                404,
                f"unknown user_id {user_id}: not a user of the graph the batch job ran on "
                "(a user who joined since: POST /v1/people-you-may-know/new-user)",
            )
        found = lists.recommend(user_id, k)
        observe(SYSTEM, np.array([p.score for p in found], dtype=np.float64))
        day = lists.meta.get("as_of_day")
        return PeopleResponse(
            user_id=user_id,
            online=False,
            model=str(lists.meta.get("model", "")),
            as_of_day=int(day) if isinstance(day, int) else None,
            people=[
                PersonOut(user_id=p.user_id, score=p.score, mutual_friends=p.mutual_friends)
                for p in found
            ],
            latency_ms=(time.perf_counter() - t0) * 1000.0,
        )

    @router.post("/new-user", response_model=PeopleResponse, responses=error_responses(404))
    def new_user(body: NewUser, observe: Observer) -> Any:
        """People a user who joined after the batch may know, computed online from their
        school, employer, city, age and first friends (the cold start)."""
        lists = slot.get()
        t0 = time.perf_counter()
        attrs = {"school": body.school, "employer": body.employer, "city": body.city}
        try:
            found = lists.recommend_new(
                {**attrs, "age": body.age}, list(dict.fromkeys(body.friends)), body.k
            )
        except UnknownUsersError as exc:
            raise ApiError(404, f"friends: {exc}") from exc
        observe(SYSTEM, np.array([p.score for p in found], dtype=np.float64))
        day = lists.meta.get("as_of_day")
        return PeopleResponse(
            user_id=None,
            online=True,
            model=str(lists.meta.get("model", "")),
            as_of_day=int(day) if isinstance(day, int) else None,
            people=[
                PersonOut(user_id=p.user_id, score=p.score, mutual_friends=p.mutual_friends)
                for p in found
            ],
            latency_ms=(time.perf_counter() - t0) * 1000.0,
        )

    @router.post(
        "/reload",
        response_model=ReloadResponse,
        dependencies=[AdminOnly],
        responses=error_responses(500),
    )
    def reload() -> ReloadResponse:
        """Load the run's lists again and swap them in atomically."""
        _, load_ms = slot.reload(lambda: load_scorer(run_dir, settings), what="lists")
        return ReloadResponse(version=slot.version, load_ms=load_ms)

    return ServedSystem(name=SYSTEM, router=router, ready=lambda: slot.ready)
