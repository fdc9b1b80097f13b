"""Video search, steps 5-6: the canary rollout of the served ranker in the world.

After the A/B test, the served ranker (the A/B's treatment) replaces production (text-only
BM25, the A/B's control) on 1% → 5% → 25% → 100% of the users (:mod:`mlsd.canary`). Each
stage is a fresh batch of the day's searches, each answered with its arm's page
(:func:`~.evaluation_online.search_pages`, the same re-ranking) and answered by the world's
users; a user on the new ranker stays on it as the share grows. The chapter's guardrails: the
click-through rate and the watch seconds per search, neither down more than 5% against
production.
"""

from __future__ import annotations

import logging

import numpy as np

from mlsd.canary import (
    CanaryPlan,
    CanaryResult,
    Guardrail,
    StageArms,
    arms_per_unit,
    in_canary,
    keep_for_stage,
    min_units_for,
    run_canary,
)
from mlsd.canary_report import report_canary, small_world_note
from mlsd.report import Blueprint
from mlsd.rng import rng
from mlsd.systems.video_search.evaluation_online import CONTROL, PAGE, search_pages
from mlsd.systems.video_search.serving import VideoSearcher
from mlsd.systems.video_search.world import VideoSearchWorld

log = logging.getLogger(__name__)

MAX_CONTROL = 1_000  # control searches simulated per stage (a hash-sample of their users)


def plan_for(n_users: int) -> CanaryPlan:
    n = min_units_for(n_users)
    return CanaryPlan(
        (
            Guardrail("CTR", "clicks", denominator="impressions", tolerance=0.05, min_units=n),
            Guardrail(
                "watch seconds per search",
                "watch_s",
                denominator="searches",
                tolerance=0.05,
                min_units=n,
            ),
        )
    )


def compute_canary(
    world: VideoSearchWorld, searcher: VideoSearcher, served: str, n: int, seed: int
) -> CanaryResult:
    """Roll ``served`` out against :data:`~.evaluation_online.CONTROL`, ``n`` searches a stage."""
    day = world.config.n_days
    salt = f"video-search-canary-{seed}"

    def run_stage(fraction: float, stage: int) -> StageArms:
        q = world.queries(day, n, f"canary-{stage}")
        users = q["user_id"].to_numpy()
        treat = in_canary(users, fraction, salt)
        keep = keep_for_stage(users, treat, MAX_CONTROL, f"{salt}/{stage}")
        q, users, treat = q[keep].reset_index(drop=True), users[keep], treat[keep]
        texts = q["text"].tolist()
        shown = np.full((len(q), PAGE), -1, np.int64)
        for mask, method in ((~treat, CONTROL), (treat, served)):
            if mask.any():
                shown[mask] = search_pages(
                    searcher, [t for t, m in zip(texts, mask, strict=True) if m], day, method
                )
        res = world.respond(
            q["intent_id"].to_numpy(), shown, rng(seed, f"video-search/canary/{stage}"), users
        )
        values = {
            "clicks": res.clicks.sum(axis=1).astype(np.float64),
            "impressions": np.full(len(q), float(PAGE)),
            "watch_s": res.watch_s.sum(axis=1),
            "searches": np.ones(len(q)),
        }
        return arms_per_unit(users, treat, values)

    result = run_canary(
        plan_for(world.config.n_users),
        run_stage,
        control=CONTROL,
        treatment=served,
        unit="users (hash of user id)",
    )
    log.info("canary: %s (%s)", result.outcome, result.reason)
    return result


def report_video_search_canary(bp: Blueprint, result: CanaryResult, n: int) -> None:
    report_canary(
        bp,
        result,
        f"Each stage is {n:,} fresh searches of the A/B's day: the canary's and a hash-sample "
        f"of at most about {MAX_CONTROL:,} control searches, each answered with its arm's page "
        "of the same re-ranking. CTR and watch seconds per search are ratios of per-user sums "
        "(delta method)." + small_world_note(result),
        "canary_traffic",
    )
