"""Video recommendation, steps 5-6: the canary rollout of the full pipeline in the world.

After the A/B test, the served pipeline (the A/B's treatment) replaces production (the A/B's
control, two-tower retrieval alone) on 1% → 5% → 25% → 100% of the users (:mod:`mlsd.canary`).
Each stage gives every signed-up user fresh home feeds from their arm, through the A/B's own
session simulation (:func:`~.evaluation_online_sessions.ab_sessions`); a user on the new
pipeline stays on it as the share grows. The chapter's guardrails: watch minutes per user (the
metric the chapter optimises) not down more than 5% against production, and CTR not down more
than 30%: the chapter trades clicks for watch time (a clickbait feed has a high CTR), so CTR
guards only against a collapse.
"""

from __future__ import annotations

import logging

import numpy as np

from mlsd.canary import (
    CanaryPlan,
    CanaryResult,
    Guardrail,
    StageArms,
    in_canary,
    min_units_for,
    run_canary,
)
from mlsd.canary_report import report_canary, small_world_note
from mlsd.report import Blueprint
from mlsd.rng import rng
from mlsd.systems.video_rec.evaluation_online import CONTROL, TREATMENT
from mlsd.systems.video_rec.evaluation_online_sessions import SLATE, ab_sessions
from mlsd.systems.video_rec.serving import Recommender
from mlsd.systems.video_rec.world import VideoRecWorld

log = logging.getLogger(__name__)

SESSIONS = 2  # home feeds per user and stage, as in the A/B test
TOLERANCE = 0.05
CTR_TOLERANCE = 0.30  # clicks are traded for watch time; only a collapse breaks


def plan_for(n_users: int) -> CanaryPlan:
    n = min_units_for(n_users)
    return CanaryPlan(
        (
            Guardrail("watch minutes per user", "minutes", tolerance=TOLERANCE, min_units=n),
            Guardrail(
                "CTR", "clicks", denominator="impressions", tolerance=CTR_TOLERANCE, min_units=n
            ),
        )
    )


def compute_canary(
    rec: Recommender,
    world: VideoRecWorld,
    seed: int,
    *,
    control: str = CONTROL,
    treatment: str = TREATMENT,
    plan: CanaryPlan | None = None,
) -> CanaryResult:
    """Roll the ``treatment`` serving mode out against ``control`` stage by stage."""
    users = np.flatnonzero(world.users["signup_day"].to_numpy() <= world.day)
    ranks = {m: rec.recommend_users(users, 2 * SLATE, m).ids for m in (control, treatment)}

    def run_stage(fraction: float, stage: int) -> StageArms:
        gen = rng(seed, f"video-rec/canary/stage-{stage}")
        treat = in_canary(users, fraction, salt=f"video-rec-canary-{seed}")
        clicks, minutes = ab_sessions(
            world, users, treat, ranks[control], ranks[treatment], gen, SESSIONS
        )
        per_user = {
            "minutes": minutes.sum(axis=1),
            "clicks": clicks.sum(axis=1),
            "impressions": np.full(len(users), float(SESSIONS * SLATE)),
        }
        return {
            "control": {k: v[~treat] for k, v in per_user.items()},
            "treatment": {k: v[treat] for k, v in per_user.items()},
        }

    result = run_canary(
        plan or plan_for(len(users)),
        run_stage,
        control=control,
        treatment=treatment,
        unit="users (hash of user id)",
    )
    log.info("canary: %s (%s)", result.outcome, result.reason)
    return result


def report_video_rec_canary(bp: Blueprint, result: CanaryResult) -> None:
    report_canary(
        bp,
        result,
        f"Each stage gives every signed-up user {SESSIONS} fresh home feeds of {SLATE} videos "
        "from their arm, simulated as in the A/B test; watch minutes per user get a Welch "
        "test, CTR the delta method over users. CTR may fall by up to 30%: the chapter trades "
        "clicks for watch time, so it guards only against a collapse." + small_world_note(result),
        "canary_traffic",
    )
