"""Step 4 for visual search: image encoders under one contract (book ch. 2, "Model development").

Every encoder maps uint8 RGB images ``(N, S, S, 3)`` to L2-normalised float32 embeddings
``(N, D)``, so cosine similarity is an inner product and one FAISS ``IndexFlatIP`` serves them
all. scikit-learn style: ``__init__`` stores arguments only, learned state ends in ``_``,
``fit(images, groups)`` returns self (``groups``: the product, or class, of each image), and
``save`` / ``load`` pickle the whole encoder.

* :class:`PixelPCAEncoder`: raw pixels, PCA-reduced: the dumbest baseline.
* :class:`ColorHistogramEncoder`: a joint RGB histogram (Hellinger-normalised), PCA-reduced.
* :class:`CNNEncoder`: a small convolutional network; ``train_steps=0`` is the untrained
  (randomly initialised) baseline, otherwise it is trained contrastively
  (:mod:`mlsd.systems.visual_search.contrastive`).
"""

from __future__ import annotations

import pickle
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, Self

import numpy as np
import torch
from sklearn.decomposition import PCA
from torch import nn

from mlsd.training import torch_threads


def l2_normalise(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (zero rows stay zero), as float32."""
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return np.ascontiguousarray(x / np.maximum(norms, 1e-12), dtype=np.float32)


def check_images(images: np.ndarray) -> np.ndarray:
    """``images`` as a contiguous uint8 ``(N, S, S, 3)`` array, or a ``ValueError`` saying why."""
    arr = np.asarray(images)
    if arr.dtype != np.uint8 or arr.ndim != 4 or arr.shape[3] != 3 or arr.shape[1] != arr.shape[2]:
        raise ValueError(f"images must be uint8 (N, S, S, 3), got {arr.dtype} {arr.shape}")
    return np.ascontiguousarray(arr)


class ImageEncoder(ABC):
    """The contract every encoder meets (see the module docstring)."""

    @property
    @abstractmethod
    def dim(self) -> int:
        """Embedding size D."""

    @abstractmethod
    def fit(self, images: np.ndarray, groups: np.ndarray) -> Self:
        """Learn from ``images`` whose ``groups[i]`` names the product (or class) of image i."""

    @abstractmethod
    def _encode(self, images: np.ndarray) -> np.ndarray: ...

    def encode(self, images: np.ndarray, batch_size: int = 512) -> np.ndarray:
        """L2-normalised embeddings ``(N, D)`` float32, computed ``batch_size`` images at a time."""
        arr = check_images(images)
        if len(arr) == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        parts = [self._encode(arr[i : i + batch_size]) for i in range(0, len(arr), batch_size)]
        return l2_normalise(np.concatenate(parts))

    def save(self, path: Path) -> None:
        tmp = Path(path).with_suffix(".tmp")
        with tmp.open("wb") as fh:
            pickle.dump(self, fh)
        tmp.replace(path)

    @staticmethod
    def load(path: Path) -> ImageEncoder:
        with Path(path).open("rb") as fh:
            obj = pickle.load(fh)
        if not isinstance(obj, ImageEncoder):
            raise TypeError(f"{path}: not an ImageEncoder but {type(obj).__name__}")
        return obj


class _PCAEncoder(ImageEncoder):
    """Shared PCA tail of the two hand-made baselines."""

    def __init__(self, n_components: int = 64, random_state: int = 0) -> None:
        self.n_components = n_components
        self.random_state = random_state

    @property
    def dim(self) -> int:
        return int(self.pca_.n_components_)

    @abstractmethod
    def _features(self, images: np.ndarray) -> np.ndarray: ...

    def fit(self, images: np.ndarray, groups: np.ndarray) -> Self:
        feats = self._features(check_images(images))
        k = min(self.n_components, feats.shape[0], feats.shape[1])
        self.pca_ = PCA(n_components=k, random_state=self.random_state).fit(feats)
        return self

    def _encode(self, images: np.ndarray) -> np.ndarray:
        return np.asarray(self.pca_.transform(self._features(images)), dtype=np.float32)


class PixelPCAEncoder(_PCAEncoder):
    """Raw pixels scaled to [0, 1], flattened, PCA-reduced (whitening off)."""

    def _features(self, images: np.ndarray) -> np.ndarray:
        return images.reshape(len(images), -1).astype(np.float32) / 255.0


class ColorHistogramEncoder(_PCAEncoder):
    """Joint RGB histogram with ``bins`` per channel, square-rooted (Hellinger), PCA-reduced."""

    def __init__(self, bins: int = 8, n_components: int = 64, random_state: int = 0) -> None:
        super().__init__(n_components, random_state)
        self.bins = bins

    def _features(self, images: np.ndarray) -> np.ndarray:
        q = (images.astype(np.int64) * self.bins) // 256  # (N, S, S, 3) in [0, bins)
        code = (q[..., 0] * self.bins + q[..., 1]) * self.bins + q[..., 2]
        flat = code.reshape(len(images), -1)
        n_bins = self.bins**3
        offsets = (np.arange(len(images)) * n_bins)[:, None]
        counts = np.bincount((flat + offsets).ravel(), minlength=len(images) * n_bins)
        hist = counts.reshape(len(images), n_bins).astype(np.float32) / flat.shape[1]
        return np.sqrt(hist)


def _conv_block(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU()
    )


class ConvNet(nn.Module):
    """Three conv stages and a linear head: ``(B, 3, S, S) -> (B, dim)`` (not normalised)."""

    def __init__(self, width: int = 32, dim: int = 64) -> None:
        super().__init__()
        self.features = nn.Sequential(
            _conv_block(3, width),
            nn.MaxPool2d(2),  # S/2
            _conv_block(width, 2 * width),
            nn.MaxPool2d(2),  # S/4
            _conv_block(2 * width, 4 * width),
            _conv_block(4 * width, 4 * width),
            nn.AdaptiveAvgPool2d(1),  # (B, 4w, 1, 1)
        )
        self.head = nn.Linear(4 * width, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).flatten(1))  # (B, dim)


def to_tensor(images: np.ndarray) -> torch.Tensor:
    """uint8 ``(N, S, S, 3)`` → float ``(N, 3, S, S)`` centred on zero."""
    return torch.from_numpy(images).permute(0, 3, 1, 2).float().div(255.0).sub(0.5)


class CNNEncoder(ImageEncoder):
    """A small CNN; trained with InfoNCE when ``train_steps > 0``, random weights otherwise."""

    def __init__(
        self,
        dim: int = 64,
        width: int = 16,
        train_steps: int = 300,
        batch_size: int = 128,
        lr: float = 3e-3,
        temperature: float = 0.1,
        num_threads: int = 1,
        random_state: int = 0,
    ) -> None:
        self.embedding_dim = dim
        self.width = width
        self.train_steps = train_steps
        self.batch_size = batch_size
        self.lr = lr
        self.temperature = temperature
        self.num_threads = num_threads
        self.random_state = random_state

    @property
    def dim(self) -> int:
        return self.embedding_dim

    def fit(self, images: np.ndarray, groups: np.ndarray) -> Self:
        from mlsd.systems.visual_search.contrastive import train_info_nce

        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.random_state)
            self.net_ = ConvNet(self.width, self.embedding_dim)
        self.history_: list[float] = []
        if self.train_steps > 0:
            self.history_ = train_info_nce(
                self.net_,
                check_images(images),
                np.asarray(groups),
                steps=self.train_steps,
                batch_size=self.batch_size,
                lr=self.lr,
                temperature=self.temperature,
                seed=self.random_state,
                num_threads=self.num_threads,
            )
        self.net_.eval()
        return self

    def _encode(self, images: np.ndarray) -> np.ndarray:
        with torch_threads(self.num_threads), torch.inference_mode():
            return self.net_(to_tensor(images)).numpy()

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        if "net_" in state:
            state["net_"] = state["net_"].state_dict()
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        weights = state.pop("net_", None)
        self.__dict__.update(state)
        if weights is not None:
            self.net_ = ConvNet(self.width, self.embedding_dim)
            self.net_.load_state_dict(weights)
            self.net_.eval()


def candidate_encoders(
    seed: int, train_steps: int, batch_size: int, num_threads: int, dim: int = 64
) -> dict[str, ImageEncoder]:
    """The chapter's line-up, baselines first; the last one is the contrastive model."""
    return {
        "raw_pixels_pca": PixelPCAEncoder(n_components=dim, random_state=seed),
        "color_histogram_pca": ColorHistogramEncoder(n_components=dim, random_state=seed),
        "untrained_cnn": CNNEncoder(dim=dim, train_steps=0, num_threads=num_threads,
                                    random_state=seed),
        "contrastive_cnn": CNNEncoder(dim=dim, train_steps=train_steps, batch_size=batch_size,
                                      num_threads=num_threads, random_state=seed),
    }  # fmt: skip
