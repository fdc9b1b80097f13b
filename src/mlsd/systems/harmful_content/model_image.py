"""The image encoder: a small CNN trained on the posts' images with a head per harm class.

Three convolutions (16, 32, 32 channels) with max-pooling and a global average pool give a
32-d embedding; a linear head per class is trained with positive-reweighted BCE through the one
PyTorch loop. Its embedding is the image part of early fusion; its own probabilities are the
image model of late fusion. Pixels are scaled to [0, 1] and standardised per channel.

:func:`image_descriptors` are the classical, training-free descriptors beside it: colour
histograms of the whole image and of its centre, and a histogram of gradient orientations. With
a few dozen harmful images per class a CNN trained from scratch sees too few examples; a
linear layer over these descriptors, fitted jointly with the text in the fusion network, learns
from the same few (measured in the blueprint).
"""

from __future__ import annotations

from typing import Any, Self

import numpy as np
import torch
from scipy.special import expit
from sklearn.base import BaseEstimator
from torch import nn

from mlsd.model_io import SavedAsData
from mlsd.rng import rng, seed_of, torch_generator
from mlsd.systems.harmful_content.model_fusion import check_labels
from mlsd.training import fit_torch, torch_threads

_BATCH = 4096
COLOR_BINS = 4  # per channel: 4^3 = 64 colour cells
ORIENTATIONS = 8
N_DESCRIPTORS = 2 * COLOR_BINS**3 + ORIENTATIONS + 1


def _color_histogram(images: np.ndarray) -> np.ndarray:
    """``(n, s, s, 3)`` uint8 -> ``(n, bins^3)``: the share of pixels in each colour cell."""
    n = len(images)
    q = images.astype(np.int64) * COLOR_BINS // 256  # (n, s, s, 3)
    code = (q[..., 0] * COLOR_BINS + q[..., 1]) * COLOR_BINS + q[..., 2]  # (n, s, s)
    cells = COLOR_BINS**3
    flat = (code.reshape(n, -1) + np.arange(n)[:, None] * cells).ravel()
    counts = np.bincount(flat, minlength=n * cells).reshape(n, cells)
    return counts / max(code[0].size, 1)


def image_descriptors(images: np.ndarray) -> np.ndarray:
    """``(n, s, s, 3)`` uint8 -> ``(n, N_DESCRIPTORS)`` float32: square-rooted colour histograms
    of the image and of its centre half, the gradient-orientation histogram (HOG with one cell)
    and the mean gradient magnitude."""
    arr = np.asarray(images)
    if arr.ndim != 4 or arr.shape[-1] != 3:
        raise ValueError(f"images must be (n, s, s, 3), got shape {arr.shape}")
    n, s = arr.shape[0], arr.shape[1]
    lo, hi = s // 4, s - s // 4
    gray = arr.astype(np.float32).mean(axis=-1)  # (n, s, s)
    gx, gy = np.zeros_like(gray), np.zeros_like(gray)
    gx[:, :, 1:-1] = gray[:, :, 2:] - gray[:, :, :-2]
    gy[:, 1:-1] = gray[:, 2:] - gray[:, :-2]
    mag = np.hypot(gx, gy)
    bins = np.minimum((np.arctan2(gy, gx) % np.pi / np.pi * ORIENTATIONS).astype(np.int64), 7)
    hog = np.stack([(mag * (bins == k)).sum(axis=(1, 2)) for k in range(ORIENTATIONS)], axis=1)
    hog /= hog.sum(axis=1, keepdims=True) + 1e-6
    parts = [
        np.sqrt(_color_histogram(arr)),
        np.sqrt(_color_histogram(arr[:, lo:hi, lo:hi])),
        hog,
        mag.mean(axis=(1, 2))[:, None] / 100.0,
    ]
    return np.concatenate(parts, axis=1).astype(np.float32).reshape(n, N_DESCRIPTORS)


class ConvNet(nn.Module):
    """``(n, 3, s, s)`` float -> ``(n, C)`` logits; :meth:`embed` gives ``(n, width * 2)``."""

    def __init__(self, n_classes: int, width: int = 16) -> None:
        super().__init__()
        w2 = width * 2
        self.body = nn.Sequential(
            nn.Conv2d(3, width, 3, padding=1),  # (n, w, s, s)
            nn.ReLU(),
            nn.MaxPool2d(2),  # (n, w, s/2, s/2)
            nn.Conv2d(width, w2, 3, padding=1),  # (n, 2w, s/2, s/2)
            nn.ReLU(),
            nn.MaxPool2d(2),  # (n, 2w, s/4, s/4)
            nn.Conv2d(w2, w2, 3, padding=1),  # (n, 2w, s/4, s/4)
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(1),  # (n, 2w, 1, 1)
            nn.Flatten(),  # (n, 2w)
        )
        self.head = nn.Linear(w2, n_classes)  # (n, 2w) -> (n, C)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.body(x)
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.head(self.body(x))
        return out


