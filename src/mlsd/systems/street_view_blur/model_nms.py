"""Detections as a table, and non-maximum suppression (OpenCV's ``NMSBoxes``) per image and class.

Every detector of the system answers with the same frame, :data:`DETECTION_COLUMNS`: the image
index, the class (0 face, 1 plate), the box ``x, y, w, h`` in the image's pixels and a score in
``[0, 1]``. :func:`nms_frame` keeps, per image and class, the highest-scoring box of every group
overlapping above ``iou``; :func:`detection_array` packs a frame into a fixed ``(n, k, 6)`` array
(the model contract's output).
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np
import pandas as pd

DETECTION_COLUMNS = ("image", "label", "x", "y", "w", "h", "score")
NMS_IOU = 0.5


def empty_detections() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "image": np.zeros(0, np.int64),
            "label": np.zeros(0, np.int64),
            **{c: np.zeros(0, np.float64) for c in ("x", "y", "w", "h", "score")},
        }
    )


def nms_frame(frame: pd.DataFrame | None, iou: float = NMS_IOU, max_det: int = 50) -> pd.DataFrame:
    """``frame`` after per-(image, class) NMS, at most ``max_det`` per image, sorted by image
    then score (descending)."""
    if frame is None or frame.empty:
        return empty_detections()
    image = frame["image"].to_numpy(np.int64)
    label = frame["label"].to_numpy(np.int64)
    boxes = frame[["x", "y", "w", "h"]].to_numpy(np.float64)
    scores = frame["score"].to_numpy(np.float64)
    order = np.lexsort((-scores, label, image))  # by image, class, then best first
    key = image[order] * 1024 + label[order]
    starts = np.flatnonzero(np.r_[True, key[1:] != key[:-1]])
    ends = np.r_[starts[1:], len(order)]
    keep: list[np.ndarray] = []
    for a, b in zip(starts, ends, strict=True):
        rows = order[a:b]
        if b - a == 1:
            keep.append(rows)
            continue
        idx = cv2.dnn.NMSBoxes(boxes[rows].tolist(), scores[rows].tolist(), 0.0, iou)
        keep.append(rows[np.asarray(idx, dtype=np.int64).reshape(-1)])
    kept = np.concatenate(keep)
    kept = kept[np.lexsort((-scores[kept], image[kept]))]  # by image, best first
    img_k = image[kept]
    first = np.r_[0, np.flatnonzero(img_k[1:] != img_k[:-1]) + 1]
    rank = np.arange(len(kept)) - np.repeat(first, np.diff(np.r_[first, len(kept)]))
    out = frame.iloc[kept[rank < max_det]]
    return out.reset_index(drop=True)[list(DETECTION_COLUMNS)]


def by_image(frame: pd.DataFrame) -> dict[int, pd.DataFrame]:
    """The rows of ``frame`` per image index."""
    if frame.empty:
        return {}
    out: dict[int, pd.DataFrame] = {}
    for key, group in frame.groupby("image", sort=True):
        k: Any = key
        out[int(k)] = group
    return out


def detection_array(frame: pd.DataFrame, n: int, k: int = 20) -> np.ndarray:
    """``(n, k, 6)``: each image's ``k`` best detections ``x, y, w, h, score, label`` (zeros
    where fewer)."""
    out = np.zeros((n, k, 6))
    for i, group in by_image(frame).items():
        g = group.sort_values("score", ascending=False, kind="stable").head(k)
        out[i, : len(g)] = g[["x", "y", "w", "h", "score", "label"]].to_numpy(np.float64)
    return out
