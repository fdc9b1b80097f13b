"""The visual-search world: a procedural product catalogue and its photos (book ch. 2).

Each product is an object of a category (a shape family) with its own two colours (from a
small palette, so colours alone do not identify a product), a pattern (solid, stripes, dots,
checks, gradient) with its own frequency and angle, and a printed mark (a small glyph at a
product-specific place). A *photo* of a product puts the object on a cluttered background under
a random viewpoint (rotation, aspect), scale, position, crop, lighting (brightness, contrast,
colour cast) and sensor noise, so finding the same product is not trivial for pixels or colour
histograms. Every photo is a pure function of ``(seed, product_id, photo_index)`` (its own random
stream, a child of the named stream ``world/photos`` keyed by the pair): catalogues of
any size stream in chunks with bounded memory, and user query photos (indices from
``QUERY_PHOTO_BASE``) never coincide with catalogue photos.

Products are split once, by seed, into *training* products (the encoder learns from their
photos) and *evaluation* products (queries and index), so no image is both trained on and scored.

The world goes on after training, one simulated day at a time (:meth:`VisualSearchWorld.uploads`):
each day users upload photos of catalogue products. From ``drift_start_day`` a growing share of
them (``drift_share_per_day`` more each day) come from a new phone camera that takes dim, soft
photos (:func:`low_light`): the input drift step 7 has to catch. ``drift_share_per_day = 0`` is a
world whose uploads never change.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from dataclasses import dataclass, replace

import cv2
import numpy as np
import pandas as pd
from PIL import Image

from mlsd.rng import rng as named_rng
from mlsd.rng import seed_sequence
from mlsd.world import Scale

log = logging.getLogger(__name__)

CATEGORIES = ("disc", "box", "triangle", "star", "ring", "cross", "hexagon", "crescent")
PATTERNS = ("solid", "stripes", "dots", "checks", "gradient")
PALETTE = np.array(
    [
        [220, 40, 40],  # red
        [40, 160, 60],  # green
        [40, 80, 220],  # blue
        [240, 200, 40],  # yellow
        [150, 60, 190],  # purple
        [240, 130, 30],  # orange
        [30, 190, 200],  # cyan
        [235, 235, 235],  # white
        [40, 40, 40],  # black
        [160, 110, 70],  # brown
    ],
    dtype=np.float32,
)
QUERY_PHOTO_BASE = 1_000_000  # photo indices of user query photos start here
UPLOAD_PHOTO_BASE = 2_000_000  # photo indices of the days' uploads: + day * UPLOADS_PER_DAY_MAX
UPLOADS_PER_DAY_MAX = 100_000
LOW_LIGHT_GAIN = 0.45  # the new camera's photos: this much of the light, then a blur
LOW_LIGHT_BLUR = 1.0  # Gaussian sigma in pixels (at 32x32)
RENDER = 64  # objects are drawn at this size, then downsampled (anti-aliasing)


@dataclass(frozen=True)
class VisualWorldConfig:
    """Sizes of one world; :meth:`for_scale` gives the four standard ones."""

    n_categories: int = 8
    n_train_products: int = 300
    n_eval_products: int = 200
    photos_per_product: int = 8
    image_size: int = 32
    n_sessions: int = 6_000  # online A/B test sessions (one uploaded query photo each)
    train_steps: int = 300
    batch_size: int = 128
    embedding_dim: int = 64
    monitor_days: int = 6  # simulated days after training that step 7 watches
    monitor_uploads: int = 500  # uploads per monitored day
    drift_start_day: int = 3  # the first day some uploads come from the new camera
    drift_share_per_day: float = 0.2  # share of uploads from it, more each day from the start

    @classmethod
    def for_scale(cls, scale: Scale) -> VisualWorldConfig:
        if scale == Scale.TINY:
            return cls(
                n_train_products=96,
                n_eval_products=48,
                photos_per_product=5,
                n_sessions=1_500,
                train_steps=100,
                batch_size=64,
                monitor_days=4,
                monitor_uploads=200,
                drift_start_day=2,
                drift_share_per_day=0.35,
            )
        if scale == Scale.SMALL:
            return cls()
        # medium / large: the catalogue is streamed (see serving_catalogue.py). Training steps
        # from benchmarks/bench_visual_training.py (a validation world of 600 training and
        # 1,000 held-out products, batch 128, dim 64): mAP@10 0.020 after 100 steps, 0.085
        # after 300, 0.189 after 1,000 and still rising; 1,000 steps of 256 pairs (twice the
        # pairs of the best cell measured) is what a shared 2-core CPU trains in about 20 min.
        # Before: medium 500 steps (mAP@10 0.116), large 200 (0.003).
        return cls(
            n_train_products=1_000 if scale == Scale.MEDIUM else 2_000,
            n_eval_products=2_000 if scale == Scale.MEDIUM else 100_000,
            photos_per_product=10,
            n_sessions=10_000,
            train_steps=1_000,
            batch_size=256,
            monitor_uploads=1_000,
        )

    def with_(self, **changes: float) -> VisualWorldConfig:
        return replace(self, **changes)  # type: ignore[arg-type]

    def low_light_share(self, day: int) -> float:
        """The share of day ``day``'s uploads taken with the new (dim, soft) camera."""
        return float(np.clip((day - self.drift_start_day + 1) * self.drift_share_per_day, 0, 1))


