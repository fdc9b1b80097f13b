"""Visual search, steps 5-6: the canary rollout of the served encoder in the world (book ch. 2).

After the A/B test, the served encoder (the A/B's treatment) replaces production (the best
baseline, the A/B's control) on 1% → 5% → 25% → 100% of the users (:mod:`mlsd.canary`). Each
stage is a fresh set of search sessions, each a user uploading a new photo, scanned with the
A/B's click model (:func:`~.evaluation_online.simulate_sessions`); a user on the new encoder
stays on it as the share grows. The chapter's guardrails: the result CTR not down more than
5%, and the time to the first click not up more than 10%.
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
    keep_for_stage,
    min_units_for,
    run_canary,
)
from mlsd.canary_report import report_canary, small_world_note
from mlsd.index import exact_top_k
from mlsd.report import Blueprint
from mlsd.rng import rng
from mlsd.systems.visual_search.datasets_split import RetrievalSet
from mlsd.systems.visual_search.evaluation import K
from mlsd.systems.visual_search.evaluation_online import SESSION_PHOTO_BASE, simulate_sessions
from mlsd.systems.visual_search.model import ImageEncoder
from mlsd.systems.visual_search.world import VisualSearchWorld

log = logging.getLogger(__name__)

CANARY_PHOTO_BASE = SESSION_PHOTO_BASE + 1_000_000  # the canary's photos are its own
MAX_PER_ARM = 400  # sessions simulated per arm and stage, at most (a hash-sample of users)
STAGE_SESSIONS = 4  # a stage's sessions, in A/B tests' worth: the canary's share gets enough


def plan_for(n_users: int) -> CanaryPlan:
    n = min_units_for(n_users)
    return CanaryPlan(
        (
            Guardrail("result CTR", "clicked", tolerance=0.05, min_units=n),
            Guardrail(
                "time to first click (s)",
                "first_click_s",
                higher_is_better=False,
                tolerance=0.10,
                min_units=max(3, n // 3),  # only sessions with a click have one
            ),
        )
    )


def compute_canary(
    world: VisualSearchWorld,
    rs: RetrievalSet,
    arms: dict[str, tuple[str, ImageEncoder, np.ndarray]],
    seed: int,
) -> CanaryResult:
    """Roll ``arms["treatment"]`` out against ``arms["control"]``, each ``(model name,
    encoder, catalogue embeddings)`` as in the A/B test."""
    if rs.index_cats is None:
        raise ValueError("the canary needs the world's categories")
    n = STAGE_SESSIONS * world.config.n_sessions
    users = np.arange(n, dtype=np.int64)
    salt = f"visual-search-canary-{seed}"

    def run_stage(fraction: float, stage: int) -> StageArms:
        treat = in_canary(users, fraction, salt)
        keep = keep_for_stage(users, treat, MAX_PER_ARM, f"{salt}/stage-{stage}", MAX_PER_ARM)
        ids, treat = users[keep], treat[keep]
        draw = rng(seed, f"visual-search/canary/stage-{stage}/products")
        products = draw.choice(world.product_ids("eval"), size=n)[keep]
        photos = world.photos(products, CANARY_PHOTO_BASE + stage * n + ids)
        cats = world.category_of(products)
        out: dict[str, dict[str, np.ndarray]] = {}
        for arm, mask in (("control", ~treat), ("treatment", treat)):
            _, encoder, catalogue = arms[arm]
            if not mask.any():
                out[arm] = {"clicked": np.zeros(0), "first_click_s": np.zeros(0)}
                continue
            assert rs.index_cats is not None
            top = rs.index_ids[exact_top_k(catalogue, encoder.encode(photos[mask]), K)[1]]
            s = simulate_sessions(
                rs.index_groups[top],
                rs.index_cats[top],
                products[mask],
                cats[mask],
                rng(seed, f"visual-search/canary/stage-{stage}/clicks/{arm}"),
            )
            out[arm] = {
                "clicked": s.clicked.astype(np.float64),
                "first_click_s": s.first_click_s[s.clicked],
            }
        return out

    result = run_canary(
        plan_for(n),
        run_stage,
        control=arms["control"][0],
        treatment=arms["treatment"][0],
        unit="users (one session each per stage, hash of user id)",
    )
    log.info("canary: %s (%s)", result.outcome, result.reason)
    return result


def report_visual_search_canary(bp: Blueprint, result: CanaryResult, n_sessions: int) -> None:
    report_canary(
        bp,
        result,
        f"Each stage is {STAGE_SESSIONS * n_sessions:,} fresh search sessions (new photos), "
        "one per user, of which a hash-sample of at most about "
        f"{MAX_PER_ARM:,} users of each arm is played, scanned with the A/B's click model. "
        "Result CTR is a mean of 0/1 per session (Welch); the time to the first click is over "
        "clicked sessions." + small_world_note(result),
        "canary_traffic",
    )
