"""HTTP for ad click prediction: ``POST /v1/ad-click/score`` and ``POST /v1/ad-click/reload``.

The request and response models and the router; the handlers only translate HTTP to and from
:class:`~mlsd.systems.ad_click.serving.AdClickScorer` (loaded by
:func:`~mlsd.systems.ad_click.serving.load_scorer`), which does the work. The scoring handler is
lean: it is a hot route (:mod:`mlsd.api.hot`: the body validated in one step, no per-request
dependency solving), served from memory it scores on the event loop (a millisecond of CPU; no
thread hop), and it writes the :class:`ScoreResponse` body once from the result's arrays
(:func:`score_json`) instead of building and re-validating a response model of one object per
candidate.

With a Redis online store, scoring never fails for the store's sake: while Redis is down, frozen
or re-seeding the run's tables, the answer is still a 200, scored from the run's snapshot of the
ads and a default user, with ``"degraded": true`` and the reason; ``/readyz`` says not ready
meanwhile. A reload to another run lets the old run's keys expire after a grace period.
"""

from __future__ import annotations

import threading
import time
from functools import partial
from pathlib import Path
from typing import Literal

from fastapi import APIRouter, Response
from pydantic import BaseModel, ConfigDict, Field
from pydantic_core import to_json
from starlette.concurrency import run_in_threadpool

from mlsd.api.deps import (
    AdminOnly,
    ApiError,
    BoundedId,
    HotRoute,
    JsonInt,
    ModelSlot,
    Observer,
    PositiveInt,
    PredictionObserver,
    ServedSystem,
    error_responses,
)
from mlsd.serving import ServingArtifactError
from mlsd.settings import Settings
from mlsd.systems.ad_click.features import UnknownIdError
from mlsd.systems.ad_click.serving import (
    SYSTEM,
    AdClickScorer,
    CandidateError,
    ScoreResult,
    load_scorer,
)


class RequestContext(BaseModel):
    """The feed request's context."""

    model_config = ConfigDict(strict=True, extra="forbid")
    hour: JsonInt = Field(ge=0, le=23, description="hour of day, 0-23")
    device: Literal["ios", "android", "web"]


class ScoreRequest(BaseModel):
    """A user, the request's context and the candidate ads from candidate generation."""

    model_config = ConfigDict(strict=True, extra="forbid")
    user_id: BoundedId
    context: RequestContext
    ad_ids: list[BoundedId] = Field(
        min_length=1,
        description="candidates, distinct, at most max_candidates",
        json_schema_extra={"uniqueItems": True},
    )
    k: PositiveInt | None = Field(default=None, description="return only the top k")


class AdScoreOut(BaseModel):
    ad_id: int
    p_click: float
    bid: float
    expected_value: float


DEGRADED_DOC = (
    "true when the online store could not serve (down, timed out, circuit breaker open, or "
    "re-seeding this run's tables after losing them): the ads' features and bids then come from "
    "the run's snapshot and the user's are defaults (no history, the prior CTR)"
)


class ScoreResponse(BaseModel):
    model: str
    user_id: int
    ads: list[AdScoreOut]
    timings_ms: dict[str, float]
    degraded: bool = Field(default=False, description=DEGRADED_DOC)
    degraded_reason: str | None = Field(
        default=None, description="why the answer is degraded; null when it is not"
    )


class ReloadResponse(BaseModel):
    model: str
    version: int
    load_ms: float


