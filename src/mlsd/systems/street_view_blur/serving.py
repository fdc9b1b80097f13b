"""Step 6 for street-view blurring, without HTTP: the blurrer, its artifacts and image decoding.

The chapter's design is a **batch** pipeline (``serving_batch``: a folder in, blurred images and
a boxes file out, resumable); the same :class:`Blurrer` also serves one image at a time over
HTTP (:mod:`mlsd.api.routes.street_view_blur`). A blurrer is the served detector and its
per-class score thresholds (chosen on validation images, privacy first): it detects, keeps the
detections at or above their class's threshold and blurs them (:mod:`.serving_blur`).

Artifacts (``artifacts/``): the detector as data (``detector/``, see :mod:`mlsd.model_io`),
``serving.json`` (the model's name, thresholds, the training image size, the blur margin) and
``manifest.json`` (every file's hash, written last). :func:`load_scorer` checks the manifest
first; nothing is a pickle.
"""

from __future__ import annotations

import io
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from PIL import Image, UnidentifiedImageError

from mlsd.artifacts import artifacts_dir_of, verify_manifest, write_json, write_manifest
from mlsd.model_io import ModelFileError, load_value, save_value
from mlsd.serving import ServingArtifactError, read_artifact_json
from mlsd.settings import Settings
from mlsd.systems.street_view_blur.evaluation import kept
from mlsd.systems.street_view_blur.model import Detector
from mlsd.systems.street_view_blur.model_centernet import CenterNetDetector
from mlsd.systems.street_view_blur.model_haar import HaarCascades
from mlsd.systems.street_view_blur.serving_blur import MARGIN, blur_image
from mlsd.systems.street_view_blur.world import CLASSES
from mlsd.training import torch_threads

SYSTEM = "street-view-blur"
MODEL_DIR = "detector"
SERVING_FILE = "serving.json"
MAX_SIDE = 4096


class ImageDecodeError(ValueError):
    """Bytes that are not a usable image; ``too_large`` when it is refused for its size."""

    def __init__(self, message: str, too_large: bool = False) -> None:
        super().__init__(message)
        self.too_large = too_large


def decode_image(data: bytes, max_side: int = MAX_SIDE) -> np.ndarray:
    """PNG / JPEG bytes → ``(H, W, 3)`` uint8 BGR, or :class:`ImageDecodeError`. The header is
    read first: an image over ``max_side`` a side is refused before its pixels are decoded."""
    if not data:
        raise ImageDecodeError("empty image: no bytes")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
            w, h = img.size
            if w > max_side or h > max_side:
                raise ImageDecodeError(
                    f"image too large: {w}x{h} pixels, at most {max_side} a side", True
                )
            img.load()
            rgb = np.asarray(img.convert("RGB"), dtype=np.uint8)
    except ImageDecodeError:
        raise
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise ImageDecodeError(f"cannot decode image: {exc}") from exc
    except (Image.DecompressionBombWarning, Image.DecompressionBombError) as exc:
        raise ImageDecodeError(f"image too large: {exc}", True) from exc
    if rgb.ndim != 3 or rgb.shape[0] < 2 or rgb.shape[1] < 2:
        raise ImageDecodeError("image has no pixels to blur")
    return np.ascontiguousarray(rgb[..., ::-1])


def encode_png(image: np.ndarray) -> bytes:
    """A BGR ``uint8`` image as PNG bytes."""
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(image[..., ::-1])).save(buf, format="PNG")
    return buf.getvalue()


@dataclass(frozen=True)
class BlurResult:
    image: np.ndarray  # blurred, BGR
    boxes: pd.DataFrame  # label, x, y, w, h, score of what was blurred
    detect_ms: float
    blur_ms: float


class Blurrer:
    """The served detector with its thresholds: detect, keep, blur."""

    def __init__(
        self, model: Detector, name: str, thresholds: tuple[float, ...], threads: int = 1
    ) -> None:
        self.model = model
        self.name = name
        self.thresholds = tuple(float(t) for t in thresholds)
        self.threads = threads

    def detect(self, images: np.ndarray) -> pd.DataFrame:
        """What would be blurred in ``images`` (same size), at the thresholds."""
        with torch_threads(self.threads):
            found = self.model.detect(images, min_score=min(self.thresholds))
        return kept(found, self.thresholds).reset_index(drop=True)

    def blur(self, image: np.ndarray) -> BlurResult:
        t0 = time.perf_counter()
        boxes = self.detect(image[None])
        t1 = time.perf_counter()
        out = blur_image(image, boxes, MARGIN)
        t2 = time.perf_counter()
        return BlurResult(out, boxes.drop(columns=["image"]), (t1 - t0) * 1e3, (t2 - t1) * 1e3)

    def boxes_json(self, boxes: pd.DataFrame) -> list[dict[str, Any]]:
        cols = boxes[["label", "x", "y", "w", "h", "score"]].to_numpy(np.float64)
        return [
            {
                "label": CLASSES[int(label)],
                "x": round(float(x), 2),
                "y": round(float(y), 2),
                "w": round(float(w), 2),
                "h": round(float(h), 2),
                "score": round(float(score), 4),
            }
            for label, x, y, w, h, score in cols
        ]


def save_serving_artifacts(
    artifacts_dir: Path,
    model: Detector,
    name: str,
    thresholds: tuple[float, ...],
    info: dict[str, Any],
) -> None:
    """The served detector, its thresholds and the manifest."""
    artifacts_dir.mkdir(parents=True, exist_ok=True)
    save_value(model, artifacts_dir / MODEL_DIR)
    write_json(
        artifacts_dir / SERVING_FILE,
        {"model": name, "thresholds": list(thresholds), "margin": MARGIN, **info},
    )
    write_manifest(artifacts_dir)


def load_blurrer(artifacts_dir: Path, threads: int = 1) -> Blurrer:
    """The blurrer a run saved; :class:`ServingArtifactError` naming a bad file otherwise."""
    verify_manifest(artifacts_dir, required=(MODEL_DIR, SERVING_FILE))
    info = read_artifact_json(artifacts_dir / SERVING_FILE)
    try:
        name = str(info["model"])
        thresholds = tuple(float(t) for t in info["thresholds"])
        if len(thresholds) != len(CLASSES):
            raise ValueError(f"{len(thresholds)} thresholds for {len(CLASSES)} classes")
    except (KeyError, TypeError, ValueError) as exc:
        raise ServingArtifactError(f"{artifacts_dir / SERVING_FILE}: {exc}") from exc
    try:
        model = load_value(artifacts_dir / MODEL_DIR)
    except ModelFileError as exc:
        raise ServingArtifactError(str(exc)) from exc
    if not isinstance(model, CenterNetDetector | HaarCascades):
        raise ServingArtifactError(
            f"{artifacts_dir / MODEL_DIR}: holds a {type(model).__name__}, not a detector"
        )
    return Blurrer(model, name, thresholds, threads)


def load_scorer(run_dir: Path, settings: Settings) -> Blurrer:
    """What street-view blurring serves, from a run directory (or its bare ``artifacts/``)."""
    return load_blurrer(artifacts_dir_of(run_dir), settings.torch_threads)
