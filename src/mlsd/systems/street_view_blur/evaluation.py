"""Step 5 offline for street-view blurring: COCO metrics, the privacy metrics, the threshold.

Every detector is scored on the validation images (where its thresholds and the served model are
chosen) and on the test images, next to the perfect detector (every true box, score 1):

* mAP@.5 and mAP@[.5:.95], AP per class (pycocotools, :mod:`.evaluation_coco`);
* precision and recall at IoU >= 0.5 at the chosen per-class score threshold;
* the privacy metric: the share of face and plate pixels the blur covers, and the over-blur:
  the share of all image pixels blurred outside any face or plate;
* slices: small objects (sqrt(area) < ``SMALL_SIDE`` px), large ones (1.5 times that), occluded
  ones, night images.

**The threshold puts privacy first**: per class, the highest score threshold whose validation
recall reaches ``RECALL_TARGET``; a detector that cannot reach it gets the threshold at which
it reaches 98% of its best recall, and is marked as missing the target. The over-blur that
costs is reported beside it. The served detector is the trained one with the best validation
mAP@.5 (mean of the two classes' area share breaks ties), among those whose counted compute
fits the budget (``MAX_MMACS``); never chosen on the test images.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from mlsd.report import Blueprint
from mlsd.systems.street_view_blur.evaluation_coco import coco_evaluate
from mlsd.systems.street_view_blur.model import TRAINED, Detector, TrainedModels, frame_of
from mlsd.systems.street_view_blur.model_nms import by_image
from mlsd.systems.street_view_blur.serving_blur import blur_rects
from mlsd.systems.street_view_blur.world import CLASSES, ImageSet

RECALL_TARGET = 0.9
SMALL_SIDE = 8.0
MAX_MMACS = 500.0  # per image: the batch pipeline's compute budget on 2 CPU cores
ORACLE = "perfect_detector"


@dataclass(frozen=True)
class SetScores:
    """One detector on one image set, at its thresholds."""

    map: float
    map50: float
    ap: tuple[float, ...]
    ap50: tuple[float, ...]
    recall: tuple[float, ...]  # IoU >= 0.5, at the threshold
    precision: tuple[float, ...]
    area_share: tuple[float, ...]
    over_blur: float
    blurred_share: float
    slices: dict[str, dict[str, float]]

    def to_dict(self, prefix: str = "") -> dict[str, Any]:
        out: dict[str, Any] = {f"{prefix}map50": self.map50, f"{prefix}map": self.map}
        for k, c in enumerate(CLASSES):
            out[f"{prefix}ap50_{c}"] = self.ap50[k]
            out[f"{prefix}ap_{c}"] = self.ap[k]
            out[f"{prefix}recall_{c}"] = self.recall[k]
            out[f"{prefix}precision_{c}"] = self.precision[k]
            out[f"{prefix}area_share_{c}"] = self.area_share[k]
        out[f"{prefix}over_blur"] = self.over_blur
        out[f"{prefix}blurred_share"] = self.blurred_share
        if not prefix:
            out["slices"] = self.slices
        return out


def kept(det: pd.DataFrame, thresholds: tuple[float, ...]) -> pd.DataFrame:
    """The detections at or above their class's threshold."""
    thr = np.asarray(thresholds)[det["label"].to_numpy(np.int64)] if len(det) else np.zeros(0)
    return det[det["score"].to_numpy() >= thr]


def coverage(data: ImageSet, blurred: pd.DataFrame) -> np.ndarray:
    """Per true box (rows of ``data.boxes``), the share of its pixels that ``blurred`` hides."""
    h, w = data.images.shape[1:3]
    gt = data.boxes.reset_index(drop=True)
    out = np.zeros(len(gt))
    per_image = by_image(blurred)
    gt_rects = blur_rects(gt, w, h, margin=0.0)
    gt_images = gt["image"].to_numpy(np.int64)
    for i, (x0, y0, x1, y1) in enumerate(gt_rects):
        det = per_image.get(int(gt_images[i]))
        if det is None or x1 <= x0 or y1 <= y0:
            continue
        mask = np.zeros((y1 - y0, x1 - x0), bool)
        for a0, b0, a1, b1 in blur_rects(det, w, h):
            mask[max(b0 - y0, 0) : max(b1 - y0, 0), max(a0 - x0, 0) : max(a1 - x0, 0)] = True
        out[i] = mask.mean()
    return out


