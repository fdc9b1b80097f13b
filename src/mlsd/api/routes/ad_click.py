"""HTTP for ad click prediction: ``POST /v1/ad-click/score`` and ``POST /v1/ad-click/reload``.

The request and response models and the router; the handlers only translate HTTP to and from
:class:`~mlsd.systems.ad_click.serving.AdClickScorer` (loaded by
:func:`~mlsd.systems.ad_click.serving.load_scorer`), which does the work.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Literal

import numpy as np
from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from mlsd.api.deps import ApiError, ModelSlot, Observer, ServedSystem
from mlsd.serving import ServingArtifactError
from mlsd.settings import Settings
from mlsd.systems.ad_click.features import UnknownIdError
from mlsd.systems.ad_click.serving import SYSTEM, AdClickScorer, CandidateError, load_scorer


class RequestContext(BaseModel):
    """The feed request's context."""

    model_config = ConfigDict(strict=True, extra="forbid")
    hour: int = Field(ge=0, le=23, description="hour of day, 0-23")
    device: Literal["ios", "android", "web"]


class ScoreRequest(BaseModel):
    """A user, the request's context and the candidate ads from candidate generation."""

    model_config = ConfigDict(strict=True, extra="forbid")
    user_id: int
    context: RequestContext
    ad_ids: list[int] = Field(min_length=1, description="candidates, at most max_candidates")
    k: int | None = Field(default=None, ge=1, description="return only the top k")


class AdScoreOut(BaseModel):
    ad_id: int
    p_click: float
    bid: float
    expected_value: float


class ScoreResponse(BaseModel):
    model: str
    user_id: int
    ads: list[AdScoreOut]
    timings_ms: dict[str, float]


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

    @router.post("/score", response_model=ScoreResponse)
    def score(body: ScoreRequest, observe: Observer) -> ScoreResponse:
        """Rank the candidate ads by expected value, P(click) × bid."""
        if len(body.ad_ids) > settings.max_candidates:
            raise ApiError(
                422, f"ad_ids: at most {settings.max_candidates} candidates, got {len(body.ad_ids)}"
            )
        scorer = slot.get()
        try:
            result = scorer.score(
                body.user_id, body.context.hour, body.context.device, body.ad_ids, k=body.k
            )
        except UnknownIdError as exc:
            raise ApiError(404, _unknown_message(exc)) from exc
        except CandidateError as exc:
            raise ApiError(422, str(exc)) from exc
        except ConnectionError as exc:  # the online store (Redis) is unreachable
            raise ApiError(503, f"online store unavailable: {exc}") from exc
        observe(SYSTEM, np.array([a.p_click for a in result.ads]))
        return ScoreResponse(
            model=result.model,
            user_id=result.user_id,
            ads=[AdScoreOut(**vars(a)) for a in result.ads],
            timings_ms=result.timings_ms,
        )

    @router.post("/reload", response_model=ReloadResponse)
    def reload() -> ReloadResponse:
        """Load the run directory's artifacts again and swap them in atomically."""
        with reload_lock:
            t0 = time.perf_counter()
            try:
                scorer = load_scorer(run_dir, settings)
            except (ServingArtifactError, ConnectionError) as exc:
                raise ApiError(500, f"reload failed, previous model kept: {exc}") from exc
            slot.swap(scorer)
            return ReloadResponse(
                model=scorer.model_name,
                version=slot.version,
                load_ms=(time.perf_counter() - t0) * 1000.0,
            )

    return ServedSystem(name=SYSTEM, router=router, ready=lambda: slot.ready)


def _unknown_message(exc: UnknownIdError) -> str:
    return f"unknown {exc.kind} ids: {sorted(int(i) for i in exc.ids)}"
