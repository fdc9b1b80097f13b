"""Step 5 online: an A/B test of two detectors on fresh street images, judged by user reports.

For each day of the test the capture fleet takes new images (with the day's drift); each image
is assigned to an arm by a salted hash of its id (:func:`mlsd.experiments.assign_arms`) and
blurred by that arm's detector at its thresholds. The world then lets people look: each image is
viewed a Poisson number of times and each view reports each face or plate left visible (less
than half of its pixels blurred) with a small probability (:meth:`StreetWorld.reports`). The
primary metric is **reports per million images** (Welch's t-test on per-image reports; lower is
better). The over-blur (share of an image blurred outside any face or plate) is compared too, but
as a guardrail it has an absolute budget (``OVER_BLUR_BUDGET``), not "no worse than control": a
control that blurs almost nothing would otherwise block any detector that blurs at all, while
blurring everything would end the reports and the product.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from mlsd.comparisons import compare_means
from mlsd.experiments import ABResult, assign_arms, srm_check
from mlsd.report import Blueprint
from mlsd.systems.street_view_blur.evaluation import blur_shares, coverage, kept
from mlsd.systems.street_view_blur.model import Detector
from mlsd.systems.street_view_blur.world import ImageSet, StreetWorld

SALT = "street-view-blur-ab/v1"
VISIBLE_BELOW = 0.5  # an object with less of its pixels blurred is left visible
OVER_BLUR_BUDGET = 0.10  # at most this share of an image blurred outside faces and plates


@dataclass(frozen=True)
class Arm:
    name: str
    model: Detector
    thresholds: tuple[float, ...]


@dataclass(frozen=True)
class OnlineTest:
    ab: ABResult
    days: int

    def metrics(self) -> dict[str, Any]:
        return {"online": {**self.ab.to_dict(), "days": self.days}}


def arm_day(
    world: StreetWorld, images: ImageSet, ids: np.ndarray, arm: Arm, tag: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per image: reports, objects left visible, over-blur share."""
    blurred = kept(arm.model.detect(images.images), arm.thresholds)
    cov = coverage(images, blurred)
    visible = np.bincount(
        images.boxes["image"].to_numpy(np.int64),
        weights=(cov < VISIBLE_BELOW).astype(float),
        minlength=len(images),
    )
    over, _ = blur_shares(images, blurred)
    return world.reports(visible, ids, tag), visible, over


def compute_online(world: StreetWorld, control: Arm, treatment: Arm) -> OnlineTest:
    cfg = world.config
    per_arm: dict[str, list[list[np.ndarray]]] = {
        "control": [[], [], []],
        "treatment": [[], [], []],
    }
    for day in range(1, cfg.ab_days + 1):
        images = world.day_images("ab", day, cfg.ab_images_per_day)
        ids = day * 1_000_000 + np.arange(len(images), dtype=np.int64)
        in_t = assign_arms(ids, SALT)
        for key, arm, sel in (("control", control, ~in_t), ("treatment", treatment, in_t)):
            idx = np.flatnonzero(sel)
            if idx.size == 0:
                continue
            out = arm_day(world, images.subset(idx), ids[idx], arm, f"{key}/{day}")
            for store, values in zip(per_arm[key], out, strict=True):
                store.append(values)
    c = [np.concatenate(v) for v in per_arm["control"]]
    t = [np.concatenate(v) for v in per_arm["treatment"]]
    tests = {
        "reports_per_image": compare_means(
            c[0], t[0], metric="user reports per image", higher_is_better=False
        ),
        "visible_per_image": compare_means(
            c[1], t[1], metric="faces / plates left visible per image", higher_is_better=False
        ),
        "over_blur": compare_means(
            c[2], t[2], metric="share of image over-blurred", higher_is_better=False
        ),
    }
    arms = {
        key: {
            "policy": arm.name,
            "units": len(v[0]),
            "reports": float(v[0].sum()),
            "reports_per_million_images": float(v[0].mean() * 1e6),
            "visible_objects": float(v[1].sum()),
            "over_blur": float(v[2].mean()),
        }
        for key, arm, v in (("control", control, c), ("treatment", treatment, t))
    }
    ab = ABResult.decided(
        unit="image",
        arms=arms,
        tests=tests,
        primary="reports_per_image",
        srm=srm_check(len(c[0]), len(t[0])),
    )
    over = tests["over_blur"]
    if ab.decision == "ship" and over.treatment > OVER_BLUR_BUDGET:
        ab = replace(
            ab,
            decision="don't ship",
            reason=f"over-blur guardrail: the treatment blurs {over.treatment:.3f} of an image "
            f"outside faces and plates, over the budget {OVER_BLUR_BUDGET}; {ab.reason}",
        )
    return OnlineTest(ab, cfg.ab_days)


def report_online(bp: Blueprint, result: OnlineTest) -> None:
    ab = result.ab
    bp.section("Online A/B test")
    bp.text(
        f"Over {result.days} simulated days, new images were split 50/50 by a salted hash of "
        "their id and blurred by the arm's detector. Each image was viewed a Poisson(40) "
        "number of times; each view reported each face or plate left visible with probability "
        "0.5%. Primary metric: user reports per image (lower is better; per million images in "
        f"the arm table); guardrail: over-blur within an absolute budget of {OVER_BLUR_BUDGET}."
    )
    bp.table(
        ["arm", "detector", "images", "reports", "reports / million images", "over-blur"],
        ab.arm_rows(["policy", "units", "reports", "reports_per_million_images", "over_blur"]),
    )
    bp.table(list(ab.TEST_HEADER), ab.test_rows())
    bp.text(ab.verdict())