class VisualSearchWorld:
    """The catalogue (``products``) and a deterministic photographer (:meth:`photos`)."""

    def __init__(self, scale: Scale, seed: int, config: VisualWorldConfig | None = None) -> None:
        self.scale = scale
        self.seed = seed
        self.config = config or VisualWorldConfig.for_scale(scale)
        self.products = _make_products(self.config, seed)
        # every photo has its own stream, a child of this one keyed by (product, photo index)
        self._photo_entropy = seed_sequence(seed, "world/photos").entropy
        self._pid = self.products["product_id"].to_numpy()
        self._cat = self.products["category_id"].to_numpy()
        self._params: list[dict[str, float]] = [
            {str(k): float(v) for k, v in r.items() if k != "split"}
            for r in self.products.to_dict("records")
        ]

    @property
    def image_size(self) -> int:
        return self.config.image_size

    def product_ids(self, split: str) -> np.ndarray:
        """Product ids of ``"train"`` or ``"eval"`` products."""
        return self._pid[self.products["split"].to_numpy() == split]

    def category_of(self, product_ids: np.ndarray) -> np.ndarray:
        return self._cat[np.asarray(product_ids, dtype=np.int64)]

    def photos(self, product_ids: np.ndarray, photo_idx: np.ndarray) -> np.ndarray:
        """Photos ``(N, S, S, 3)`` uint8 RGB, one per (product, photo index) pair."""
        pids = np.asarray(product_ids, dtype=np.int64)
        idx = np.asarray(photo_idx, dtype=np.int64)
        s = self.config.image_size
        out = np.empty((len(pids), s, s, 3), dtype=np.uint8)
        last, obj = -1, None  # photos of one product are usually adjacent: draw it once
        for i, (p, j) in enumerate(zip(pids, idx, strict=True)):
            if int(p) != last or obj is None:
                last, obj = int(p), _object(self._params[int(p)])
            stream = np.random.SeedSequence(self._photo_entropy, spawn_key=(int(p), int(j)))
            out[i] = render_photo(self._params[int(p)], np.random.default_rng(stream), s, obj)
        return out

    def catalog(self, split: str) -> tuple[np.ndarray, np.ndarray]:
        """``(product_id, photo_index)`` of every catalogue photo of the ``split`` products."""
        pids = self.product_ids(split)
        k = self.config.photos_per_product
        return np.repeat(pids, k), np.tile(np.arange(k), len(pids))

    def uploads(self, day: int, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Day ``day``'s ``n`` user uploads (day 0 is training): ``(product_ids, photos,
        low_light)``, photos of evaluation products drawn by the named stream of the day, the
        new camera's share of them :func:`low_light`."""
        if not 0 < n <= UPLOADS_PER_DAY_MAX:
            raise ValueError(f"uploads per day must be in 1..{UPLOADS_PER_DAY_MAX}, got {n}")
        gen = named_rng(self.seed, f"world/uploads/{day}")
        pids = gen.choice(self.product_ids("eval"), n)
        photos = self.photos(pids, UPLOAD_PHOTO_BASE + day * UPLOADS_PER_DAY_MAX + np.arange(n))
        dim = gen.random(n) < self.config.low_light_share(day)
        for i in np.flatnonzero(dim):
            photos[i] = low_light(photos[i])
        return pids, photos, dim

    def iter_photos(
        self, product_ids: np.ndarray, photo_idx: np.ndarray, chunk: int = 4096
    ) -> Iterator[np.ndarray]:
        """:meth:`photos` in chunks of ``chunk`` images (bounded memory at any scale)."""
        for start in range(0, len(product_ids), chunk):
            yield self.photos(product_ids[start : start + chunk], photo_idx[start : start + chunk])