def blur_shares(data: ImageSet, blurred: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Per image: (share of its pixels blurred outside any true box, share blurred)."""
    n, h, w = data.images.shape[:3]
    outside, total = np.zeros(n), np.zeros(n)
    gt_by = by_image(data.boxes)
    for i, det in by_image(blurred).items():
        mask = np.zeros((h, w), bool)
        for x0, y0, x1, y1 in blur_rects(det, w, h):
            mask[y0:y1, x0:x1] = True
        total[i] = mask.mean()
        gt = gt_by.get(i)
        if gt is not None:
            for x0, y0, x1, y1 in blur_rects(gt, w, h, margin=0.0):
                mask[y0:y1, x0:x1] = False
        outside[i] = mask.mean()
    return outside, total


def _over_blur(data: ImageSet, blurred: pd.DataFrame) -> tuple[float, float]:
    """(share of pixels blurred outside any true box, share of pixels blurred)."""
    if len(data) == 0:
        return 0.0, 0.0
    outside, total = blur_shares(data, blurred)
    return float(outside.mean()), float(total.mean())


def _safe(num: float, den: float) -> float:
    return num / den if den > 0 else math.nan


def score_set(data: ImageSet, det: pd.DataFrame, thresholds: tuple[float, ...]) -> SetScores:
    h, w = data.images.shape[1:3]
    det = det.reset_index(drop=True)
    gt = data.boxes.reset_index(drop=True)
    coco = coco_evaluate(gt, det, len(data), w, h)
    labels = gt["label"].to_numpy(np.int64)
    thr = np.asarray(thresholds)
    recalled = (coco.gt_match_score > 0) & (coco.gt_match_score >= thr[labels])
    blurred = kept(det, thresholds)
    cov = coverage(data, blurred)
    area = (gt["w"] * gt["h"]).to_numpy(np.float64)
    det_labels = det["label"].to_numpy(np.int64)
    above = det["score"].to_numpy() >= thr[det_labels] if len(det) else np.zeros(0, bool)
    recall, precision, share = [], [], []
    for k in range(len(CLASSES)):
        g = labels == k
        recall.append(_safe(float(recalled[g].sum()), float(g.sum())))
        d = above & (det_labels == k)
        precision.append(_safe(float(coco.det_tp[d].sum()), float(d.sum())))
        share.append(_safe(float((cov * area)[g].sum()), float(area[g].sum())))
    over, total = _over_blur(data, blurred)
    night = data.meta.set_index("image")["night"].reindex(gt["image"]).to_numpy(bool)
    slices = {}
    for name, sel in (
        ("small", np.sqrt(area) < SMALL_SIDE),
        ("large", np.sqrt(area) >= 1.5 * SMALL_SIDE),
        ("occluded", gt["occluded"].to_numpy(np.float64) >= 0.2),
        ("night", night),
        ("all", np.ones(len(gt), bool)),
    ):
        slices[name] = {
            "objects": int(sel.sum()),
            "recall": _safe(float(recalled[sel].sum()), float(sel.sum())),
            "area_share": _safe(float((cov * area)[sel].sum()), float(area[sel].sum())),
        }
    return SetScores(
        coco.map,
        coco.map50,
        coco.ap,
        coco.ap50,
        tuple(recall),
        tuple(precision),
        tuple(share),
        over,
        total,
        slices,
    )


def choose_thresholds(data: ImageSet, det: pd.DataFrame) -> tuple[tuple[float, ...], bool]:
    """Per class, the highest threshold whose recall on ``data`` reaches ``RECALL_TARGET`` (or
    98% of the best recall when the target is out of reach); and whether every class met it."""
    h, w = data.images.shape[1:3]
    gt = data.boxes.reset_index(drop=True)
    coco = coco_evaluate(gt, det.reset_index(drop=True), len(data), w, h)
    labels = gt["label"].to_numpy(np.int64)
    out, met = [], True
    for k in range(len(CLASSES)):
        s = np.sort(coco.gt_match_score[labels == k])[::-1]  # matched scores, best first
        if s.size == 0 or s[0] <= 0:
            out.append(0.5)  # nothing to learn from: a neutral threshold
            met = met and s.size == 0
            continue
        recall_at = np.arange(1, s.size + 1) / s.size  # recall when thresholding at s[i]
        best = float(recall_at[s > 0].max())
        goal = RECALL_TARGET if best >= RECALL_TARGET else 0.98 * best
        met = met and best >= RECALL_TARGET
        i = int(np.argmax((recall_at >= goal) & (s > 0)))
        out.append(float(s[i]))
    return tuple(out), met


@dataclass(frozen=True)
class OfflineEvaluation:
    val: dict[str, SetScores]
    test: dict[str, SetScores]
    thresholds: dict[str, tuple[float, ...]]
    target_met: dict[str, bool]
    oracle: SetScores
    chosen: str
    detect_seconds: dict[str, float]

    def metrics(self) -> dict[str, Any]:
        models = {}
        for name, s in self.test.items():
            models[name] = {
                **s.to_dict(),
                **self.val[name].to_dict("val_"),
                **{f"threshold_{c}": self.thresholds[name][k] for k, c in enumerate(CLASSES)},
                "recall_target": RECALL_TARGET,
                "recall_target_met_on_val": self.target_met[name],
            }
        return {
            "models": models,
            "oracle": {"model": ORACLE, **self.oracle.to_dict()},
            "chosen_model": self.chosen,
        }


def compute_offline(
    val: ImageSet,
    test: ImageSet,
    trained: TrainedModels,
    detect: dict[str, tuple[pd.DataFrame, pd.DataFrame]],
    detect_seconds: dict[str, float],
) -> OfflineEvaluation:
    """``detect[name]``: the model's detections on (val, test)."""
    vals, tests, thresholds, met = {}, {}, {}, {}
    for name, (dv, dt) in detect.items():
        thresholds[name], met[name] = choose_thresholds(val, dv)
        vals[name] = score_set(val, dv, thresholds[name])
        tests[name] = score_set(test, dt, thresholds[name])
    oracle = score_set(test, frame_of(test), (1.0, 1.0))
    eligible = [n for n in TRAINED if (trained.mmacs.get(n) or math.inf) <= MAX_MMACS]
    chosen = max(
        eligible or list(TRAINED),
        key=lambda n: (_nz(vals[n].map50), _nz(float(np.nanmean(vals[n].area_share)))),
    )
    return OfflineEvaluation(vals, tests, thresholds, met, oracle, chosen, detect_seconds)


def _nz(v: float) -> float:
    return -1.0 if math.isnan(v) else v


def run_detectors(
    models: dict[str, Detector], sets: tuple[ImageSet, ...]
) -> tuple[dict[str, tuple[pd.DataFrame, ...]], dict[str, float]]:
    """Every model's detections on every set, and its detection seconds per image."""
    import time

    out, seconds = {}, {}
    for name, model in models.items():
        t0 = time.perf_counter()
        out[name] = tuple(model.detect(s.images) for s in sets)
        seconds[name] = (time.perf_counter() - t0) / max(1, sum(len(s) for s in sets))
    return out, seconds


def report_offline(bp: Blueprint, ev: OfflineEvaluation) -> None:
    bp.section("Offline evaluation")
    bp.text(
        "COCO box metrics from pycocotools on the test images, with each detector's per-class "
        f"threshold chosen on the validation images (privacy first: the highest threshold "
        f"whose validation recall at IoU ≥ 0.5 reaches {RECALL_TARGET:.0%}). Area share: the "
        "share of face / plate pixels the blur covers. Over-blur: the share of all pixels "
        "blurred outside any face or plate. The perfect detector is every true box."
    )
    header = [
        "model",
        "mAP@.5",
        "mAP@.5:.95",
        "AP@.5 face",
        "AP@.5 plate",
        "recall face",
        "recall plate",
        "precision face",
        "precision plate",
        "area face",
        "area plate",
        "over-blur",
    ]
    rows = []
    for name, s in [*ev.test.items(), (ORACLE, ev.oracle)]:
        rows.append(
            [name, s.map50, s.map, *s.ap50, *s.recall, *s.precision, *s.area_share, s.over_blur]
        )
    bp.table(header, rows, caption="test images")
    bp.table(
        [
            "model",
            "threshold face",
            "threshold plate",
            "val recall face",
            "val recall plate",
            "target met",
            "val mAP@.5",
        ],
        [
            [n, *ev.thresholds[n], *ev.val[n].recall, ev.target_met[n], ev.val[n].map50]
            for n in ev.val
        ],
        caption="thresholds chosen on the validation images",
    )
    bp.table(
        ["model", "slice", "objects", "recall", "area share"],
        [
            [n, sl, v["objects"], v["recall"], v["area_share"]]
            for n, s in [*ev.test.items(), (ORACLE, ev.oracle)]
            for sl, v in s.slices.items()
        ],
        caption="slices of the test images (both classes)",
    )
    bp.text(
        f"Served: **{ev.chosen}** (best validation mAP@.5 among trained detectors within "
        f"{MAX_MMACS:.0f} M MACs per image)."
    )
