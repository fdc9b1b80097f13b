"""The posts' images, rendered procedurally: a background, a few harmless shapes, and for a post
whose image carries harm, the class's glyph (a cross, red splatter, a skin-tone shape, a
QR-like grid, thin parallel cuts) whose size and contrast grow with the harm's strength. A weak
glyph is ambiguous alone, which is what makes the meme posts (weak text + weak image) harmful
only in combination."""

from __future__ import annotations

import cv2
import numpy as np

from mlsd.rng import seed_sequence

_SKIN = (205, 160, 130)


def _glyph(img: np.ndarray, cls: int, a: float, r: np.random.Generator) -> np.ndarray:
    """Draw class ``cls``'s glyph at strength ``a`` in [0, 1] on a copy; returns the layer."""
    n = img.shape[0]
    layer = img.copy()
    c = n // 2 + int(r.integers(-n // 6, n // 6 + 1))
    half = max(2, int(n * (0.15 + 0.3 * a)))
    thick = max(1, round(n / 16 * (0.5 + 1.5 * a)))
    if cls == 0:  # hate: a black cross
        cv2.line(layer, (c - half, c - half), (c + half, c + half), (10, 10, 10), thick)
        cv2.line(layer, (c - half, c + half), (c + half, c - half), (10, 10, 10), thick)
    elif cls == 1:  # violence: red splatter
        for _ in range(2 + int(5 * a)):
            p = (int(r.integers(0, n)), int(r.integers(0, n)))
            cv2.circle(layer, p, max(1, int(n / 16 * (1 + 2 * a))), (200, 10, 10), -1)
    elif cls == 2:  # sexual: a skin-tone body shape
        cv2.ellipse(layer, (c, c), (half, max(1, half // 2)), 90, 0, 360, _SKIN, -1)
    elif cls == 3:  # spam: a QR-like grid
        cell = max(1, n // 16)
        for i in range(-half, half, cell):
            for j in range(-half, half, cell):
                if r.random() < 0.5:
                    x, y = c + i, c + j
                    layer[max(0, y) : max(0, y + cell), max(0, x) : max(0, x + cell)] = 0
    elif cls == 4:  # self-harm: thin parallel cuts
        for k in range(3 + int(3 * a)):
            off = (k - 2) * max(2, n // 10)
            cv2.line(layer, (c - half + off, c + half), (c + half + off, c - half), (120, 0, 20), 1)
    return layer


def render_image(cls: int, strength: float, seed: int, post_id: int, size: int) -> np.ndarray:
    """One ``size × size × 3`` uint8 RGB image; ``cls`` -1 draws no glyph."""
    r = np.random.default_rng(seed_sequence(seed, f"harmful-content/image/{post_id}"))
    base = r.integers(40, 220, 3)
    img = np.clip(base + r.normal(0, 14, (size, size, 3)), 0, 255).astype(np.uint8)
    for _ in range(int(r.integers(1, 4))):
        color = tuple(int(v) for v in r.integers(0, 256, 3))
        p = (int(r.integers(0, size)), int(r.integers(0, size)))
        rad = int(r.integers(2, max(3, size // 3)))
        if r.random() < 0.5:
            cv2.circle(img, p, rad, color, -1)
        else:
            cv2.rectangle(img, p, (p[0] + rad, p[1] + rad), color, -1)
    if cls >= 0:
        a = float(np.clip(strength / 2.5, 0.05, 1.0))
        layer = _glyph(img, cls, a, r)
        alpha = 0.3 + 0.7 * a
        img = np.clip((1 - alpha) * img + alpha * layer, 0, 255).astype(np.uint8)
    return img


def render_images(
    classes: np.ndarray, strengths: np.ndarray, post_ids: np.ndarray, seed: int, size: int
) -> np.ndarray:
    """``(n, size, size, 3)`` uint8 images of the given posts."""
    out = np.empty((len(post_ids), size, size, 3), np.uint8)
    for i, (c, s, p) in enumerate(zip(classes, strengths, post_ids, strict=True)):
        out[i] = render_image(int(c), float(s), seed, int(p), size)
    return out