def _make_products(cfg: VisualWorldConfig, seed: int) -> pd.DataFrame:
    rng = named_rng(seed, "world/products")
    n = cfg.n_train_products + cfg.n_eval_products
    c1 = rng.integers(len(PALETTE), size=n)
    c2 = (c1 + rng.integers(1, len(PALETTE), size=n)) % len(PALETTE)
    split = np.array(["train"] * cfg.n_train_products + ["eval"] * cfg.n_eval_products)
    return pd.DataFrame(
        {
            "product_id": np.arange(n, dtype=np.int64),
            "category_id": rng.integers(cfg.n_categories, size=n),
            "split": rng.permutation(split),
            "color1": c1,
            "color2": c2,
            "color_mark": rng.integers(len(PALETTE), size=n),
            "pattern": rng.integers(len(PATTERNS), size=n),
            "period": rng.uniform(5.0, 14.0, size=n),
            "angle": rng.uniform(0.0, np.pi, size=n),
            "aspect": rng.uniform(0.75, 1.25, size=n),
            "mark_kind": rng.integers(3, size=n),
            "mark_x": rng.uniform(-0.25, 0.25, size=n),
            "mark_y": rng.uniform(-0.25, 0.25, size=n),
            "jitter_r": rng.normal(0, 12, size=n),
            "jitter_g": rng.normal(0, 12, size=n),
            "jitter_b": rng.normal(0, 12, size=n),
        }
    )


