"""COCO-style detection metrics from pycocotools (the reference implementation, not our own).

:func:`coco_evaluate` builds the ground truth and the detections as COCO objects (image ids =
image indices, category ids = class + 1), runs ``COCOeval`` for boxes and reads back

* mAP@[.5:.95] and mAP@.5 (``stats[0]``, ``stats[1]``) and AP per class at both;
* COCOeval's own greedy matching at IoU 0.5 (``evalImgs``): for every ground-truth box the score
  of the detection it was matched to (0 when none), and for every detection whether it matched.
  Matching goes by descending score, so "recalled at threshold t" is exactly "matched to a
  detection scoring at least t": precision and recall at any threshold follow without a second
  matcher.
"""

from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass

import numpy as np
import pandas as pd
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from mlsd.systems.street_view_blur.world import CLASSES


@dataclass(frozen=True)
class CocoResult:
    map: float  # mAP@[.5:.95]
    map50: float
    ap: tuple[float, ...]  # per class, @[.5:.95]
    ap50: tuple[float, ...]  # per class, @.5
    gt_match_score: np.ndarray  # per ground-truth row: score of its IoU>=0.5 match, 0 if none
    det_tp: np.ndarray  # per detection row: matched at IoU 0.5


def _coco(images: list[dict[str, int]], boxes: pd.DataFrame, scores: np.ndarray | None) -> COCO:
    anns = []
    for k, (img, label, x, y, w, h) in enumerate(
        boxes[["image", "label", "x", "y", "w", "h"]].itertuples(index=False)
    ):
        ann = {
            "id": k + 1,
            "image_id": int(img),
            "category_id": int(label) + 1,
            "bbox": [float(x), float(y), float(w), float(h)],
            "area": float(w) * float(h),
            "iscrowd": 0,
        }
        if scores is not None:
            ann["score"] = float(scores[k])
        anns.append(ann)
    coco = COCO()
    coco.dataset = {
        "images": images,
        "categories": [{"id": i + 1, "name": c} for i, c in enumerate(CLASSES)],
        "annotations": anns,
    }
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
    return coco


def _nan_mean(values: np.ndarray) -> float:
    values = values[values > -1]
    return float(values.mean()) if values.size else float("nan")


def coco_evaluate(
    gt: pd.DataFrame, det: pd.DataFrame, n_images: int, width: int, height: int
) -> CocoResult:
    """COCO box evaluation of ``det`` (``image, label, x, y, w, h, score``) against ``gt``."""
    gt = gt.reset_index(drop=True)
    det = det.reset_index(drop=True)
    images = [{"id": i, "width": width, "height": height} for i in range(n_images)]
    coco_gt = _coco(images, gt, None)
    coco_dt = _coco(images, det, det["score"].to_numpy(np.float64))
    ev = COCOeval(coco_gt, coco_dt, "bbox")
    with contextlib.redirect_stdout(io.StringIO()):
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    prec = ev.eval["precision"]  # (iou, recall, class, area, max dets)
    ap = tuple(_nan_mean(prec[:, :, k, 0, -1]) for k in range(len(CLASSES)))
    ap50 = tuple(_nan_mean(prec[0, :, k, 0, -1]) for k in range(len(CLASSES)))
    gt_score = np.zeros(len(gt))
    det_tp = np.zeros(len(det), bool)
    scores = det["score"].to_numpy(np.float64)
    for e in ev.evalImgs:
        if e is None or e["aRng"] != ev.params.areaRng[0]:
            continue
        for gid, match in zip(e["gtIds"], e["gtMatches"][0], strict=True):
            if match > 0:
                gt_score[int(gid) - 1] = scores[int(match) - 1]
        for did, match in zip(e["dtIds"], e["dtMatches"][0], strict=True):
            det_tp[int(did) - 1] = match > 0
    has_gt = len(gt) > 0
    return CocoResult(
        map=float(ev.stats[0]) if has_gt else float("nan"),
        map50=float(ev.stats[1]) if has_gt else float("nan"),
        ap=ap,
        ap50=ap50,
        gt_match_score=gt_score,
        det_tp=det_tp,
    )