def to_tensor(images: np.ndarray) -> torch.Tensor:
    """``(n, s, s, 3)`` uint8 -> ``(n, 3, s, s)`` float32 in [0, 1]."""
    arr = np.asarray(images)
    if arr.ndim != 4 or arr.shape[-1] != 3:
        raise ValueError(f"images must be (n, s, s, 3), got shape {arr.shape}")
    return torch.from_numpy(np.ascontiguousarray(arr.transpose(0, 3, 1, 2))).float() / 255.0


class ImageCNN(SavedAsData, BaseEstimator):  # type: ignore[misc]
    """Per-class probabilities and a pooled embedding of images."""

    def __init__(
        self,
        width: int = 16,
        epochs: int = 6,
        batch_size: int = 128,
        lr: float = 2e-3,
        random_state: int = 0,
        num_threads: int = 1,
    ) -> None:
        self.width = width
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.random_state = random_state
        self.num_threads = num_threads

    def _network(self) -> ConvNet:
        return ConvNet(self.n_classes_, self.width)

    def _x(self, images: np.ndarray) -> torch.Tensor:
        x = to_tensor(images)
        mean = torch.from_numpy(self.mean_).view(1, 3, 1, 1)
        std = torch.from_numpy(self.std_).view(1, 3, 1, 1)
        return (x - mean) / std

    def fit(self, images: np.ndarray, Y: np.ndarray) -> Self:
        x0 = to_tensor(images)
        y = check_labels(np.empty(len(x0)), Y)
        self.n_classes_ = int(y.shape[1])
        self.mean_ = x0.mean(dim=(0, 2, 3)).numpy().astype(np.float32)
        self.std_ = np.maximum(x0.std(dim=(0, 2, 3)).numpy(), 1e-3).astype(np.float32)
        x = self._x(images)
        n = len(y)
        order = torch.from_numpy(
            rng(self.random_state, "harmful-content/cnn/holdout").permutation(n)
        )
        n_val = round(0.1 * n) if n >= 50 else 0
        val_idx, train_idx = order[:n_val], order[n_val:]
        pos = y[train_idx.numpy()].sum(axis=0).astype(np.float64)
        w = np.sqrt(np.maximum(len(train_idx) - pos, 1.0) / np.maximum(pos, 1.0))
        loss_fn = nn.BCEWithLogitsLoss(
            pos_weight=torch.from_numpy(np.clip(w, 1, 50).astype(np.float32))
        )
        target = torch.from_numpy(y.astype(np.float32))
        with torch_threads(self.num_threads), torch.random.fork_rng(devices=[]):
            gen = torch_generator(self.random_state, "harmful-content/cnn/init")
            net = self._network()
            with torch.no_grad():
                for p in net.parameters():
                    if p.ndim > 1:
                        fan_in = int(np.prod(p.shape[1:]))
                        p.copy_(torch.randn(p.shape, generator=gen) * (2.0 / fan_in) ** 0.5)
                    else:
                        p.zero_()
            self.history_ = fit_torch(
                net,
                [x[train_idx]],
                target[train_idx],
                loss_fn=loss_fn,
                epochs=self.epochs,
                batch_size=self.batch_size,
                lr=self.lr,
                seed=seed_of(self.random_state, "harmful-content/cnn/training"),
                val=([x[val_idx]], target[val_idx]) if n_val > 0 else None,
            )
        self.network_ = net
        return self

    def _empty_module(self, name: str) -> Any:
        if name != "network_":
            return super()._empty_module(name)
        with torch.device("meta"):
            return self._network()

    def _run(self, images: np.ndarray, embed: bool) -> np.ndarray:
        x = self._x(images)
        width = self.width * 2 if embed else self.n_classes_
        out = np.empty((len(x), width), np.float32)
        self.network_.eval()
        with torch_threads(self.num_threads), torch.inference_mode():
            for start in range(0, len(x), _BATCH):
                batch = x[start : start + _BATCH]
                z = self.network_.embed(batch) if embed else self.network_(batch)
                out[start : start + len(z)] = z.numpy()
        return out

    def embed(self, images: np.ndarray) -> np.ndarray:
        """``(n, 2 * width)`` float32 pooled features."""
        return self._run(images, True)

    def predict_logits(self, images: np.ndarray) -> np.ndarray:
        return self._run(images, False).astype(np.float64)

    def predict_proba(self, images: np.ndarray) -> np.ndarray:
        return np.asarray(expit(self.predict_logits(images)))
