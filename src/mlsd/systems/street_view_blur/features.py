"""Step 3 for street-view blurring: image preprocessing, augmentation and detection targets.

A detector's features are its pixels, so this module holds what turns images and boxes into
tensors, the same at training and at serving: :func:`to_tensor` (BGR ``uint8`` → normalised
``float32`` NCHW), :func:`resize_set` (every image to the detector's input size, boxes scaled with
it: IoU is unchanged by an axis-aligned rescale), :func:`augment` (horizontal flips and
photometric jitter: brightness, contrast, a night-like darkening, blur; the boxes follow the
flips) and :func:`centernet_targets` (the anchor-free targets of a CenterNet-style detector: a
Gaussian peak per object centre on each class's heatmap, the box size in log pixels and the
sub-cell offset at the centre cell).
"""

from __future__ import annotations

import math

import cv2
import numpy as np
import pandas as pd
import torch

from mlsd.systems.street_view_blur.world import ImageSet

MEAN, STD = 110.0, 60.0


def to_tensor(images: np.ndarray) -> torch.Tensor:
    """``(n, H, W, 3)`` uint8 → ``(n, 3, H, W)`` float32, roughly zero-mean unit-variance."""
    x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float()
    return (x - MEAN) / STD


def resize_images(images: np.ndarray, width: int, height: int) -> np.ndarray:
    """Every image resized to ``width × height`` (area interpolation when shrinking)."""
    if images.shape[1:3] == (height, width):
        return images
    out = np.zeros((len(images), height, width, 3), np.uint8)
    for i, img in enumerate(images):
        shrink = img.shape[1] > width
        out[i] = cv2.resize(
            img, (width, height), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR
        )
    return out


def resize_set(data: ImageSet, width: int, height: int) -> ImageSet:
    """``data`` at ``width × height``, its boxes scaled with the images."""
    h, w = data.images.shape[1:3]
    if (h, w) == (height, width):
        return data
    sx, sy = width / w, height / h
    boxes = data.boxes.copy()
    boxes["x"] *= sx
    boxes["w"] *= sx
    boxes["y"] *= sy
    boxes["h"] *= sy
    return ImageSet(resize_images(data.images, width, height), boxes, data.meta, data.names)


def boxes_by_image(boxes: pd.DataFrame, n: int) -> list[np.ndarray]:
    """Per image, an ``(k, 5)`` array ``label, x, y, w, h``."""
    arr = boxes[["image", "label", "x", "y", "w", "h"]].to_numpy(np.float64)
    out = [np.zeros((0, 5)) for _ in range(n)]
    if len(arr):
        order = np.argsort(arr[:, 0], kind="stable")
        arr = arr[order]
        starts = np.searchsorted(arr[:, 0], np.arange(n + 1))
        out = [arr[starts[i] : starts[i + 1], 1:] for i in range(n)]
    return out


def augment(
    x: torch.Tensor, boxes: list[np.ndarray], generator: torch.Generator
) -> tuple[torch.Tensor, list[np.ndarray]]:
    """A randomly flipped and photometrically jittered copy of the batch ``x`` (normalised);
    the boxes follow the flips."""
    n, _, _, w = x.shape
    u = torch.rand(n, 5, generator=generator)
    flip = u[:, 0] < 0.5
    x = x.clone()
    x[flip] = x[flip].flip(-1)
    out = []
    for i, b in enumerate(boxes):
        if bool(flip[i]) and len(b):
            b = b.copy()
            b[:, 1] = w - b[:, 1] - b[:, 3]
        out.append(b)
    pixels = x * STD + MEAN
    contrast = (0.7 + 0.6 * u[:, 1]).view(n, 1, 1, 1)
    bright = (-30.0 + 60.0 * u[:, 2]).view(n, 1, 1, 1)
    dark = torch.where(u[:, 3] < 0.2, 0.4, 1.0).view(n, 1, 1, 1)  # a night-like copy
    mean = pixels.mean(dim=(1, 2, 3), keepdim=True)
    pixels = ((pixels - mean) * contrast + mean + bright) * dark
    blur = u[:, 4] < 0.2
    if bool(blur.any()):  # a 3x3 box blur, as a soft camera
        soft = torch.nn.functional.avg_pool2d(pixels[blur], 3, stride=1, padding=1)
        pixels[blur] = soft
    return (pixels.clamp(0, 255) - MEAN) / STD, out


def _gaussian_radius(w: float, h: float) -> float:
    """The peak's spread for a box of ``w × h`` output cells (CenterNet's rule of thumb)."""
    return max(0.5, 0.15 * math.sqrt(max(w * h, 1e-6)) + 0.3)


def centernet_targets(
    boxes: list[np.ndarray], n_classes: int, out_h: int, out_w: int, stride: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """``heatmap (n, C, h, w)``, ``size (n, 2, h, w)`` (log w, log h in input pixels),
    ``offset (n, 2, h, w)`` (centre minus its cell, in cells) and ``mask (n, h, w)`` (1 at the
    centre cells) for boxes ``label, x, y, w, h`` in input pixels."""
    n = len(boxes)
    heat = np.zeros((n, n_classes, out_h, out_w), np.float32)
    size = np.zeros((n, 2, out_h, out_w), np.float32)
    offset = np.zeros((n, 2, out_h, out_w), np.float32)
    mask = np.zeros((n, out_h, out_w), np.float32)
    ys, xs = np.mgrid[0:out_h, 0:out_w].astype(np.float32)
    for i, b in enumerate(boxes):
        for label, x, y, bw, bh in b:
            cx, cy = (x + bw / 2) / stride, (y + bh / 2) / stride
            ix, iy = int(min(max(cx, 0), out_w - 1)), int(min(max(cy, 0), out_h - 1))
            sigma = _gaussian_radius(bw / stride, bh / stride)
            g = np.exp(-((xs - ix) ** 2 + (ys - iy) ** 2) / (2 * sigma**2))
            c = int(label)
            heat[i, c] = np.maximum(heat[i, c], g)
            size[i, :, iy, ix] = (math.log(max(bw, 1.0)), math.log(max(bh, 1.0)))
            offset[i, :, iy, ix] = (cx - ix, cy - iy)
            mask[i, iy, ix] = 1.0
    return (
        torch.from_numpy(heat),
        torch.from_numpy(size),
        torch.from_numpy(offset),
        torch.from_numpy(mask),
    )