# ---- rendering ------------------------------------------------------------------------------
def _shape_mask(category: int, aspect: float) -> np.ndarray:
    m = np.zeros((RENDER, RENDER), dtype=np.uint8)
    c, r = RENDER // 2, int(RENDER * 0.36)
    rx, ry = int(r * aspect), int(r / aspect)
    ang = np.linspace(0, 2 * np.pi, 7)[:-1]
    name = CATEGORIES[category % len(CATEGORIES)]
    if name == "disc":
        cv2.ellipse(m, (c, c), (rx, ry), 0, 0, 360, 255, -1)
    elif name == "box":
        cv2.rectangle(m, (c - rx, c - ry), (c + rx, c + ry), 255, -1)
    elif name == "triangle":
        tri = np.array([(c, c - ry), (c - rx, c + ry), (c + rx, c + ry)], np.int32)
        cv2.fillPoly(m, [tri], 255)
    elif name == "star":
        a = np.linspace(-np.pi / 2, 1.5 * np.pi, 11)[:-1]
        rad = np.where(np.arange(10) % 2 == 0, 1.0, 0.45)
        pts = np.stack([c + rx * rad * np.cos(a), c + ry * rad * np.sin(a)], 1)
        cv2.fillPoly(m, [pts.astype(np.int32)], 255)
    elif name == "ring":
        cv2.ellipse(m, (c, c), (rx, ry), 0, 0, 360, 255, -1)
        cv2.ellipse(m, (c, c), (rx // 2, ry // 2), 0, 0, 360, 0, -1)
    elif name == "cross":
        w = r // 3
        cv2.rectangle(m, (c - rx, c - w), (c + rx, c + w), 255, -1)
        cv2.rectangle(m, (c - w, c - ry), (c + w, c + ry), 255, -1)
    elif name == "hexagon":
        pts = np.stack([c + rx * np.cos(ang), c + ry * np.sin(ang)], 1)
        cv2.fillPoly(m, [pts.astype(np.int32)], 255)
    else:  # crescent
        cv2.ellipse(m, (c, c), (rx, ry), 0, 0, 360, 255, -1)
        cv2.ellipse(m, (c + rx // 2, c - ry // 4), (rx, ry), 0, 0, 360, 0, -1)
    return m


_GRID = np.mgrid[0:RENDER, 0:RENDER].astype(np.float32)


def _texture(p: dict[str, float]) -> np.ndarray:
    jitter = np.array([p["jitter_r"], p["jitter_g"], p["jitter_b"]], np.float32)
    c1 = np.clip(PALETTE[int(p["color1"])] + jitter, 0, 255)
    c2 = np.clip(PALETTE[int(p["color2"])] - jitter, 0, 255)
    yy, xx = _GRID
    u = xx * np.cos(p["angle"]) + yy * np.sin(p["angle"])
    v = -xx * np.sin(p["angle"]) + yy * np.cos(p["angle"])
    kind, per = PATTERNS[int(p["pattern"])], float(p["period"])
    if kind == "solid":
        t = np.zeros_like(u)
    elif kind == "stripes":
        t = (np.sin(2 * np.pi * u / per) > 0).astype(np.float32)
    elif kind == "dots":
        t = ((np.sin(2 * np.pi * u / per) * np.sin(2 * np.pi * v / per)) > 0.5).astype(np.float32)
    elif kind == "checks":
        t = ((np.floor(u / per) + np.floor(v / per)) % 2).astype(np.float32)
    else:
        t = np.clip(u / RENDER, 0, 1)
    return c1 * (1 - t[..., None]) + c2 * t[..., None]


def _object(p: dict[str, float]) -> tuple[np.ndarray, np.ndarray]:
    """The product's object as an RGB float image and its mask, both at RENDER size."""
    mask = _shape_mask(int(p["category_id"]), float(p["aspect"]))
    rgb = _texture(p)
    c = RENDER // 2
    mx, my = int(c + p["mark_x"] * RENDER), int(c + p["mark_y"] * RENDER)
    colour = tuple(float(v) for v in PALETTE[int(p["color_mark"])])
    kind = int(p["mark_kind"])
    if kind == 0:
        cv2.circle(rgb, (mx, my), 5, colour, -1)
    elif kind == 1:
        cv2.rectangle(rgb, (mx - 7, my - 3), (mx + 7, my + 3), colour, -1)
    else:
        pts = np.array([(mx, my - 6), (mx - 6, my + 5), (mx + 6, my + 5)], np.int32)
        cv2.fillPoly(rgb, [pts], colour)
    return rgb, mask.astype(np.float32) / 255.0


def _background(rng: np.random.Generator) -> np.ndarray:
    a, b = rng.uniform(0, 255, size=(2, 3)).astype(np.float32)
    yy, _ = _GRID
    t = (yy / RENDER)[..., None]
    bg = np.ascontiguousarray(a * (1 - t) + b * t, dtype=np.float32)
    for _ in range(int(rng.integers(1, 4))):  # clutter
        colour = tuple(float(v) for v in rng.uniform(0, 255, size=3))
        x, y = (int(v) for v in rng.integers(0, RENDER, size=2))
        size = int(rng.integers(4, 14))
        if rng.random() < 0.5:
            cv2.circle(bg, (x, y), size, colour, -1)
        else:
            cv2.rectangle(bg, (x, y), (x + size, y + size // 2), colour, -1)
    return bg


def render_photo(
    p: dict[str, float],
    rng: np.random.Generator,
    size: int,
    drawn: tuple[np.ndarray, np.ndarray] | None = None,
) -> np.ndarray:
    """One photo of product ``p`` under random viewpoint, scale, crop, lighting and noise.

    ``drawn``: the product's ``_object(p)`` when the caller already has it (it is not modified).
    """
    obj, mask = drawn if drawn is not None else _object(p)
    c = RENDER / 2
    M: np.ndarray = cv2.getRotationMatrix2D(
        (c, c), float(rng.uniform(-40, 40)), float(rng.uniform(0.6, 1.05))
    )
    M[:, 2] += rng.uniform(-9, 9, size=2)
    M[0, :2] *= float(rng.uniform(0.85, 1.15))  # viewpoint: foreshortening
    obj_w = cv2.warpAffine(obj, M, (RENDER, RENDER), flags=cv2.INTER_LINEAR)
    mask_w = cv2.warpAffine(mask, M, (RENDER, RENDER), flags=cv2.INTER_LINEAR)[..., None]
    img: np.ndarray = obj_w * mask_w + _background(rng) * (1 - mask_w)
    # crop: keep 78-100% of the frame, anywhere
    keep = int(RENDER * rng.uniform(0.78, 1.0))
    x0, y0 = (int(v) for v in rng.integers(0, RENDER - keep + 1, size=2))
    img = img[y0 : y0 + keep, x0 : x0 + keep]
    img = cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA)
    # lighting: brightness, contrast, colour cast; then sensor noise
    mean = img.mean()
    img = (img - mean) * rng.uniform(0.7, 1.2) + mean * rng.uniform(0.65, 1.3)
    img = img * rng.uniform(0.85, 1.15, size=3).astype(np.float32)
    img = img + rng.normal(0.0, rng.uniform(2.0, 12.0), size=img.shape).astype(np.float32)
    return np.clip(img, 0, 255).astype(np.uint8)


def low_light(image: np.ndarray) -> np.ndarray:
    """The new camera's photo of the same scene: dimmer and softer."""
    img = cv2.GaussianBlur(image.astype(np.float32) * LOW_LIGHT_GAIN, (0, 0), LOW_LIGHT_BLUR)
    return np.clip(img, 0, 255).astype(np.uint8)


def near_duplicate(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A re-upload of ``image``: JPEG re-encoded, slightly brighter or darker, a pixel shifted."""
    shifted = np.roll(image, shift=tuple(int(v) for v in rng.integers(-1, 2, size=2)), axis=(0, 1))
    bright = np.clip(shifted.astype(np.float32) * rng.uniform(0.95, 1.05), 0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(bright).save(buf, format="JPEG", quality=int(rng.integers(70, 92)))
    return np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"), dtype=np.uint8)
