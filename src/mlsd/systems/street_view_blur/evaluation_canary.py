"""Street-view blurring, steps 5-6: the canary rollout of the served detector in the world.

After the A/B test, the served detector (the A/B's treatment) replaces production (the
baseline detector, the A/B's control) on 1% → 5% → 25% → 100% of the new images
(:mod:`mlsd.canary`): an image is placed by a salted hash of its id, so the share only grows.
Each stage is a fresh batch of the day's captures, blurred by its arm and judged as in the A/B
(:func:`~.evaluation_online.arm_day`). The chapter's guardrails: the share of faces and plates
blurred (privacy: what the system exists for) not down more than 2 points against production,
and the share of the image blurred outside them within the A/B's over-blur budget.
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
from mlsd.report import Blueprint
from mlsd.systems.street_view_blur.evaluation_online import OVER_BLUR_BUDGET, Arm, arm_day
from mlsd.systems.street_view_blur.world import StreetWorld

log = logging.getLogger(__name__)

STAGE_IMAGES = 100  # a stage's captures, in A/B days' worth of images
BLURRED_TOLERANCE = 0.02  # points of the share of faces and plates blurred


def plan_for(n_images: int) -> CanaryPlan:
    n = min_units_for(n_images)
    return CanaryPlan(
        (
            Guardrail(
                "share of faces / plates blurred",
                "blurred",
                denominator="objects",
                tolerance=BLURRED_TOLERANCE,
                relative=False,
                min_units=n,
            ),
            Guardrail(
                "share of image over-blurred",
                "over_blur",
                higher_is_better=False,
                bounds=(0.0, OVER_BLUR_BUDGET),
                min_units=n,
            ),
        )
    )


def compute_canary(world: StreetWorld, control: Arm, treatment: Arm) -> CanaryResult:
    """Roll ``treatment`` out against ``control`` stage by stage."""
    cfg = world.config
    n = STAGE_IMAGES * cfg.ab_images_per_day
    cap = cfg.ab_days * cfg.ab_images_per_day  # each arm costs at most an A/B's worth

    def run_stage(fraction: float, stage: int) -> StageArms:
        ids = (10 + stage) * 1_000_000 + np.arange(n, dtype=np.int64)
        in_t = in_canary(ids, fraction, f"street-view-blur-canary/{world.seed}")
        keep = keep_for_stage(ids, in_t, cap, f"canary/{stage}", max_treatment=cap)
        ids, in_t = ids[keep], in_t[keep]
        images = world.day_images(f"canary-{stage}", 1, len(ids))  # i.i.d. captures
        out = {}
        for key, arm, sel in (("control", control, ~in_t), ("treatment", treatment, in_t)):
            idx = np.flatnonzero(sel)
            sub = images.subset(idx)
            objects = np.bincount(sub.boxes["image"].to_numpy(np.int64), minlength=len(idx)).astype(
                np.float64
            )
            if idx.size == 0:
                out[key] = {"blurred": objects, "objects": objects, "over_blur": objects}
                continue
            _, visible, over = arm_day(world, sub, ids[idx], arm, f"canary-{stage}/{key}")
            out[key] = {"blurred": objects - visible, "objects": objects, "over_blur": over}
        return out

    result = run_canary(
        plan_for(n),
        run_stage,
        control=control.name,
        treatment=treatment.name,
        unit="new images (hash of image id)",
    )
    log.info("canary: %s (%s)", result.outcome, result.reason)
    return result


def report_street_view_canary(bp: Blueprint, result: CanaryResult, world: StreetWorld) -> None:
    cfg = world.config
    report_canary(
        bp,
        result,
        f"Each stage is {STAGE_IMAGES * cfg.ab_images_per_day:,} new captures of the A/B's "
        f"first day, of which each arm blurs a hash-sample of at most "
        f"{cfg.ab_days * cfg.ab_images_per_day:,}. The share of faces and plates blurred is a "
        "ratio over images (delta method), allowed to fall by at most "
        f"{BLURRED_TOLERANCE:.0%} points; the over-blur share must stay within the A/B's "
        f"budget of {OVER_BLUR_BUDGET:.0%}." + small_world_note(result),
        "canary_traffic",
    )
