"""Step 5, online: an A/B test in the world of the served ranker against popular-nearby.

The world runs ``ab_days`` more days after the log. Users are split by a salted hash
(:func:`mlsd.experiments.assign_arms`); each session's open events pass the same event filtering,
then the arm's model ranks them and the top ``list_len`` are shown. The world draws clicks,
bookmarks and registrations with its true probabilities and position bias. The unit of
randomisation and of analysis is the user: registrations and revenue per user (Welch), and
click-through and bookmark rates per impression as ratios of per-user sums (delta method).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from mlsd.comparisons import compare_means, compare_ratios
from mlsd.experiments import ABResult, aggregate_per_unit, assign_arms, srm_check
from mlsd.report import Blueprint
from mlsd.systems.event_rec.features import Platform, in_filter, pair_frame
from mlsd.systems.event_rec.model import score
from mlsd.systems.event_rec.world import EventRecWorld, Log
from mlsd.systems.event_rec.world_state import SocialState

SALT = "event-rec/ab-test"


@dataclass(frozen=True)
class OnlineTest:
    ab: ABResult
    days: tuple[int, ...]

    def metrics(self) -> dict[str, Any]:
        return {"online": {**self.ab.to_dict(), "days": list(self.days)}}


def compute_online(
    world: EventRecWorld,
    platform: Platform,
    log_: Log,
    control: tuple[str, Any],
    treatment: tuple[str, Any],
    progress: Any = None,
) -> OnlineTest:
    cfg = world.config
    hood_e = platform.event_hood()

    def policy(state: SocialState, cand: pd.DataFrame) -> np.ndarray:
        u = cand["user_id"].to_numpy(np.int64)
        e = cand["event_id"].to_numpy(np.int64)
        ts = cand["ts"].to_numpy(np.int64)
        X = pair_frame(platform, state, u, e, ts, event_hood=hood_e)
        treat = assign_arms(u, SALT)
        s = np.empty(len(u))
        s[~treat] = score(control[1], X[~treat])
        s[treat] = score(treatment[1], X[treat])
        kept = in_filter(platform, u, e, ts)
        return np.where(kept, s, s - 1e6)  # filtered-out events only fill a short list

    days = range(cfg.n_days, cfg.total_days)
    ab_log = world.simulate(
        days, policy, "ab-test", log_.registrations, log_.invites, progress=progress
    )
    imp = ab_log.impressions
    price = platform.events["price"].to_numpy()[imp["event_id"].to_numpy()]
    users, n_imp = aggregate_per_unit(imp["user_id"].to_numpy(), np.ones(len(imp)))
    per_user = {"impressions": n_imp}
    for col in ("click", "register", "bookmark"):
        per_user[col] = aggregate_per_unit(imp["user_id"].to_numpy(), imp[col].to_numpy())[1]
    per_user["revenue"] = aggregate_per_unit(
        imp["user_id"].to_numpy(), imp["register"].to_numpy() * price
    )[1]
    treat = assign_arms(users, SALT)
    arms_mask = {"control": ~treat, "treatment": treat}
    arms = {}
    for arm, m in arms_mask.items():
        policy_name = control[0] if arm == "control" else treatment[0]
        arms[arm] = {
            "policy": policy_name,
            "units": int(m.sum()),
            "impressions": int(per_user["impressions"][m].sum()),
            "ctr": float(per_user["click"][m].sum() / max(per_user["impressions"][m].sum(), 1)),
            "registrations_per_user": float(per_user["register"][m].mean()),
            "bookmark_rate": float(
                per_user["bookmark"][m].sum() / max(per_user["impressions"][m].sum(), 1)
            ),
            "revenue_per_user": float(per_user["revenue"][m].mean()),
        }
    c, t = ~treat, treat
    tests = {
        "registrations_per_user": compare_means(
            per_user["register"][c], per_user["register"][t], metric="registrations per user"
        ),
        "ctr": compare_ratios(
            per_user["click"][c],
            per_user["impressions"][c],
            per_user["click"][t],
            per_user["impressions"][t],
            metric="click-through rate",
        ),
        "bookmark_rate": compare_ratios(
            per_user["bookmark"][c],
            per_user["impressions"][c],
            per_user["bookmark"][t],
            per_user["impressions"][t],
            metric="bookmark rate",
        ),
        "revenue_per_user": compare_means(
            per_user["revenue"][c], per_user["revenue"][t], metric="revenue per user"
        ),
    }
    ab = ABResult.decided(
        unit="user",
        arms=arms,
        tests=tests,
        primary="registrations_per_user",
        guardrails=("ctr",),
        srm=srm_check(int(c.sum()), int(t.sum())),
    )
    return OnlineTest(ab, tuple(days))


def report_online(bp: Blueprint, result: OnlineTest) -> None:
    ab = result.ab
    bp.text(
        f"The world runs {len(result.days)} more days; users are split 50/50 by a salted hash. "
        f"Control: **{ab.arms['control']['policy']}**; treatment: "
        f"**{ab.arms['treatment']['policy']}**. Both rank the same filtered candidates; the "
        "world draws clicks, bookmarks and registrations with position bias. Primary metric: "
        "registrations per user; guardrail: click-through rate."
    )
    bp.table(
        [
            "arm",
            "policy",
            "users",
            "impressions",
            "CTR",
            "registrations/user",
            "bookmark rate",
            "revenue/user",
        ],
        ab.arm_rows(
            [
                "policy",
                "units",
                "impressions",
                "ctr",
                "registrations_per_user",
                "bookmark_rate",
                "revenue_per_user",
            ]
        ),
    )
    bp.table(list(ab.TEST_HEADER), ab.test_rows())
    bp.text(ab.verdict())
