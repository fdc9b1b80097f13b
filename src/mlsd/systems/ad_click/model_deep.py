"""Ad click prediction, step 4: what the deep click models share (DCN-v2, FM, DeepFM).

The parts every embedding model of the chapter is built from, and the estimator around them:

    FeatureEmbedding   one table per categorical field + the standardized dense part
    DeepTower          ReLU MLP with dropout (implicit interactions)
    DeepClickModel     the estimator contract: fields -> tensors, a seeded hold-out for early
                       stopping, training through ``mlsd.training.fit_torch``, Platt scaling on
                       the hold-out, prediction under ``torch.inference_mode()``

Each architecture (:mod:`.model_dcn`, :mod:`.model_fm`) names its network in ``_network()``.
"""

from __future__ import annotations

import logging
import math
from typing import Self

import numpy as np
import pandas as pd
import torch
from sklearn.linear_model import LogisticRegression
from torch import nn

from mlsd.model_io import register_value_class
from mlsd.models import (
    ClickEstimator,
    as_proba,
    categorical_columns,
    check_feature_frame,
    check_training_data,
    dense_columns,
)
from mlsd.rng import rng, seed_of, torch_generator
from mlsd.training import TrainHistory, fit_torch, torch_threads

logger = logging.getLogger(__name__)

_PREDICT_BATCH = 65_536
register_value_class(TrainHistory)  # ``history_`` saves as data with the model


class FeatureEmbedding(nn.Module):
    """One embedding table per categorical field, concatenated with the standardized dense part."""

    dense_mean: torch.Tensor
    dense_std: torch.Tensor

    def __init__(self, n_fields: int, n_buckets: int, dim: int, n_dense: int) -> None:
        super().__init__()
        # sparse gradients: an optimizer step touches only the rows in the batch
        tables = [nn.Embedding(n_buckets, dim, sparse=True) for _ in range(n_fields)]
        self.tables = nn.ModuleList(tables)
        self.register_buffer("dense_mean", torch.zeros(n_dense))
        self.register_buffer("dense_std", torch.ones(n_dense))
        self.output_dim = n_fields * dim + n_dense

    def fields(self, cat: torch.Tensor) -> list[torch.Tensor]:
        # cat: (B, F) bucket ids -> F x (B, D)
        return [table(cat[:, f]) for f, table in enumerate(self.tables)]

    def scaled(self, dense: torch.Tensor) -> torch.Tensor:
        # dense: (B, n_dense) raw values -> standardized, missing as the mean
        return torch.nan_to_num((dense - self.dense_mean) / self.dense_std)

    def forward(self, cat: torch.Tensor, dense: torch.Tensor) -> torch.Tensor:
        return torch.cat([*self.fields(cat), self.scaled(dense)], dim=1)  # (B, F*D + n_dense)


class DeepTower(nn.Module):
    """The deep part: a ReLU MLP with dropout (implicit, unstructured interactions)."""

    def __init__(self, in_dim: int, hidden: tuple[int, ...], dropout: float) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for width in hidden:
            layers += [nn.Linear(in_dim, width), nn.ReLU(), nn.Dropout(dropout)]
            in_dim = width
        self.mlp = nn.Sequential(*layers)
        self.output_dim = in_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mlp(x)  # (B, hidden[-1]) or (B, in_dim) when there are no hidden layers


def init_weights(network: nn.Module, generator: torch.Generator) -> None:
    """Initialise every weight from ``generator`` (never torch's global RNG): embeddings
    ``N(0, 0.1²)``; linear layers as torch's default (Kaiming-uniform weights, uniform biases)."""
    with torch.no_grad():
        for module in network.modules():
            if isinstance(module, nn.Embedding):
                nn.init.normal_(module.weight, std=0.1, generator=generator)
            elif isinstance(module, nn.Linear):
                nn.init.kaiming_uniform_(module.weight, a=math.sqrt(5), generator=generator)
                if module.bias is not None:
                    bound = 1.0 / math.sqrt(module.in_features) if module.in_features else 0.0
                    nn.init.uniform_(module.bias, -bound, bound, generator=generator)


class ClickNetwork(nn.Module):
    """What :class:`DeepClickModel` needs of a network: the embedding (its dense statistics are
    set in ``fit``) and a bias to start at the base rate; ``forward(cat, dense)`` gives logits."""

    embedding: FeatureEmbedding

    def start_at(self, logit: float) -> None:
        raise NotImplementedError


