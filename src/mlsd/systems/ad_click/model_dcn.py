"""Ad click prediction, step 4: DCN-v2, the deep & cross network of the chapter.

The chapter's point: clicks depend on *interactions* (this user segment x this ad category), and
a linear model sees only the crosses it is handed. DCN-v2 (Wang et al. 2021, "DCN V2: Improved
Deep & Cross Network") learns explicit crosses with a cross network next to a plain MLP:

    FeatureEmbedding -> x0                 # (B, F*D + n_dense)
    CrossNetworkV2:  x_{l+1} = x0 * (W_l x_l + b_l) + x_l
    DeepTower:       ReLU MLP with dropout
    logit head       stacked (cross then deep) or parallel (both, concatenated)
"""

from __future__ import annotations

import logging
import math
from typing import Literal, Self

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

    def forward(self, cat: torch.Tensor, dense: torch.Tensor) -> torch.Tensor:
        # cat: (B, F) bucket ids; dense: (B, n_dense) raw values
        parts = [table(cat[:, f]) for f, table in enumerate(self.tables)]  # F x (B, D)
        scaled = torch.nan_to_num((dense - self.dense_mean) / self.dense_std)  # (B, n_dense)
        return torch.cat([*parts, scaled], dim=1)  # (B, F*D + n_dense)


class CrossNetworkV2(nn.Module):
    """DCN-v2's cross layers: ``x_{l+1} = x0 * (W_l x_l + b_l) + x_l`` (full-rank ``W_l``)."""

    def __init__(self, dim: int, n_layers: int) -> None:
        super().__init__()
        self.layers = nn.ModuleList(nn.Linear(dim, dim) for _ in range(n_layers))

    def forward(self, x0: torch.Tensor) -> torch.Tensor:
        x = x0  # (B, d)
        for layer in self.layers:
            x = x0 * layer(x) + x  # (B, d): each layer raises the degree of the crosses by one
        return x


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


class DCNv2Network(nn.Module):
    """Embedding -> cross network and deep tower (stacked or parallel) -> one logit per row."""

    def __init__(
        self,
        n_fields: int,
        n_buckets: int,
        embedding_dim: int,
        n_dense: int,
        n_cross_layers: int,
        deep_layers: tuple[int, ...],
        dropout: float,
        structure: Literal["stacked", "parallel"],
    ) -> None:
        super().__init__()
        self.structure = structure
        self.embedding = FeatureEmbedding(n_fields, n_buckets, embedding_dim, n_dense)
        d = self.embedding.output_dim
        self.cross = CrossNetworkV2(d, n_cross_layers)
        self.deep = DeepTower(d, deep_layers, dropout)
        head_in = self.deep.output_dim if structure == "stacked" else d + self.deep.output_dim
        self.head = nn.Linear(head_in, 1)

    def forward(self, cat: torch.Tensor, dense: torch.Tensor) -> torch.Tensor:
        x0 = self.embedding(cat, dense)  # (B, F*D + n_dense)
        if self.structure == "stacked":
            h = self.deep(self.cross(x0))  # (B, H)
        else:
            h = torch.cat([self.cross(x0), self.deep(x0)], dim=1)  # (B, d + H)
        return self.head(h).squeeze(1)  # (B,) logits


def init_weights(network: nn.Module, generator: torch.Generator) -> None:
    """Initialise every weight from ``generator`` (never torch's global RNG): embeddings
    ``N(0, 0.1²)``; linear layers as torch's default (Kaiming-uniform weights, uniform biases)."""
    with torch.no_grad():
        for module in network.modules():
            if isinstance(module, nn.Embedding):
                nn.init.normal_(module.weight, std=0.1, generator=generator)
            elif isinstance(module, nn.Linear):
                nn.init.kaiming_uniform_(module.weight, a=math.sqrt(5), generator=generator)
                bound = 1.0 / math.sqrt(module.in_features) if module.in_features else 0.0
                nn.init.uniform_(module.bias, -bound, bound, generator=generator)


