"""A written stand-in for the small grey image sets of the field (book ch. 2, real data).

Public sets of small grey images (garments, digits, faces: 28×28, ten classes, one object
centred on a dark ground) are what ``--data idx:`` and ``--data imagefolder:`` read; none is on
this machine. :func:`grey_garments` draws a set that looks like them: ten garment-like
silhouettes (T-shirt, trouser, pullover, dress, coat, sandal, shirt, sneaker, bag, ankle boot),
several of them deliberately alike (the four tops differ only in sleeves, collar, buttons and
length; sneaker and ankle boot in height), each image with its own size, aspect, rotation,
shift, fill, texture, contrast and sensor noise, so raw pixels are a weak but not a useless
baseline. :func:`write_idx` writes images and labels in the IDX layout the reader reads.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import cv2
import numpy as np

from mlsd.rng import rng

GREY_CLASSES = (
    "tshirt",
    "trouser",
    "pullover",
    "dress",
    "coat",
    "sandal",
    "shirt",
    "sneaker",
    "bag",
    "ankle_boot",
)
_CANVAS = 56  # drawn at twice the size, then reduced (anti-aliasing)


def _poly(img: np.ndarray, pts: list[tuple[float, float]], value: float) -> None:
    cv2.fillPoly(img, [np.round(np.array(pts)).astype(np.int32)], value)


def _top(img: np.ndarray, sleeves: str, length: float, v: float) -> None:
    """A top: torso, shoulders and sleeves (``short`` or ``long``) on the 56-pixel canvas."""
    c, top, bottom, half = 28, 12, 12 + length, 10
    _poly(img, [(c - half, top), (c + half, top), (c + half, bottom), (c - half, bottom)], v)
    if sleeves == "short":
        _poly(img, [(c - half, top), (c - half - 9, top + 8), (c - half - 5, top + 13)], v)
        _poly(img, [(c + half, top), (c + half + 9, top + 8), (c + half + 5, top + 13)], v)
    else:
        for sign in (-1, 1):
            x0 = c + sign * half
            arm = [(x0, top), (x0 + sign * 6, top + 2), (x0 + sign * 11, top + 28)]
            _poly(img, [*arm, (x0 + sign * 5, top + 30), (x0, top + 10)], v)


def _draw(kind: str, gen: np.random.Generator) -> np.ndarray:
    """One object of class ``kind`` on a black 56×56 canvas, float32 in [0, 255]."""
    img = np.zeros((_CANVAS, _CANVAS), np.float32)
    v = float(gen.uniform(120, 255))
    dark = v * float(gen.uniform(0.25, 0.5))
    c = 28
    if kind == "tshirt":
        _top(img, "short", 26, v)
        cv2.ellipse(img, (c, 12), (5, 3), 0, 0, 180, 0.0, -1)
    elif kind == "pullover":
        _top(img, "long", 28, v)
    elif kind == "coat":
        _top(img, "long", 34, v)
        cv2.line(img, (c, 12), (c, 46), dark, 2)
    elif kind == "shirt":
        _top(img, "long", 28, v)
        _poly(img, [(c - 5, 12), (c + 5, 12), (c, 19)], dark)
        for y in (22, 28, 34):
            cv2.circle(img, (c, y), 1, dark, -1)
    elif kind == "trouser":
        _poly(img, [(c - 9, 8), (c + 9, 8), (c + 10, 50), (c + 2, 50), (c, 20)], v)
        _poly(img, [(c - 9, 8), (c, 20), (c - 2, 50), (c - 10, 50)], v)
    elif kind == "dress":
        _poly(
            img, [(c - 6, 8), (c + 6, 8), (c + 7, 22), (c + 16, 50), (c - 16, 50), (c - 7, 22)], v
        )
    elif kind == "sandal":
        cv2.line(img, (8, 40), (48, 40), v, 3)
        for x in (14, 24, 34, 44):
            cv2.line(img, (x, 40), (x + 5, 28), v, 2)
    elif kind == "sneaker":
        _poly(img, [(8, 42), (48, 42), (48, 34), (30, 30), (20, 24), (10, 28)], v)
        cv2.line(img, (8, 43), (48, 43), dark, 2)
        for x in (20, 25, 30):
            cv2.circle(img, (x, 30), 1, dark, -1)
    elif kind == "bag":
        _poly(img, [(12, 22), (44, 22), (46, 48), (10, 48)], v)
        cv2.ellipse(img, (c, 22), (9, 9), 0, 180, 360, v, 2)
    else:  # ankle boot
        _poly(img, [(10, 44), (48, 44), (48, 36), (32, 32), (30, 10), (12, 10)], v)
        cv2.line(img, (10, 45), (48, 45), dark, 2)
    if gen.random() < 0.4:  # a texture: stripes across the object
        period = float(gen.uniform(3, 7))
        yy = np.arange(_CANVAS, dtype=np.float32)[:, None]
        img *= np.where(np.sin(2 * np.pi * yy / period) > 0, 1.0, float(gen.uniform(0.6, 0.85)))
    return img


def _photograph(img: np.ndarray, gen: np.random.Generator, size: int) -> np.ndarray:
    """Scale, aspect, rotation and shift; reduce to ``size``; contrast, brightness, noise."""
    c = _CANVAS / 2
    m: np.ndarray = cv2.getRotationMatrix2D(
        (c, c), float(gen.uniform(-12, 12)), float(gen.uniform(0.8, 1.1))
    )
    m[0, :2] *= float(gen.uniform(0.85, 1.15))  # aspect
    m[:, 2] += gen.uniform(-5, 5, size=2)
    warped = cv2.warpAffine(img, m, (_CANVAS, _CANVAS), flags=cv2.INTER_LINEAR)
    small = cv2.resize(warped, (size, size), interpolation=cv2.INTER_AREA)
    small = small * float(gen.uniform(0.7, 1.15)) + float(gen.uniform(0, 25))
    small = small + gen.normal(0, gen.uniform(3, 14), size=small.shape)
    return np.clip(small, 0, 255).astype(np.uint8)


def grey_garments(
    n_per_class: int, seed: int, size: int = 28
) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """``(images (N, size, size) uint8, labels (N,) uint8, class names)``, classes interleaved,
    every image drawn from the named stream ``grey-garments`` of ``seed``."""
    if n_per_class < 1:
        raise ValueError(f"n_per_class must be >= 1, got {n_per_class}")
    gen = rng(seed, "grey-garments")
    labels = np.tile(np.arange(len(GREY_CLASSES), dtype=np.uint8), n_per_class)
    images = np.stack([_photograph(_draw(GREY_CLASSES[y], gen), gen, size) for y in labels])
    return images, labels, GREY_CLASSES


def write_idx(
    directory: Path,
    images: np.ndarray,
    labels: np.ndarray,
    prefix: str = "train",
    compress: bool = True,
) -> Path:
    """Write ``<prefix>-images-idx3-ubyte.gz`` and ``<prefix>-labels-idx1-ubyte.gz`` (the
    MNIST layout: big-endian magic and sizes, then the bytes) into ``directory``; return it.
    ``compress=False`` writes the files plain, without the ``.gz``."""
    imgs = np.ascontiguousarray(images, dtype=np.uint8)
    labs = np.ascontiguousarray(labels, dtype=np.uint8)
    if imgs.ndim != 3 or len(imgs) != len(labs):
        raise ValueError(f"images must be (N, H, W) with N labels, got {imgs.shape}, {labs.shape}")
    directory.mkdir(parents=True, exist_ok=True)
    n, h, w = imgs.shape
    header = np.array([0x0803, n, h, w], dtype=">u4").tobytes()
    label_header = np.array([0x0801, n], dtype=">u4").tobytes()
    suffix = ".gz" if compress else ""
    for kind, raw in (
        ("images-idx3", header + imgs.tobytes()),
        ("labels-idx1", label_header + labs.tobytes()),
    ):
        (directory / f"{prefix}-{kind}-ubyte{suffix}").write_bytes(
            gzip.compress(raw) if compress else raw
        )
    return directory
