"""Similar listings, steps 5-6: the canary rollout of the served embeddings in the world.

After the A/B test, the served model's carousel (the A/B's treatment) replaces production's
(co-occurrence, the A/B's control) on 1% → 5% → 25% → 100% of the users
(:mod:`mlsd.canary`). Each stage is a fresh set of search sessions on the A/B's day, played by
the world as in the A/B (:meth:`~.world.SimilarListingsWorld.play_session`); a user on the new
carousel stays on it as the share grows. The chapter's guardrails: the session booking rate
(what the platform is paid for) and the carousel's click-through rate, neither down more than
5% against production.
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
from mlsd.systems.similar_listings.evaluation_online import CAROUSEL_K
from mlsd.systems.similar_listings.model import ListingSimilarity, region_top_k
from mlsd.systems.similar_listings.world import SimilarListingsWorld

log = logging.getLogger(__name__)

MAX_PER_ARM = 500  # sessions played per arm and stage, at most (a hash-sample of its users)


def plan_for(n_users: int) -> CanaryPlan:
    n = min_units_for(n_users)
    return CanaryPlan(
        (
            Guardrail(
                "session booking rate",
                "booked",
                denominator="sessions",
                tolerance=0.05,
                min_units=n,
            ),
            Guardrail(
                "carousel CTR",
                "carousel_clicks",
                denominator="carousel_shown",
                tolerance=0.05,
                min_units=n,
            ),
        )
    )


def compute_canary(
    world: SimilarListingsWorld, arms: dict[str, tuple[str, ListingSimilarity]], seed: int
) -> CanaryResult:
    """Roll ``arms["treatment"]`` out against ``arms["control"]`` (``(name, model)``)."""
    cfg = world.config
    n, day = cfg.online_sessions, cfg.n_days
    region = world.listings["region"].to_numpy()
    everyone = np.arange(world.n_listings)
    tops = {arm: region_top_k(m, everyone, region, CAROUSEL_K) for arm, (_, m) in arms.items()}
    salt = f"similar-listings-canary-{seed}"

    def run_stage(fraction: float, stage: int) -> StageArms:
        r = rng(seed, f"similar-listings/canary/stage-{stage}/sessions")
        users, regions = r.integers(0, cfg.n_users, n), r.integers(0, cfg.n_regions, n)
        treat = in_canary(users, fraction, salt)
        keep = keep_for_stage(users, treat, MAX_PER_ARM, f"{salt}/{stage}", MAX_PER_ARM)
        keep = np.flatnonzero(keep)
        behaviour = rng(seed, f"similar-listings/canary/stage-{stage}/behaviour")
        rows: list[tuple[int, float, float, float]] = []
        for i in keep:
            top = tops["treatment" if treat[i] else "control"]

            def carousel(listing: int, reg: int, d: int, top: np.ndarray = top) -> np.ndarray:
                row: np.ndarray = top[listing]
                return row[row >= 0]

            s = world.play_session(int(users[i]), int(regions[i]), day, behaviour, carousel)
            if s.clicks:  # as in the A/B: a session without a click never saw a carousel
                rows.append(
                    (int(users[i]), float(s.booked >= 0), s.carousel_clicks, s.carousel_shown)
                )
        u, booked, clicks, shown = (np.asarray(c) for c in zip(*rows, strict=True))
        values = {
            "booked": booked,
            "sessions": np.ones(len(u)),
            "carousel_clicks": clicks,
            "carousel_shown": shown,
        }
        return arms_per_unit(u, in_canary(u, fraction, salt), values)

    result = run_canary(
        plan_for(cfg.n_users),
        run_stage,
        control=arms["control"][0],
        treatment=arms["treatment"][0],
        unit="users (hash of user id); sessions of one user share an arm",
    )
    log.info("canary: %s (%s)", result.outcome, result.reason)
    return result


def report_similar_listings_canary(bp: Blueprint, result: CanaryResult, n_sessions: int) -> None:
    report_canary(
        bp,
        result,
        f"Each stage draws {n_sessions:,} fresh search sessions on the A/B's day and plays "
        f"a hash-sample of at most about {MAX_PER_ARM:,} sessions of each arm, "
        "each user's carousel from their arm. Booking rate and carousel CTR are ratios of "
        "per-user sums (delta method); as in the A/B, only sessions with a click count."
        + small_world_note(result),
        "canary_traffic",
    )
