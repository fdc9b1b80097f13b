"""Step 5, online: an A/B test in the world, the served model against common-neighbour ranking.

Users present on the serving day are split by a salted hash (:func:`mlsd.experiments.assign_arms`);
each sees the top :data:`SHOWN` of their arm's list every day of the test (the batch lists: the
served model's for treatment, common neighbours' for control). The world decides who sends a
request (its send probability, times an attention that decays with the position) and who
accepts (its accept probability); a person is asked at most once. Per user and day: requests
sent and requests accepted (the primary metric, Welch's t-test) and the acceptance rate (a
guardrail: more requests nobody accepts would be spam; delta-method ratio test).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from mlsd.comparisons import compare_means, compare_ratios
from mlsd.experiments import ABResult, assign_arms, srm_check
from mlsd.report import Blueprint
from mlsd.rng import rng
from mlsd.systems.people_you_may_know.features import Snapshot
from mlsd.systems.people_you_may_know.world import PymkWorld

SHOWN = 10
AB_DAYS = 3
AB_USERS = {"tiny": 10_000, "small": 30_000, "medium": 100_000, "large": 200_000}
SALT = "pymk-ab/v1"


@dataclass(frozen=True)
class OnlineTest:
    ab: ABResult

    def metrics(self) -> dict[str, Any]:
        return {"online": self.ab.to_dict()}


def simulate_requests(
    world: PymkWorld, snap: Snapshot, lists: pd.DataFrame, users: np.ndarray, arm: str
) -> tuple[np.ndarray, np.ndarray]:
    """Requests sent and accepted per user of ``users`` over the test's days."""
    shown = lists[(lists["rank"] <= SHOWN) & lists["u"].isin(users)]
    u, v = shown["u"].to_numpy(), shown["v"].to_numpy()
    pos = shown["rank"].to_numpy() - 1
    asked = np.zeros(len(u), bool)
    sent_u = np.zeros(len(users))
    acc_u = np.zeros(len(users))
    idx = np.searchsorted(users, u)
    for day in range(AB_DAYS):
        sel = ~asked
        sent, accepted = world.respond(snap.adj, u[sel], v[sel], pos[sel], f"{arm}/{day}")
        rows = np.flatnonzero(sel)
        asked[rows[sent]] = True
        sent_u += np.bincount(idx[rows], weights=sent.astype(float), minlength=len(users))
        acc_u += np.bincount(idx[rows], weights=accepted.astype(float), minlength=len(users))
    return sent_u / AB_DAYS, acc_u / AB_DAYS


def compute_online(
    world: PymkWorld,
    snap: Snapshot,
    treatment: pd.DataFrame,
    control: pd.DataFrame,
    treatment_name: str,
    control_name: str,
    scale: str,
    seed: int,
) -> OnlineTest:
    """``treatment`` / ``control``: the arms' ranked lists (``u, v, rank``)."""
    present = np.flatnonzero(snap.present)
    n = AB_USERS.get(scale, 30_000)
    if len(present) > n:
        present = np.sort(rng(seed, "pymk/ab-users").choice(present, n, replace=False))
    in_t = assign_arms(present, SALT)
    users_t, users_c = present[in_t], present[~in_t]
    sent_t, acc_t = simulate_requests(world, snap, treatment, users_t, "treatment")
    sent_c, acc_c = simulate_requests(world, snap, control, users_c, "control")
    tests = {
        "accepted_per_user_day": compare_means(
            acc_c, acc_t, metric="requests accepted per user per day"
        ),
        "sent_per_user_day": compare_means(sent_c, sent_t, metric="requests sent per user per day"),
        "acceptance_rate": compare_ratios(acc_c, sent_c, acc_t, sent_t, metric="acceptance rate"),
    }
    arms = {
        "control": {
            "policy": control_name,
            "units": len(users_c),
            "sent": float(sent_c.sum() * AB_DAYS),
            "accepted": float(acc_c.sum() * AB_DAYS),
        },
        "treatment": {
            "policy": treatment_name,
            "units": len(users_t),
            "sent": float(sent_t.sum() * AB_DAYS),
            "accepted": float(acc_t.sum() * AB_DAYS),
        },
    }
    ab = ABResult.decided(
        unit="user",
        arms=arms,
        tests=tests,
        primary="accepted_per_user_day",
        guardrails=("acceptance_rate",),
        srm=srm_check(len(users_c), len(users_t)),
    )
    return OnlineTest(ab)


def report_online(bp: Blueprint, result: OnlineTest) -> None:
    ab = result.ab
    bp.section("Online A/B test")
    bp.text(
        f"Users split 50/50 by a salted hash; each saw the top {SHOWN} of their arm's list on "
        f"each of {AB_DAYS} days, and the world decided who sent a request and who accepted. "
        "Primary metric: requests accepted per user per day; guardrail: the acceptance rate."
    )
    bp.table(
        ["arm", "policy", "users", "requests sent", "accepted"],
        ab.arm_rows(["policy", "units", "sent", "accepted"]),
    )
    bp.table(list(ab.TEST_HEADER), ab.test_rows())
    bp.text(ab.verdict())
