"""Step 6: the classifier and its artifacts (no HTTP: that is
``mlsd.api.routes.harmful_content``).

A request is a post: its text, optionally an image (PNG or JPEG bytes), an author id and the
engagement counted so far. The scorer embeds the text (the run's text encoder), decodes, resizes
and embeds the image (the run's CNN), looks the author up (an unknown or absent author is a new
account with no followers and no violations), scores every harm class with the served model and
applies the per-class thresholds chosen on validation: **remove** (>= 95% precision), **review**,
**demote** or **allow**, with the reason. The artifacts are data (:mod:`mlsd.model_io`), listed in
``manifest.json`` and checked before anything is read.
"""

from __future__ import annotations

import io
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pandas as pd

from mlsd.artifacts import artifacts_dir_of, verify_manifest, write_json, write_manifest
from mlsd.data import read_parquet, write_parquet
from mlsd.model_io import ModelFileError, load_value
from mlsd.serving import ServingArtifactError, read_artifact_json
from mlsd.settings import Settings
from mlsd.systems.harmful_content.evaluation import Thresholds
from mlsd.systems.harmful_content.features import ENGAGEMENT, meta_features
from mlsd.systems.harmful_content.model import (
    LEX_MODEL,
    Lineup,
    lexical_logits,
    make_reps,
    score_model,
)
from mlsd.systems.harmful_content.model_image import ImageCNN
from mlsd.text import make_encoder

SYSTEM = "harmful-content"
SERVING_FILE = "serving.json"
MODELS_DIR = "models"
AUTHORS_FILE = "authors.parquet"
MAX_IMAGE_BYTES = 4 * 1024 * 1024
MAX_IMAGE_SIDE = 4096
MAX_TEXT_CHARS = 10_000
ACTIONS = ("remove", "review", "demote", "allow")


class ImageDecodeError(ValueError):
    """Bytes that are not a PNG/JPEG image, or one too large."""


def decode_image(data: bytes, size: int) -> np.ndarray:
    """PNG/JPEG bytes -> ``(size, size, 3)`` uint8 RGB; :class:`ImageDecodeError` otherwise.
    The header's size is checked before any pixel is decoded."""
    from PIL import Image, UnidentifiedImageError

    if len(data) > MAX_IMAGE_BYTES:
        raise ImageDecodeError(f"image too large: {len(data)} bytes > {MAX_IMAGE_BYTES}")
    if not (data.startswith(b"\x89PNG\r\n\x1a\n") or data.startswith(b"\xff\xd8\xff")):
        raise ImageDecodeError("not a PNG or JPEG image")
    try:
        with Image.open(io.BytesIO(data)) as im:
            if max(im.size) > MAX_IMAGE_SIDE:
                raise ImageDecodeError(f"image too large: more than {MAX_IMAGE_SIDE} pixels a side")
            rgb = np.asarray(im.convert("RGB"), dtype=np.uint8)
    except ImageDecodeError:
        raise
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise ImageDecodeError(f"the bytes could not be decoded as an image: {exc}") from exc
    except Image.DecompressionBombError as exc:
        raise ImageDecodeError(f"image too large: {exc}") from exc
    if rgb.ndim != 3 or min(rgb.shape[:2]) < 1:
        raise ImageDecodeError("the image has no pixels")
    return np.ascontiguousarray(cv2.resize(rgb, (size, size), interpolation=cv2.INTER_AREA))


def encode_png(image: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".png", np.ascontiguousarray(image[:, :, ::-1]))
    if not ok:
        raise ImageDecodeError("could not encode the image")
    return bytes(buf)


@dataclass(frozen=True)
class Post:
    text: str
    image: bytes | None = None
    author_id: int | None = None
    engagement: dict[str, int] | None = None  # views_1h, shares_1h, comments_1h, reports_1h


@dataclass(frozen=True)
class Classification:
    probabilities: dict[str, float]
    action: str
    harm_class: str | None
    reason: str
    model: str
    timings_ms: dict[str, float]


