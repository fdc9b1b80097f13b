"""News feed, steps 5-6: the canary rollout of the multi-task ranker in the world.

After the A/B test, the multi-task ranker (the A/B's treatment) replaces production (the
single click classifier, the A/B's control) on 1% → 5% → 25% → 100% of the users
(:mod:`mlsd.canary`). Each stage runs the days after the log again from the logged history (a
parallel world, as the weights experiment does) through the A/B's serving path
(:func:`~.evaluation_online.reranked_policy`: features, the arm's ranker, re-ranking); a user on
the new ranker stays on it as the share grows. The chapter's guardrails: time spent per user
(the primary) not down more than 5%, and the negative feedback the chapter warns about, hides
and blocks per user, not up by more than one per 100 (hides) or 200 (blocks) users a day.
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
    in_canary,
    min_units_for,
    run_canary,
)
from mlsd.canary_report import report_canary, small_world_note
from mlsd.report import Blueprint
from mlsd.systems.news_feed.evaluation_online import arm_figures, reranked_policy
from mlsd.systems.news_feed.features import Platform
from mlsd.systems.news_feed.model import ranking_score
from mlsd.systems.news_feed.serving_rerank import RerankConfig
from mlsd.systems.news_feed.world import Log, NewsFeedWorld

log = logging.getLogger(__name__)

STAGE_DAYS = 4  # days after the log each stage runs (at most the A/B's)
# hides and blocks are rare (production: about 0.03 and 0.01 per user a day, and often none
# in a small stage), so their tolerances are absolute: one more per 100 / 200 users a day
HIDES_TOLERANCE, BLOCKS_TOLERANCE = 0.01, 0.005


def plan_for(n_users: int) -> CanaryPlan:
    n = min_units_for(n_users)
    return CanaryPlan(
        (
            Guardrail("time spent (s) per user", "dwell", tolerance=0.05, min_units=n),
            Guardrail(
                "hides per user",
                "hide",
                higher_is_better=False,
                tolerance=HIDES_TOLERANCE,
                relative=False,
                min_units=n,
            ),
            Guardrail(
                "blocks per user",
                "block",
                higher_is_better=False,
                tolerance=BLOCKS_TOLERANCE,
                relative=False,
                min_units=n,
            ),
        )
    )


def stage_days(world: NewsFeedWorld) -> range:
    cfg = world.config
    return range(cfg.n_days, min(cfg.total_days, cfg.n_days + STAGE_DAYS))


def compute_canary(
    world: NewsFeedWorld,
    platform: Platform,
    log_: Log,
    control: tuple[str, Any],
    treatment: tuple[str, Any],
    rerank: RerankConfig,
    seed: int,
) -> CanaryResult:
    """Roll ``treatment`` out against ``control`` (``(name, model)``, as in the A/B test)."""
    salt = f"news-feed/canary-{seed}"

    def run_stage(fraction: float, stage: int) -> StageArms:
        def scorer(X: pd.DataFrame, cand: pd.DataFrame) -> np.ndarray:
            treat = in_canary(cand["user_id"].to_numpy(), fraction, salt)
            s = np.empty(len(X))
            for mask, model in ((~treat, control[1]), (treat, treatment[1])):
                if mask.any():
                    s[mask] = ranking_score(model, X[mask])
            return s

        lg = world.simulate(
            stage_days(world),
            reranked_policy(world, platform, scorer, rerank),
            f"canary-{seed}/stage-{stage}",
            log_.impressions,
        )
        fig = arm_figures(lg)
        treat = in_canary(fig.users, fraction, salt)
        return {
            "control": {k: v[~treat] for k, v in fig.per_user.items()},
            "treatment": {k: v[treat] for k, v in fig.per_user.items()},
        }

    days = stage_days(world)  # the population: users active over as many logged days
    imp = log_.impressions
    recent = imp["day"].to_numpy() >= world.config.n_days - len(days)
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


def report_news_feed_canary(bp: Blueprint, result: CanaryResult, world: NewsFeedWorld) -> None:
    days = stage_days(world)
    report_canary(
        bp,
        result,
        f"Each stage runs days {days.start}–{days.stop - 1} after the log again from the logged "
        "history (a "
        "parallel world with its own random stream) through the A/B's serving path: features, "
        "the arm's ranker, re-ranking. Per user: time spent, hides and blocks (Welch); users "
        "without a session those days are not in the stage. Hides and blocks are rare, so their "
        f"tolerances are absolute: +{HIDES_TOLERANCE:g} hides and +{BLOCKS_TOLERANCE:g} blocks "
        "per user." + small_world_note(result),
        "canary_traffic",
    )