class DCNv2(ClickEstimator):
    """DCN-v2 under the estimator contract, trained with BCE via ``mlsd.training.fit_torch``.

    Categorical ids are taken ``mod field_buckets`` into one table per field; dense columns are
    standardized with statistics learned in ``fit``. A seeded 10% of the training rows is held
    out for early stopping. The initial weights, the hold-out and the training loop's seed come
    from named random streams of ``random_state`` (:mod:`mlsd.rng`), never from torch's global
    RNG. ``history_`` keeps the per-epoch losses for the blueprint. Prediction runs under
    ``torch.inference_mode()`` with the caller's torch thread setting.
    """

    def __init__(
        self,
        embedding_dim: int = 8,
        n_cross_layers: int = 2,
        deep_layers: tuple[int, ...] = (128, 64),
        field_buckets: int = 2**16,
        epochs: int = 6,
        batch_size: int = 1024,
        lr: float = 2e-3,
        weight_decay: float = 1e-6,
        random_state: int = 0,
        num_threads: int = 2,
        dropout: float = 0.1,
        structure: Literal["stacked", "parallel"] = "stacked",
        patience: int = 2,
    ) -> None:
        self.embedding_dim = embedding_dim
        self.n_cross_layers = n_cross_layers
        self.deep_layers = deep_layers
        self.field_buckets = field_buckets
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.random_state = random_state
        self.num_threads = num_threads
        self.dropout = dropout
        self.structure = structure
        self.patience = patience

    def _tensors(self, X: pd.DataFrame) -> tuple[torch.Tensor, torch.Tensor]:
        check_feature_frame(X)
        missing = [c for c in (*self.categorical_, *self.dense_) if c not in X.columns]
        if missing:
            raise ValueError(f"DCNv2: feature frame lacks columns {missing}")
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
        if self.structure not in ("stacked", "parallel"):
            raise ValueError(
                f"DCNv2: structure must be 'stacked' or 'parallel', not {self.structure!r}"
            )
        self.categorical_ = categorical_columns(X)
        self.dense_ = dense_columns(X)
        if not self.categorical_ and not self.dense_:
            raise ValueError("DCNv2: the frame has no d_* or c_* columns")
        cat, dense = self._tensors(X)
        target = torch.from_numpy(labels.astype(np.float32))

        n = len(labels)
        holdout = rng(self.random_state, "ad-click/dcn/validation-split")
        order = torch.from_numpy(holdout.permutation(n))
        n_val = round(0.1 * n) if n >= 20 else 0
        val_idx, train_idx = order[:n_val], order[n_val:]
        val = ([cat[val_idx], dense[val_idx]], target[val_idx]) if n_val > 0 else None

        # built inside fork_rng so that torch's default initialisation leaves the caller's global
        # RNG untouched; init_weights then draws every weight from the model's own stream
        with torch_threads(self.num_threads), torch.random.fork_rng(devices=[]):
            network = self._network()
            init_weights(network, torch_generator(self.random_state, "ad-click/dcn/init"))
            # start the head at the log-odds of the base rate: with early stopping after one or
            # two epochs, a head starting at p = 0.5 leaves the mean prediction biased
            rate = float(np.clip(labels[train_idx.numpy()].mean(), 1e-4, 1 - 1e-4))
            with torch.no_grad():
                network.head.bias.fill_(float(np.log(rate / (1.0 - rate))))
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
                seed=seed_of(self.random_state, "ad-click/dcn/training"),
                val=val,
                patience=self.patience,
            )
        logger.info(
            "DCNv2: %d epochs, best epoch %d, %.0f examples/s",
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

    def _network(self) -> DCNv2Network:
        """The network of this model's sizes (``categorical_`` and ``dense_`` set), untrained."""
        return DCNv2Network(
            n_fields=len(self.categorical_),
            n_buckets=self.field_buckets,
            embedding_dim=self.embedding_dim,
            n_dense=len(self.dense_),
            n_cross_layers=self.n_cross_layers,
            deep_layers=tuple(self.deep_layers),
            dropout=self.dropout,
            structure=self.structure,
        )

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
