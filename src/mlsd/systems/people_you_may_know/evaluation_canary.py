"""People you may know, steps 5-6: the canary rollout of the served lists in the world.

After the A/B test, the served model's lists (the A/B's treatment) replace production's
(common-neighbour ranking, the A/B's control) on 1% → 5% → 25% → 100% of the users
(:mod:`mlsd.canary`). Each stage shows every user the top of their arm's list for the A/B's
days, and the world decides who sends a request and who accepts
(:func:`~.evaluation_online.simulate_requests`, its own random stream per stage); a user on the
new lists stays on them as the share grows. The chapter's guardrails: requests accepted per
user per day (the connections the feature exists for) not down more than 5%, and the
acceptance rate not down more than 5% (more requests nobody accepts would be spam).
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from mlsd.canary import (
    CanaryPlan,
    CanaryResult,
    Guardrail,
    StageArms,
    in_canary,
    keep_for_stage,
    min_units_for,
    run_canary,
)
from mlsd.canary_report import report_canary, small_world_note
from mlsd.report import Blueprint
from mlsd.rng import rng
from mlsd.systems.people_you_may_know.evaluation_online import (
    AB_DAYS,
    AB_USERS,
    SHOWN,
    simulate_requests,
)
from mlsd.systems.people_you_may_know.features import Snapshot
from mlsd.systems.people_you_may_know.world import PymkWorld

log = logging.getLogger(__name__)

MAX_CONTROL = 5_000  # control users simulated per stage (a hash-sample)


def plan_for(n_users: int) -> CanaryPlan:
    n = min_units_for(n_users)
    return CanaryPlan(
        (
            Guardrail("requests accepted per user per day", "accepted", min_units=n),
            Guardrail("acceptance rate", "accepted", denominator="sent", min_units=n),
        )
    )


def compute_canary(
    world: PymkWorld,
    snap: Snapshot,
    treatment: pd.DataFrame,
    control: pd.DataFrame,
    treatment_name: str,
    control_name: str,
    scale: str,
    seed: int,
) -> CanaryResult:
    """``treatment`` / ``control``: the arms' ranked lists (``u, v, rank``), as in the A/B."""
    present = np.flatnonzero(snap.present)
    n = AB_USERS.get(scale, 30_000)
    if len(present) > n:
        present = np.sort(rng(seed, "pymk/ab-users").choice(present, n, replace=False))
    salt = f"pymk-canary/{seed}"

    def run_stage(fraction: float, stage: int) -> StageArms:
        in_t = in_canary(present, fraction, salt)
        keep = keep_for_stage(present, in_t, MAX_CONTROL, f"{salt}/{stage}")
        out = {}
        for arm, mask, lists in (
            ("control", keep & ~in_t, control),
            ("treatment", in_t, treatment),
        ):
            users = present[mask]
            if users.size == 0:
                out[arm] = {"accepted": np.zeros(0), "sent": np.zeros(0)}
                continue
            sent, acc = simulate_requests(world, snap, lists, users, f"canary-{stage}/{arm}")
            out[arm] = {"accepted": acc, "sent": sent}
        return out

    result = run_canary(
        plan_for(len(present)),
        run_stage,
        control=control_name,
        treatment=treatment_name,
        unit="users (hash of user id)",
    )
    log.info("canary: %s (%s)", result.outcome, result.reason)
    return result


def report_pymk_canary(bp: Blueprint, result: CanaryResult) -> None:
    report_canary(
        bp,
        result,
        f"Each stage shows the canary's users and a hash-sample of at most {MAX_CONTROL:,} "
        f"control users the top {SHOWN} of their arm's list on each of {AB_DAYS} days; the "
        "world decides who sends a request and who accepts, from a random stream of the "
        "stage's own. Accepted requests per user per day get a Welch test, the acceptance "
        "rate the delta method over users." + small_world_note(result),
        "canary_traffic",
    )
