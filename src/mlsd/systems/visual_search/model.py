"""Step 4 for visual search: image encoders under one contract (book ch. 2, "Model development").

Every encoder maps uint8 RGB images ``(N, S, S, 3)`` to L2-normalised float32 embeddings
``(N, D)``, so cosine similarity is an inner product and one FAISS ``IndexFlatIP`` serves them
all. scikit-learn style (they are ``BaseEstimator`` s, so ``get_params`` and ``clone`` work):
``__init__`` stores arguments only, learned state ends in ``_``, ``fit(images, groups)`` returns
self (``groups``: the product, or class, of each image), and ``save`` / ``load`` write and read
a directory of data (the PCA as arrays, the CNN's weights as a state dict; :mod:`mlsd.model_io`).

* :class:`PixelPCAEncoder`: raw pixels, PCA-reduced: the dumbest baseline.
* :class:`ColorHistogramEncoder`: a joint RGB histogram (Hellinger-normalised), PCA-reduced.
* :class:`CNNEncoder`: a small convolutional network; ``train_steps=0`` is the untrained
  (randomly initialised) baseline, otherwise it is trained contrastively
  (:mod:`mlsd.systems.visual_search.model_contrastive`).

:func:`contract_cases` puts all of them under the contract of :mod:`mlsd.contracts`.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from typing import Any, Self

import numpy as np
import torch
from sklearn.base import BaseEstimator
from sklearn.decomposition import PCA

from mlsd.contracts import ModelCase
from mlsd.model_io import SavedAsData
from mlsd.rng import seed_of, torch_generator
from mlsd.systems.visual_search.features import check_images, to_tensor
from mlsd.systems.visual_search.model_contrastive import (
    POLICIES,
    empty_convnet,
    new_convnet,
    policy_for,
    train_info_nce,
)
from mlsd.systems.visual_search.world import VisualSearchWorld, VisualWorldConfig
from mlsd.training import torch_threads
from mlsd.world import Scale

log = logging.getLogger(__name__)

CONTRASTIVE = "contrastive_cnn"  # the learned encoder; every other one is a baseline


def l2_normalise(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (zero rows stay zero), as float32."""
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return np.ascontiguousarray(x / np.maximum(norms, 1e-12), dtype=np.float32)


class ImageEncoder(SavedAsData, BaseEstimator, ABC):
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


class CNNEncoder(ImageEncoder):
    """A small CNN; trained with InfoNCE when ``train_steps > 0``, random weights otherwise.

    ``augmentation``: ``"photo"``, ``"grey"`` (small grey images) or ``"auto"`` (grey when every
    training image is). The weights are drawn from the named stream ``cnn/init`` of
    ``random_state`` and training from ``random_state`` too, so an untrained and a trained
    encoder of one ``random_state`` start from the same network.
    """

    def __init__(
        self,
        dim: int = 64,
        width: int = 16,
        train_steps: int = 300,
        batch_size: int = 128,
        lr: float = 3e-3,
        temperature: float = 0.1,
        num_threads: int = 1,
        augmentation: str = "auto",
        random_state: int = 0,
    ) -> None:
        self.embedding_dim = dim
        self.width = width
        self.train_steps = train_steps
        self.batch_size = batch_size
        self.lr = lr
        self.temperature = temperature
        self.num_threads = num_threads
        self.augmentation = augmentation
        self.random_state = random_state

    @property
    def dim(self) -> int:
        return self.embedding_dim

    def fit(self, images: np.ndarray, groups: np.ndarray) -> Self:
        if self.augmentation != "auto" and self.augmentation not in POLICIES:
            raise ValueError(
                f"augmentation must be 'auto' or one of {sorted(POLICIES)}, got "
                f"{self.augmentation!r}"
            )
        images = check_images(images)
        generator = torch_generator(self.random_state, "cnn/init")
        self.net_ = new_convnet(self.width, self.embedding_dim, generator)
        self.history_: list[float] = []
        auto = self.augmentation == "auto"
        self.augmentation_ = policy_for(images) if auto else self.augmentation
        if self.train_steps > 0:
            history = train_info_nce(
                self.net_,
                images,
                np.asarray(groups),
                steps=self.train_steps,
                batch_size=self.batch_size,
                lr=self.lr,
                temperature=self.temperature,
                seed=self.random_state,
                num_threads=self.num_threads,
                policy=POLICIES[self.augmentation_],
            )
            self.history_ = list(history.step_loss)
        self.net_.eval()
        return self

    def _encode(self, images: np.ndarray) -> np.ndarray:
        with torch_threads(self.num_threads), torch.inference_mode():
            return self.net_(to_tensor(images)).numpy()

    def _empty_module(self, name: str) -> Any:
        """For :mod:`mlsd.model_io`: the network, empty, to load the saved state dict into."""
        if name != "net_":
            return super()._empty_module(name)
        return empty_convnet(self.width, self.embedding_dim)


