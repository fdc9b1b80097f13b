"""Event recommendation, steps 5-6: the canary rollout of the served ranker in the world.

After the A/B test, the served ranker (the A/B's treatment) replaces production
(popular-nearby, the A/B's control) on 1% → 5% → 25% → 100% of the users
(:mod:`mlsd.canary`). Each stage runs the days after the log again from the same logged state
(a parallel world, as interleaving does) with the stage's share of the users on the new
ranker; a user on it stays on it as the share grows. The chapter's guardrails: registrations
per user (what the platform is paid for) and the click-through rate, neither down more than 5%
against production.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd

from mlsd.canary import (
    CanaryPlan,
    CanaryResult,
    Guardrail,
    StageArms,
    arms_per_unit,
    in_canary,
    min_units_for,
    run_canary,
)
from mlsd.canary_report import report_canary, small_world_note
from mlsd.report import Blueprint
from mlsd.systems.event_rec.evaluation_online import policy_scorer
from mlsd.systems.event_rec.features import Platform
from mlsd.systems.event_rec.world import EventRecWorld, Log
from mlsd.systems.event_rec.world_state import SocialState

log = logging.getLogger(__name__)

STAGE_DAYS = 4  # days after the log each stage runs (at most the A/B's)


def plan_for(n_users: int) -> CanaryPlan:
    n = min_units_for(n_users)
    return CanaryPlan(
        (
            Guardrail("registrations per user", "register", tolerance=0.05, min_units=n),
            Guardrail("CTR", "click", denominator="impressions", tolerance=0.05, min_units=n),
        )
    )


def stage_days(world: EventRecWorld) -> range:
    cfg = world.config
    return range(cfg.n_days, min(cfg.total_days, cfg.n_days + STAGE_DAYS))


def compute_canary(
    world: EventRecWorld,
    platform: Platform,
    log_: Log,
    control: tuple[str, Any],
    treatment: tuple[str, Any],
    seed: int = 0,
) -> CanaryResult:
    """Roll ``treatment`` out against ``control`` (``(name, model)`` as in the A/B test)."""
    scores = policy_scorer(platform)
    salt = f"event-rec/canary-{seed}"

    def run_stage(fraction: float, stage: int) -> StageArms:
        def policy(state: SocialState, cand: pd.DataFrame) -> np.ndarray:
            treat = in_canary(cand["user_id"].to_numpy(np.int64), fraction, salt)
            s = np.empty(len(cand))
            for arm, model in ((~treat, control[1]), (treat, treatment[1])):
                if arm.any():
                    s[arm] = scores(state, cand[arm], model)
            return s

        imp = world.simulate(
            stage_days(world),
            policy,
            f"canary-{seed}/stage-{stage}",
            log_.registrations,
            log_.invites,
        ).impressions
        users = imp["user_id"].to_numpy(np.int64)
        values = {
            "impressions": np.ones(len(imp)),
            "click": imp["click"].to_numpy(np.float64),
            "register": imp["register"].to_numpy(np.float64),
        }
        return arms_per_unit(users, in_canary(users, fraction, salt), values)

    n_days = len(stage_days(world))  # the population: users active over as many logged days
    imp = log_.impressions
    recent = imp["day"].to_numpy() >= world.config.n_days - n_days
    active = int(pd.unique(imp["user_id"].to_numpy()[recent]).size) or world.config.n_users
    result = run_canary(
        plan_for(active),
        run_stage,
        control=control[0],
        treatment=treatment[0],
        unit="users (hash of user id)",
    )
    log.info("canary: %s (%s)", result.outcome, result.reason)
    return result


def report_event_rec_canary(bp: Blueprint, result: CanaryResult, world: EventRecWorld) -> None:
    days = stage_days(world)
    report_canary(
        bp,
        result,
        f"Each stage runs days {days.start}–{days.stop - 1} after the log again from the logged "
        "state (a parallel world, its own random stream); a user's sessions are ranked by "
        "their arm's model. Registrations per user get a Welch test, CTR the delta method over "
        "users; users without a session in the stage's days are not in it."
        + small_world_note(result),
        "canary_traffic",
    )
