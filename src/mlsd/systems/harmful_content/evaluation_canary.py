"""Harmful content, steps 5-6: the canary rollout of the served classifier's enforcement.

After the A/B test, enforcement by the served model (the A/B's treatment) replaces
production's (TF-IDF + logistic regression, the A/B's control) on 1% → 5% → 25% → 100% of the
authors (:mod:`mlsd.canary`); an author on the new model stays on it as the share grows. The
world's post stream is fixed, so each stage replays the test days' posts through the A/B's
enforcement loop (:func:`~.evaluation_online.enforce`, each arm with its own thresholds and
review capacity) with the stage's share and its own draw of appeals. The chapter's guardrails:
prevalence (harmful views over all views, what the system exists to lower) not up more than
10% against production, and wrongful removals (valid appeals) not up by more than one per
1,000 posts.
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
    min_units_for,
    run_canary,
)
from mlsd.canary_report import report_canary, small_world_note
from mlsd.report import Blueprint
from mlsd.rng import rng
from mlsd.systems.harmful_content import CLASSES
from mlsd.systems.harmful_content.evaluation import Thresholds, choose_thresholds
from mlsd.systems.harmful_content.evaluation_online import APPEAL_P, enforce
from mlsd.systems.harmful_content.world import HarmWorld

log = logging.getLogger(__name__)

APPEALS_TOLERANCE = 0.001  # valid appeals per post


def plan_for(n_authors: int) -> CanaryPlan:
    n = min_units_for(n_authors)
    return CanaryPlan(
        (
            Guardrail(
                "prevalence",
                "harmful_views",
                denominator="views",
                higher_is_better=False,
                tolerance=0.10,
                min_units=n,
            ),
            Guardrail(
                "wrongful removals (valid appeals) per post",
                "valid_appeals",
                denominator="posts",
                higher_is_better=False,
                tolerance=APPEALS_TOLERANCE,
                relative=False,
                min_units=n,
            ),
        )
    )


def compute_canary(
    world: HarmWorld,
    rows: np.ndarray,
    scores: dict[str, np.ndarray],
    val: tuple[np.ndarray, dict[str, np.ndarray]],
    chosen: str,
    baseline: str,
    th_chosen: Thresholds,
    seed: int,
) -> CanaryResult:
    """Roll ``chosen``'s enforcement out against ``baseline``'s, over the posts ``rows``."""
    posts = world.posts.iloc[rows]
    authors = posts["author_id"].to_numpy()
    th = {"control": choose_thresholds(val[0], val[1][baseline], CLASSES), "treatment": th_chosen}
    model = {"control": baseline, "treatment": chosen}
    harmful = np.asarray(world.labels(rows).any(axis=1), bool)
    V, rate = posts["views_total"].to_numpy(), posts["report_rate"].to_numpy()
    day = posts["day"].to_numpy()
    salt = f"harmful-content/canary/{seed}"

    def run_stage(fraction: float, stage: int) -> StageArms:
        treat = in_canary(authors, fraction, salt)
        appeal = rng(seed, f"harmful-content/canary/{stage}/appeals").random(len(rows)) < APPEAL_P
        views, harm_views, valid = np.zeros(len(rows)), np.zeros(len(rows)), np.zeros(len(rows))
        for arm, mask in (("control", ~treat), ("treatment", treat)):
            idx = np.flatnonzero(mask)
            if idx.size == 0:
                continue
            out = enforce(
                V[idx], rate[idx], harmful[idx], day[idx], scores[model[arm]][idx], th[arm]
            )
            views[idx] = out.views
            harm_views[idx] = out.views * harmful[idx]
            valid[idx] = out.auto_removed & ~harmful[idx] & appeal[idx]
        values = {
            "harmful_views": harm_views,
            "views": views,
            "valid_appeals": valid,
            "posts": np.ones(len(rows)),
        }
        return arms_per_unit(authors, treat, values)

    result = run_canary(
        plan_for(int(np.unique(authors).size)),
        run_stage,
        control=baseline,
        treatment=chosen,
        unit="authors (hash of author id)",
    )
    log.info("canary: %s (%s)", result.outcome, result.reason)
    return result


def report_harmful_canary(bp: Blueprint, result: CanaryResult) -> None:
    report_canary(
        bp,
        result,
        "The world's post stream is fixed, so each stage replays the test days' posts through "
        "the A/B's enforcement loop (remove, review within capacity, demote, reactive review "
        "on reports), each arm with its own thresholds, and draws appeals afresh. Prevalence "
        "and valid appeals per post are ratios of per-author sums (delta method)."
        + small_world_note(result),
        "canary_traffic",
    )