def candidate_encoders(
    seed: int, train_steps: int, batch_size: int, num_threads: int, dim: int = 64
) -> dict[str, ImageEncoder]:
    """The chapter's line-up, baselines first; the last one is the contrastive model. Both
    CNNs share one ``random_state``: the untrained one is where the trained one started."""
    pca_seed, cnn_seed = seed_of(seed, "models/pca"), seed_of(seed, "models/cnn")
    return {
        "raw_pixels_pca": PixelPCAEncoder(n_components=dim, random_state=pca_seed),
        "color_histogram_pca": ColorHistogramEncoder(n_components=dim, random_state=pca_seed),
        "untrained_cnn": CNNEncoder(
            dim=dim, train_steps=0, num_threads=num_threads, random_state=cnn_seed
        ),
        CONTRASTIVE: CNNEncoder(
            dim=dim,
            train_steps=train_steps,
            batch_size=batch_size,
            num_threads=num_threads,
            random_state=cnn_seed,
        ),
    }


# ---- the contract -------------------------------------------------------------------------
ContractData = tuple[np.ndarray, np.ndarray]


def contract_images() -> ContractData:
    """48 tiny seeded photos of 12 products (4 each) and their product ids."""
    cfg = VisualWorldConfig.for_scale(Scale.TINY).with_(
        n_train_products=12, n_eval_products=2, photos_per_product=4
    )
    world = VisualSearchWorld(Scale.TINY, 0, cfg)
    pids, idx = world.catalog("train")
    return world.photos(pids, idx), pids


def _encoder_case(name: str, make: Any) -> ModelCase:
    def fit(model: ImageEncoder, data: ContractData) -> Any:
        return model.fit(data[0], data[1])

    return ModelCase(
        name=name,
        kind="encoder",
        make=make,
        data=contract_images,
        fit=fit,
        output=lambda m, d: m.encode(d[0], batch_size=7),
        shape=lambda m, d: (len(d[0]), m.dim),
        save=lambda m, path: m.save(path),
        load=ImageEncoder.load,
        atol=1e-5,
    )


def contract_cases() -> list[ModelCase]:
    """Every encoder of the line-up under the one contract, at tiny sizes."""
    return [
        _encoder_case(
            "raw_pixels_pca", lambda seed: PixelPCAEncoder(n_components=8, random_state=seed)
        ),
        _encoder_case(
            "color_histogram_pca",
            lambda seed: ColorHistogramEncoder(bins=4, n_components=8, random_state=seed),
        ),
        _encoder_case(
            "untrained_cnn",
            lambda seed: CNNEncoder(dim=8, width=4, train_steps=0, random_state=seed),
        ),
        _encoder_case(
            CONTRASTIVE,
            lambda seed: CNNEncoder(dim=8, width=4, train_steps=3, batch_size=8, random_state=seed),
        ),
    ]
