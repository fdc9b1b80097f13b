"""The no-training baseline: OpenCV's bundled Haar cascades (frontal face, Russian licence plate).

This is what a team could ship on day one: Viola–Jones cascades trained long ago on real
photographs, shipped inside ``opencv-python-headless`` (``cv2.data.haarcascades``). They slide a
window of at least 24×24 (faces) or 60×20 (plates) pixels, so the image is enlarged ``upscale``
times first: the street's faces and plates are often smaller than the window. The score of a box
is the cascade's last-stage weight squashed to ``(0, 1)`` (``detectMultiScale3`` with reject
levels), which is enough to rank detections for average precision. Nothing is learned: ``fit``
only marks the model fitted, and saving stores the parameters (the cascades come with OpenCV).
"""

from __future__ import annotations

from functools import lru_cache

import cv2
import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator

from mlsd.model_io import SavedAsData
from mlsd.systems.street_view_blur.model_nms import DETECTION_COLUMNS, nms_frame
from mlsd.systems.street_view_blur.world_render import FACE, PLATE

FACE_CASCADE = "haarcascade_frontalface_default.xml"
PLATE_CASCADE = "haarcascade_russian_plate_number.xml"


@lru_cache(maxsize=4)
def cascade(name: str) -> cv2.CascadeClassifier:
    """A bundled cascade by file name (loaded once per process)."""
    folder: str = cv2.data.haarcascades  # type: ignore[attr-defined]
    classifier = cv2.CascadeClassifier(folder + name)
    if classifier.empty():
        raise FileNotFoundError(f"OpenCV has no bundled cascade {name!r}")
    return classifier


class HaarCascades(BaseEstimator, SavedAsData):
    """Faces and plates from OpenCV's Haar cascades; no training."""

    def __init__(
        self,
        upscale: float = 3.0,
        scale_factor: float = 1.2,
        min_neighbors: int = 2,
        face_cascade: str = FACE_CASCADE,
        plate_cascade: str = PLATE_CASCADE,
    ) -> None:
        self.upscale = upscale
        self.scale_factor = scale_factor
        self.min_neighbors = min_neighbors
        self.face_cascade = face_cascade
        self.plate_cascade = plate_cascade

    def fit(self, images: np.ndarray | None = None, boxes: object = None) -> HaarCascades:
        """Nothing to learn; checks that the cascades exist."""
        cascade(self.face_cascade)
        cascade(self.plate_cascade)
        self.fitted_ = True
        return self

    def detect(self, images: np.ndarray, min_score: float = 0.0) -> pd.DataFrame:
        """Detections (``DETECTION_COLUMNS``) in the pixels of ``images``."""
        rows = []
        for i, img in enumerate(images):
            gray = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
            big = cv2.resize(gray, None, fx=self.upscale, fy=self.upscale)
            big = cv2.equalizeHist(big)
            for label, name in ((FACE, self.face_cascade), (PLATE, self.plate_cascade)):
                rects, _, weights = cascade(name).detectMultiScale3(
                    big,
                    scaleFactor=self.scale_factor,
                    minNeighbors=self.min_neighbors,
                    outputRejectLevels=True,
                )
                for (x, y, w, h), wt in zip(rects, np.asarray(weights).reshape(-1), strict=True):
                    score = 1.0 / (1.0 + np.exp(-float(wt)))
                    if score >= min_score:
                        u = self.upscale
                        rows.append((i, label, x / u, y / u, w / u, h / u, score))
        frame = pd.DataFrame(rows, columns=list(DETECTION_COLUMNS))
        return nms_frame(frame.astype({"image": np.int64, "label": np.int64}))