def make_served_system(run_dir: Path, settings: Settings, load: bool = True) -> ServedSystem:
    """The ad-click router for :func:`mlsd.api.main.create_app`, serving ``run_dir``'s model.

    With ``load=False`` the model is loaded on the first ``POST /v1/ad-click/reload`` (until then
    ``/readyz`` answers 503).
    """
    run_dir = Path(run_dir)
    slot: ModelSlot[AdClickScorer] = ModelSlot(load_scorer(run_dir, settings) if load else None)
    reload_lock = threading.Lock()
    router = APIRouter(prefix="/v1/ad-click", tags=[SYSTEM])

    async def handle(body: ScoreRequest, observe: PredictionObserver) -> bytes:
        """The JSON answer to a valid request (the hot path's handler and the route's)."""
        if len(body.ad_ids) > settings.max_candidates:
            raise ApiError(
                422, f"ad_ids: at most {settings.max_candidates} candidates, got {len(body.ad_ids)}"
            )
        scorer = slot.get()
        call = partial(
            scorer.score, body.user_id, body.context.hour, body.context.device, body.ad_ids, body.k
        )
        try:
            # from memory, scoring is a millisecond of CPU: done on the event loop, no thread
            # hop; a store behind the network may block up to its timeouts: the thread pool
            result = call() if scorer.guard is None else await run_in_threadpool(call)
        except UnknownIdError as exc:
            raise ApiError(404, _unknown_message(exc)) from exc
        except CandidateError as exc:
            raise ApiError(422, str(exc)) from exc
        except ConnectionError as exc:  # no fallback (never with Redis): the message is redacted
            raise ApiError(503, f"online store unavailable: {exc}") from exc
        observe(SYSTEM, result.p_click)
        return score_json(result)

    @router.post("/score", response_model=ScoreResponse, responses=error_responses(404))
    async def score(body: ScoreRequest, observe: Observer) -> Response:
        """Rank the candidate ads by expected value, P(click) × bid.

        While the online store cannot serve, the answer is still a 200 with ``degraded: true``
        and ``degraded_reason``: scored from the run's snapshot of the ads and a default user.
        Served on the app's hot path (:mod:`mlsd.api.hot`); this route documents it.
        """
        return Response(await handle(body, observe), media_type="application/json")

    @router.post(
        "/reload",
        response_model=ReloadResponse,
        dependencies=[AdminOnly],
        responses=error_responses(500, 503),
    )
    def reload() -> ReloadResponse:
        """Load the run directory's artifacts again and swap them in atomically.

        On Redis the new run's tables are written under its own run id before the swap (nothing
        is written when the run is unchanged), so readers never see a half-loaded table; the
        replaced run's keys expire after ``redis_retire_ttl_s``. A Redis that cannot be reached
        is a 503, broken artifacts a 500; either way the previous model stays.
        """
        with reload_lock:
            t0 = time.perf_counter()
            try:
                scorer = load_scorer(run_dir, settings)
            except ServingArtifactError as exc:
                raise ApiError(500, f"reload failed, previous model kept: {exc}") from exc
            except ConnectionError as exc:  # the message names the URL without its password
                raise ApiError(503, f"reload failed, previous model kept: {exc}") from exc
            old = slot.swap(scorer)
            if old is not None and old.run_id != scorer.run_id:
                old.retire()
            return ReloadResponse(
                model=scorer.model_name,
                version=slot.version,
                load_ms=(time.perf_counter() - t0) * 1000.0,
            )

    def ready() -> bool:
        """A model is loaded and its online store can serve (at most one bounded call)."""
        return slot.ready and slot.get().ready()

    hot = HotRoute(path=f"{router.prefix}/score", body=ScoreRequest, handle=handle)
    return ServedSystem(name=SYSTEM, router=router, ready=ready, hot_routes=(hot,))


def score_json(result: ScoreResult) -> bytes:
    """The :class:`ScoreResponse` body of ``result``, serialised once from its arrays (no
    response model built and validated again per request; the test holds the two equal)."""
    columns = (result.ad_ids.tolist(), result.p_click.tolist(), result.bids.tolist())
    ads = [
        {"ad_id": a, "p_click": p, "bid": b, "expected_value": v}
        for a, p, b, v in zip(*columns, result.expected_value.tolist(), strict=True)
    ]
    body = {
        "model": result.model,
        "user_id": result.user_id,
        "ads": ads,
        "timings_ms": result.timings_ms,
        "degraded": result.degraded,
        "degraded_reason": result.degraded_reason,
    }
    return to_json(body)


def _unknown_message(exc: UnknownIdError) -> str:
    return f"unknown {exc.kind} ids: {sorted(int(i) for i in exc.ids)}"