class HarmScorer:
    """The served classifier."""

    def __init__(
        self,
        meta: dict[str, Any],
        models: dict[str, Any],
        cnn: ImageCNN | None,
        authors: pd.DataFrame,
    ) -> None:
        self.model_name: str = meta["model_name"]
        self.classes: tuple[str, ...] = tuple(meta["classes"])
        self.image_size = int(meta["image_size"])
        self.as_of_day = int(meta["as_of_day"])
        self.encoder = make_encoder(str(meta["text_encoder_kind"]))
        th = meta["thresholds"]
        self.thresholds = Thresholds(
            self.classes,
            *(
                np.array([math.inf if th[c][b] is None else th[c][b] for c in self.classes])
                for b in ("remove", "review", "demote")
            ),
        )
        self.models = models
        self.cnn = cnn
        self.prior = np.asarray(meta["prior"], np.float64)
        self.lineup = Lineup(models, cnn, self.prior)
        self.author_row = {int(a): i for i, a in enumerate(authors["author_id"].to_numpy())}
        self.author_cols = {
            c: authors[c].to_numpy(np.float64)
            for c in ("signup_day", "followers", "past_violations")
        }
        self.n_meta = int(meta["n_meta"])
        self.uses_lex = bool(meta.get("uses_lex", False))

    def _meta(self, posts: list[Post], has_image: np.ndarray) -> np.ndarray:
        n = len(posts)
        age, followers, past = np.zeros(n), np.zeros(n), np.zeros(n)
        for i, p in enumerate(posts):
            row = self.author_row.get(p.author_id) if p.author_id is not None else None
            if row is not None:
                cols = self.author_cols
                age[i] = max(self.as_of_day - cols["signup_day"][row], 0.0)
                followers[i], past[i] = cols["followers"][row], cols["past_violations"][row]
        eng = pd.DataFrame(
            [{k: int((p.engagement or {}).get(k, 0)) for k in ENGAGEMENT} for p in posts],
            columns=list(ENGAGEMENT),
        )
        m = meta_features(age, followers, past, eng, has_image)
        return m[:, : self.n_meta]

    def score(self, posts: list[Post]) -> tuple[np.ndarray, dict[str, float]]:
        """``(n, C)`` probabilities and the stage timings (ms)."""
        t0 = time.perf_counter()
        texts = [p.text for p in posts]
        emb = self.encoder.encode(texts)
        t1 = time.perf_counter()
        has = np.array([p.image is not None for p in posts], bool)
        images = np.zeros((len(posts), self.image_size, self.image_size, 3), np.uint8)
        for i, p in enumerate(posts):
            if p.image is not None:
                images[i] = decode_image(p.image, self.image_size)
        tfidf = self.models.get(LEX_MODEL, self.models.get("tfidf_lr")) if self.uses_lex else None
        reps = make_reps(
            texts,
            emb,
            images,
            has & (self.cnn is not None),
            self._meta(posts, has),
            self.cnn,
            len(self.classes),
            None if tfidf is None else lexical_logits(tfidf, texts),
        )
        t2 = time.perf_counter()
        P = score_model(self.model_name, self.models[self.model_name], reps, self.lineup)
        t3 = time.perf_counter()
        return P, {"text": (t1 - t0) * 1e3, "image": (t2 - t1) * 1e3, "model": (t3 - t2) * 1e3}

    def decide(self, p: np.ndarray) -> tuple[str, str | None, str]:
        th = self.thresholds
        for action, t in (("remove", th.remove), ("review", th.review), ("demote", th.demote)):
            over = np.flatnonzero(p >= t)
            if len(over):
                c = int(over[np.argmax(p[over] - t[over])])
                return (
                    action,
                    self.classes[c],
                    (
                        f"{self.classes[c]} probability {p[c]:.3f} >= the {action} threshold "
                        f"{t[c]:.3f} chosen on validation"
                    ),
                )
        return "allow", None, "every class below its demote threshold"

    def classify(self, post: Post) -> Classification:
        t0 = time.perf_counter()
        P, timings = self.score([post])
        action, cls, reason = self.decide(P[0])
        timings["total"] = (time.perf_counter() - t0) * 1e3
        return Classification(
            {c: float(P[0, k]) for k, c in enumerate(self.classes)},
            action,
            cls,
            reason,
            self.model_name,
            timings,
        )


