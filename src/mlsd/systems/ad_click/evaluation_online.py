"""Ad click prediction, step 5 (online evaluation): the A/B test in the simulated world.

On the day after the log, fresh feed requests are split 50/50 by a hash of the user id. Control
ranks the candidates by the baseline's p × bid, treatment by the served model's p × bid, both
through the serving path (:class:`~.serving.AdClickScorer`, made by the serving step); the world
shows the top slots and draws clicks from its true probabilities, position bias included. Users
are the unit of randomisation, so the per-impression ratios (CTR, revenue per 1000 impressions)
get delta-method intervals over users and revenue per user a Welch test. The launch decision
(:class:`mlsd.experiments.ABResult`) uses revenue per user, with CTR as a guardrail.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from mlsd import experiments as exp
from mlsd.comparisons import compare_means, compare_ratios
from mlsd.report import Blueprint
from mlsd.runner import ProgressFn
from mlsd.systems.ad_click.serving import AdClickScorer
from mlsd.systems.ad_click.world import AdClickWorld

log = logging.getLogger(__name__)

AB_REQUESTS = {"tiny": 1_500, "small": 20_000, "medium": 40_000, "large": 60_000}
AB_BATCH = 0  # the world's batch of online traffic the test runs on
UNIT = "user (hash of user id)"
PRIMARY, GUARDRAIL, RPM = "revenue_per_user", "ctr", "rpm"
ARM_COLUMNS = ("users", "impressions", "clicks", "ctr", "rpm")


@dataclass(frozen=True)
class OnlineTest:
    """The A/B test: the day and volume of traffic, and the experiment with its decision."""

    day: int
    requests: int
    ab: exp.ABResult

    def metrics(self) -> dict[str, Any]:
        return {"online": {"day": self.day, "requests": self.requests, **self.ab.to_dict()}}


def _arm(policy: str, shown: pd.DataFrame, rpm: float) -> dict[str, Any]:
    imps, clicks = len(shown), int(shown["click"].sum())
    return {
        "policy": policy,
        "users": int(shown["user_id"].nunique()),
        "impressions": imps,
        "clicks": clicks,
        "ctr": clicks / imps if imps else float("nan"),
        "rpm": rpm,
    }


def compute_online(
    world: AdClickWorld,
    control: AdClickScorer,
    treatment: AdClickScorer,
    *,
    n_requests: int,
    seed: int,
    progress: ProgressFn | None = None,
) -> OnlineTest:
    """Run the A/B test of ``treatment`` against ``control`` in ``world``."""
    day = int(world.n_days)  # the day after the log: the model goes live with yesterday's store
    salt = f"ab-{seed}"
    cand = world.sample_requests(day, n_requests, batch=AB_BATCH)
    is_treat = exp.assign_arms(cand["user_id"].to_numpy(), salt=salt)
    bids = cand["ad_id"].map(world.ads.set_index("ad_id")["bid"]).to_numpy()
    if progress is not None:
        progress("scoring control", 0, 2)
    p_c = control.score_frame(cand)
    if progress is not None:
        progress("scoring treatment", 1, 2)
    p_t = treatment.score_frame(cand)
    shown = world.show(cand, np.where(is_treat, p_t, p_c) * bids, batch=AB_BATCH)
    in_treatment = exp.assign_arms(shown["user_id"].to_numpy(), salt=salt)
    shown["arm"] = np.where(in_treatment, "treatment", "control")
    per_user = shown.groupby(["arm", "user_id"]).agg(
        clicks=("click", "sum"), revenue=("revenue", "sum"), imps=("click", "size")
    )
    c, t = per_user.loc["control"], per_user.loc["treatment"]
    tests = {
        PRIMARY: compare_means(
            c["revenue"].to_numpy(), t["revenue"].to_numpy(), metric="revenue per user ($)"
        ),
        GUARDRAIL: compare_ratios(
            c["clicks"].to_numpy(),
            c["imps"].to_numpy(),
            t["clicks"].to_numpy(),
            t["imps"].to_numpy(),
            metric="CTR",
        ),
        RPM: compare_ratios(
            c["revenue"].to_numpy() * 1000,
            c["imps"].to_numpy(),
            t["revenue"].to_numpy() * 1000,
            t["imps"].to_numpy(),
            metric="revenue per 1000 impressions ($)",
        ),
    }
    arms = {
        "control": _arm(control.model_name, shown[~in_treatment], tests[RPM].control),
        "treatment": _arm(treatment.model_name, shown[in_treatment], tests[RPM].treatment),
    }
    ab = exp.ABResult.decided(
        unit=UNIT,
        arms=arms,
        tests=tests,
        primary=PRIMARY,
        guardrails=(GUARDRAIL,),
        srm=exp.srm_check(arms["control"]["users"], arms["treatment"]["users"]),
    )
    log.info("A/B test: %s (%s)", ab.decision, ab.reason)
    return OnlineTest(day, n_requests, ab)


def report_online(bp: Blueprint, result: OnlineTest) -> None:
    """The blueprint's A/B-test section: the arms, every metric's comparison, the decision."""
    ab = result.ab
    control, treatment = ab.arms["control"]["policy"], ab.arms["treatment"]["policy"]
    bp.section("Online evaluation: A/B test")
    bp.text(
        f"{result.requests:,} feed requests on day {result.day}, users split 50/50 by a hash of "
        f"their id. Control ranks candidates by the baseline ({control}) p × bid, treatment by "
        f"the served model ({treatment}) p × bid. Clicks are drawn from the world's true "
        "probabilities, position bias included. Users are the unit of randomisation, so the "
        "per-impression ratios (CTR, revenue per 1000 impressions) get delta-method intervals "
        "over users, and revenue per user a Welch test; the decision uses revenue per user, with "
        "CTR as a guardrail."
    )
    bp.table(
        ["arm", "users", "impressions", "clicks", "CTR", "revenue / 1000 impressions ($)"],
        ab.arm_rows(ARM_COLUMNS),
    )
    bp.table(list(exp.ABResult.TEST_HEADER), ab.test_rows())
    bp.text(ab.verdict())
