"""The blur itself: which pixels a detection hides, and hiding them.

A detection is blurred a little beyond its box (``MARGIN`` of its width and height on each side:
a box that is a few pixels off still hides the face). :func:`blur_rects` turns detections into
integer pixel rectangles clipped to the image; :func:`blur_image` replaces each rectangle by a
strong Gaussian blur of itself (the kernel grows with the rectangle, so a large face is as
unreadable as a small one); :func:`blur_mask` is the same area as a boolean mask, for the
privacy metrics (share of face and plate pixels hidden, pixels hidden for nothing).
"""

from __future__ import annotations

import cv2
import numpy as np
import pandas as pd

MARGIN = 0.15


def blur_rects(boxes: pd.DataFrame, width: int, height: int, margin: float = MARGIN) -> np.ndarray:
    """``(k, 4)`` int ``x0, y0, x1, y1`` (exclusive ends) of the area each box blurs."""
    if boxes.empty:
        return np.zeros((0, 4), np.int64)
    x, y = boxes["x"].to_numpy(np.float64), boxes["y"].to_numpy(np.float64)
    w, h = boxes["w"].to_numpy(np.float64), boxes["h"].to_numpy(np.float64)
    x0 = np.clip(np.floor(x - margin * w), 0, width)
    y0 = np.clip(np.floor(y - margin * h), 0, height)
    x1 = np.clip(np.ceil(x + w + margin * w), 0, width)
    y1 = np.clip(np.ceil(y + h + margin * h), 0, height)
    return np.stack([x0, y0, x1, y1], axis=1).astype(np.int64)


def blur_mask(boxes: pd.DataFrame, width: int, height: int, margin: float = MARGIN) -> np.ndarray:
    """The ``height × width`` boolean mask of what ``boxes`` blur."""
    mask = np.zeros((height, width), bool)
    for x0, y0, x1, y1 in blur_rects(boxes, width, height, margin):
        mask[y0:y1, x0:x1] = True
    return mask


def blur_image(image: np.ndarray, boxes: pd.DataFrame, margin: float = MARGIN) -> np.ndarray:
    """A copy of ``image`` with every box's area blurred beyond recognition."""
    out = image.copy()
    h, w = image.shape[:2]
    for x0, y0, x1, y1 in blur_rects(boxes, w, h, margin):
        if x1 <= x0 or y1 <= y0:
            continue
        patch = out[y0:y1, x0:x1]
        sigma = max(2.0, 0.3 * max(x1 - x0, y1 - y0))
        blurred = cv2.GaussianBlur(patch, (0, 0), sigma, borderType=cv2.BORDER_REPLICATE)
        out[y0:y1, x0:x1] = cv2.blur(blurred, (3, 3)) if min(patch.shape[:2]) >= 3 else blurred
    return out