# ---- artifacts ------------------------------------------------------------------------------
def needed_models(name: str) -> tuple[str, ...]:
    """The fitted models that serving ``name`` needs (the networks read the text branch's
    logits)."""
    if name in ("keyword_rule", "tfidf_lr", LEX_MODEL):
        return (name,)
    extra = ("text_mlp", "author_lr") if name == "late_fusion" else ()
    return (name, *extra, LEX_MODEL)


def save_serving_artifacts(
    out: Path,
    lineup: Lineup,
    chosen: str,
    th: Thresholds,
    classes: tuple[str, ...],
    encoder_kind: str,
    image_size: int,
    authors: pd.DataFrame,
    as_of_day: int,
    n_meta: int,
    uses_lex: bool = False,
) -> None:
    """Write the served model (and what it reads), the CNN, the author table and
    ``serving.json``; ``uses_lex``: the model reads TF-IDF's logits."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    saved = [n for n in needed_models(chosen) if n in lineup.models]
    for name in saved:
        lineup.models[name].save(out / MODELS_DIR / name)
    if lineup.cnn is not None:
        lineup.cnn.save(out / MODELS_DIR / "image_cnn")
    write_parquet(authors, out / AUTHORS_FILE)
    write_json(
        out / SERVING_FILE,
        {
            "system": SYSTEM,
            "model_name": chosen,
            "models": saved,
            "uses_lex": uses_lex,
            "classes": list(classes),
            "thresholds": th.to_dict(),
            "text_encoder_kind": encoder_kind,
            "image_size": image_size,
            "has_cnn": lineup.cnn is not None,
            "prior": [float(v) for v in lineup.prior],
            "as_of_day": as_of_day,
            "n_meta": n_meta,
        },
    )
    write_manifest(out)


def load_scorer(run_dir: Path, settings: Settings | None = None) -> HarmScorer:
    """The classifier of a run directory, every file checked against the manifest first."""
    art = artifacts_dir_of(Path(run_dir))
    verify_manifest(art, required=(SERVING_FILE, AUTHORS_FILE, MODELS_DIR))
    path = art / SERVING_FILE
    meta = read_artifact_json(path)
    keys = (
        "model_name",
        "classes",
        "thresholds",
        "text_encoder_kind",
        "image_size",
        "prior",
        "as_of_day",
        "n_meta",
        "has_cnn",
    )
    if not isinstance(meta, dict) or any(k not in meta for k in keys):
        raise ServingArtifactError(f"{path}: missing one of the fields {list(keys)}")
    if meta["text_encoder_kind"] not in ("minilm", "hashing"):
        raise ServingArtifactError(f"{path}: field 'text_encoder_kind' is not minilm or hashing")
    models: dict[str, Any] = {}
    listed = meta.get("models")
    if not isinstance(listed, list) or not all(isinstance(n, str) for n in listed):
        raise ServingArtifactError(f"{path}: field 'models' is not a list of names")
    if meta["model_name"] not in listed:
        raise ServingArtifactError(f"{path}: the served model is not among 'models'")
    names = [*listed, *(["image_cnn"] if meta["has_cnn"] else [])]
    for name in names:
        try:
            models[name] = load_value(art / MODELS_DIR / name)
        except (ModelFileError, OSError) as exc:
            raise ServingArtifactError(
                f"{art / MODELS_DIR / name}: unreadable model: {exc}"
            ) from exc
    cnn = models.pop("image_cnn", None)
    if cnn is not None and not isinstance(cnn, ImageCNN):
        raise ServingArtifactError(f"{art / MODELS_DIR}/image_cnn: not an image CNN")
    try:
        authors = read_parquet(art / AUTHORS_FILE)
        return HarmScorer(meta, models, cnn, authors)
    except (KeyError, ValueError, TypeError, IndexError) as exc:
        raise ServingArtifactError(f"{art}: inconsistent serving artifacts: {exc!r}") from exc