class DeepClickModel(ClickEstimator):
    """An embedding click model under the estimator contract, trained with BCE via
    ``mlsd.training.fit_torch``; a subclass names its network (``_network``), its label
    (``name``) and its random streams (``stream``).

    Categorical ids are taken ``mod field_buckets`` into one table per field; dense columns are
    standardized with statistics learned in ``fit``. A seeded 10% of the training rows is held
    out for early stopping. The initial weights, the hold-out and the training loop's seed come
    from named random streams of ``random_state`` (:mod:`mlsd.rng`), never from torch's global
    RNG. ``history_`` keeps the per-epoch losses for the blueprint. Prediction runs under
    ``torch.inference_mode()`` with the caller's torch thread setting.
    """

    name = "deep click model"
    stream = "deep"  # ad-click/<stream>/<purpose>: the model's named random streams

    # set by subclasses' __init__ (the estimator contract keeps parameters as attributes)
    field_buckets: int
    epochs: int
    batch_size: int
    lr: float
    weight_decay: float
    random_state: int
    num_threads: int
    patience: int

    def _network(self) -> ClickNetwork:
        """The network of this model's sizes (``categorical_`` and ``dense_`` set), untrained."""
        raise NotImplementedError

    def _check_params(self) -> None:
        """Raise ValueError for a parameter no network can be built from."""

    def _tensors(self, X: pd.DataFrame) -> tuple[torch.Tensor, torch.Tensor]:
        check_feature_frame(X)
        missing = [c for c in (*self.categorical_, *self.dense_) if c not in X.columns]
        if missing:
            raise ValueError(f"{self.name}: feature frame lacks columns {missing}")
        n = len(X)
        # one column at a time: cheaper than a list selection of the frame on the serving path
        cat = np.zeros((n, len(self.categorical_)), dtype=np.int64)  # (n, fields)
        for j, c in enumerate(self.categorical_):
            cat[:, j] = X[c].to_numpy(dtype=np.int64) % self.field_buckets
        dense = np.zeros((n, len(self.dense_)), dtype=np.float32)  # (n, dense features)
        for j, c in enumerate(self.dense_):
            dense[:, j] = X[c].to_numpy(dtype=np.float32)
        return torch.from_numpy(cat), torch.from_numpy(dense)

    def fit(self, X: pd.DataFrame, y: np.ndarray) -> Self:
        labels = check_training_data(X, y)
        self._check_params()
        self.categorical_ = categorical_columns(X)
        self.dense_ = dense_columns(X)
        if not self.categorical_ and not self.dense_:
            raise ValueError(f"{self.name}: the frame has no d_* or c_* columns")
        cat, dense = self._tensors(X)
        target = torch.from_numpy(labels.astype(np.float32))

        n = len(labels)
        holdout = rng(self.random_state, f"ad-click/{self.stream}/validation-split")
        order = torch.from_numpy(holdout.permutation(n))
        n_val = round(0.1 * n) if n >= 20 else 0
        val_idx, train_idx = order[:n_val], order[n_val:]
        val = ([cat[val_idx], dense[val_idx]], target[val_idx]) if n_val > 0 else None

        # built inside fork_rng so that torch's default initialisation leaves the caller's global
        # RNG untouched; init_weights then draws every weight from the model's own stream
        with torch_threads(self.num_threads), torch.random.fork_rng(devices=[]):
            network = self._network()
            init_weights(
                network, torch_generator(self.random_state, f"ad-click/{self.stream}/init")
            )
            # start the head at the log-odds of the base rate: with early stopping after one or
            # two epochs, a head starting at p = 0.5 leaves the mean prediction biased
            rate = float(np.clip(labels[train_idx.numpy()].mean(), 1e-4, 1 - 1e-4))
            with torch.no_grad():
                network.start_at(float(np.log(rate / (1.0 - rate))))
            train_dense = dense[train_idx].double()
            if self.dense_:
                mean = torch.nanmean(train_dense, dim=0)
                std = torch.sqrt(torch.nanmean((train_dense - mean) ** 2, dim=0))
                network.embedding.dense_mean.copy_(torch.nan_to_num(mean).float())
                network.embedding.dense_std.copy_(
                    torch.where(torch.nan_to_num(std) > 1e-12, torch.nan_to_num(std), 1.0).float()
                )
            self.history_: TrainHistory = fit_torch(
                network,
                [cat[train_idx], dense[train_idx]],
                target[train_idx],
                loss_fn=nn.BCEWithLogitsLoss(),
                epochs=self.epochs,
                batch_size=self.batch_size,
                lr=self.lr,
                weight_decay=self.weight_decay,
                seed=seed_of(self.random_state, f"ad-click/{self.stream}/training"),
                val=val,
                patience=self.patience,
            )
        logger.info(
            "%s: %d epochs, best epoch %d, %.0f examples/s",
            self.name,
            self.history_.epochs_run,
            self.history_.best_epoch,
            float(np.mean(self.history_.examples_per_second)),
        )
        self.network_ = network
        self.classes_ = np.array([0, 1])
        self.platt_ = (1.0, 0.0)
        if val is not None and 0 < float(val[1].sum()) < len(val[1]):
            # Early stopping leaves the mean prediction wherever the best epoch happened to be;
            # Platt scaling on the held-out split (Platt 1999) puts it back on the training
            # distribution, so a wrapper's downsampling correction stays exact.
            logits = self._logits(*val[0])
            platt = LogisticRegression(C=1e4).fit(logits[:, None], val[1].numpy())
            self.platt_ = (float(platt.coef_[0, 0]), float(platt.intercept_[0]))
        return self

    def _empty_module(self, name: str) -> nn.Module:
        """For :mod:`mlsd.model_io`: the network, built on the meta device (no weights drawn),
        to load the saved state dict into."""
        if name != "network_":
            return super()._empty_module(name)
        with torch.device("meta"):
            return self._network()

    def _logits(self, cat: torch.Tensor, dense: torch.Tensor) -> np.ndarray:
        out = np.empty(len(cat), dtype=np.float64)
        self.network_.eval()
        with torch.inference_mode():
            for start in range(0, len(cat), _PREDICT_BATCH):
                stop = start + _PREDICT_BATCH
                out[start:stop] = self.network_(cat[start:stop], dense[start:stop]).double().numpy()
        return out

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        a, b = self.platt_
        return as_proba(1.0 / (1.0 + np.exp(-(a * self._logits(*self._tensors(X)) + b))))
