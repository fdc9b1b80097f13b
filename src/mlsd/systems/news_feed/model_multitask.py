"""The chapter's multi-task network: a shared bottom and one head per reaction.

Input: the standardised dense features and one embedding per hashed categorical (topic, media,
hashtag, age bucket, country). The shared bottom (two ReLU layers) learns one representation of
the (user, post) pair for every task; each head is a small ReLU layer and an output: a logit for
each of the six binary reactions and ``log(1 + dwell seconds)`` for dwell time. The loss is the
sum of the six binary cross-entropies and ``dwell_weight`` times the dwell head's squared error,
so the rare reactions (comment, share, block) learn from the representation the frequent ones
(click, like) shape. Expected dwell seconds are ``expm1`` of the dwell head times a smearing factor
fitted on the training rows (the mean of a log-normal is above ``expm1`` of its log mean).

Trained through :func:`mlsd.training.train_loop` (the one PyTorch loop) with early stopping on a
seeded tenth of the rows; weights from a named generator, saved as a state dict.
"""

from __future__ import annotations

from typing import Any, Self

import numpy as np
import pandas as pd
import torch
from sklearn.base import BaseEstimator
from torch import nn

from mlsd.model_io import SavedAsData, register_value_class
from mlsd.models import categorical_columns, check_feature_frame, dense_columns
from mlsd.rng import rng, seed_of, torch_generator
from mlsd.systems.news_feed.world_config import BINARY_HEADS, HEADS
from mlsd.training import TrainHistory, shuffled_batches, torch_threads, train_loop

N_BINARY = len(BINARY_HEADS)
register_value_class(TrainHistory)  # ``history_`` saves as data with the model
_PREDICT_BATCH = 65536


class MultiTaskNetwork(nn.Module):
    """dense (B, D) + categorical codes (B, C) -> (B, 7): six reaction logits, log1p dwell."""

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(
        self,
        n_dense: int,
        n_cat: int,
        buckets: int,
        embed_dim: int,
        hidden: tuple[int, ...],
        head: int,
    ) -> None:
        super().__init__()
        self.buckets = buckets
        self.embeddings = nn.ModuleList(nn.Embedding(buckets, embed_dim) for _ in range(n_cat))
        layers: list[nn.Module] = []
        width = n_dense + n_cat * embed_dim
        for h in hidden:
            layers += [nn.Linear(width, h), nn.ReLU()]
            width = h
        self.shared = nn.Sequential(*layers)  # (B, D + C*E) -> (B, hidden[-1])
        self.heads = nn.ModuleList(
            nn.Sequential(nn.Linear(width, head), nn.ReLU(), nn.Linear(head, 1)) for _ in HEADS
        )  # each (B, hidden[-1]) -> (B, 1)
        self.register_buffer("mean", torch.zeros(n_dense))
        self.register_buffer("std", torch.ones(n_dense))

    def forward(self, dense: torch.Tensor, cats: torch.Tensor) -> torch.Tensor:
        parts = [(dense - self.mean) / self.std]
        parts += [emb(cats[:, j] % self.buckets) for j, emb in enumerate(self.embeddings)]
        shared = self.shared(torch.cat(parts, dim=1))  # (B, hidden[-1])
        return torch.cat([h(shared) for h in self.heads], dim=1)  # (B, 7)


class MultiTaskRanker(SavedAsData, BaseEstimator):  # type: ignore[misc]
    """Shared-bottom multi-task model: ``predict_heads(X)`` -> ``(n, 7)`` reaction
    probabilities and expected dwell seconds (:data:`HEADS` order)."""

    def __init__(
        self,
        hidden: tuple[int, ...] = (128, 64),
        head: int = 32,
        embed_dim: int = 8,
        buckets: int = 1024,
        dwell_weight: float = 0.5,
        epochs: int = 8,
        batch_size: int = 256,
        lr: float = 2e-3,
        random_state: int = 0,
        num_threads: int = 1,
    ) -> None:
        self.hidden = hidden
        self.head = head
        self.embed_dim = embed_dim
        self.buckets = buckets
        self.dwell_weight = dwell_weight
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.random_state = random_state
        self.num_threads = num_threads

    def _network(self) -> MultiTaskNetwork:
        return MultiTaskNetwork(
            len(self.dense_),
            len(self.cats_),
            self.buckets,
            self.embed_dim,
            tuple(self.hidden),
            self.head,
        )

    def _tensors(self, X: pd.DataFrame) -> tuple[torch.Tensor, torch.Tensor]:
        missing = [c for c in (*self.dense_, *self.cats_) if c not in X.columns]
        if missing:
            raise ValueError(f"MultiTaskRanker: feature frame lacks columns {missing}")
        dense = torch.from_numpy(np.nan_to_num(X[self.dense_].to_numpy(np.float32)))
        cats = torch.from_numpy(
            np.array(X[self.cats_].to_numpy(np.int64).reshape(len(X), len(self.cats_)))
        )
        return dense, cats

    def fit(self, X: pd.DataFrame, Y: np.ndarray) -> Self:
        check_feature_frame(X)
        Y = np.asarray(Y, np.float64)
        if Y.shape != (len(X), len(HEADS)):
            raise ValueError(f"Y must be (n, {len(HEADS)}) in HEADS order, got {Y.shape}")
        if len(X) == 0:
            raise ValueError("cannot fit on an empty feature frame (X has 0 rows)")
        self.dense_, self.cats_ = dense_columns(X), categorical_columns(X)
        dense, cats = self._tensors(X)
        target = torch.from_numpy(
            np.c_[Y[:, :N_BINARY], np.log1p(Y[:, N_BINARY])].astype(np.float32)
        )
        n = len(X)
        order = torch.from_numpy(
            rng(self.random_state, "news-feed/multitask/holdout").permutation(n)
        )
        n_val = round(0.1 * n) if n >= 20 else 0
        val, train = order[:n_val], order[n_val:]
        bce = nn.BCEWithLogitsLoss()

        def loss(m: nn.Module, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
            out, y = m(batch[0], batch[1]), batch[2]
            binary = sum(bce(out[:, j], y[:, j]) for j in range(N_BINARY))
            dwell = ((out[:, N_BINARY] - y[:, N_BINARY]) ** 2).mean()
            return binary + self.dwell_weight * dwell  # type: ignore[no-any-return]

        with torch_threads(self.num_threads), torch.random.fork_rng(devices=[]):
            gen = torch_generator(self.random_state, "news-feed/multitask/init")
            net = self._network()
            with torch.no_grad():
                for p in net.parameters():
                    scale = p.shape[1] ** -0.5 if p.ndim > 1 else 0.0
                    p.copy_(torch.randn(p.shape, generator=gen) * scale)
                mean = dense[train].double().mean(dim=0)
                std = dense[train].double().std(dim=0)
                net.mean.copy_(mean.float())
                net.std.copy_(torch.where(std > 1e-9, std, torch.ones_like(std)).float())

            def val_loss(m: nn.Module) -> float:
                m.eval()
                with torch.no_grad():
                    return float(loss(m, (dense[val], cats[val], target[val])))

            self.history_ = train_loop(
                net,
                shuffled_batches([dense[train], cats[train], target[train]], self.batch_size),
                loss,
                epochs=self.epochs,
                lr=self.lr,
                seed=seed_of(self.random_state, "news-feed/multitask/training"),
                val_loss=val_loss if n_val > 0 else None,
            )
        self.network_ = net
        raw = self._raw(X)
        self.dwell_smearing_ = float(
            Y[:, N_BINARY].mean() / max(np.expm1(raw[:, N_BINARY]).mean(), 1e-9)
        )
        return self

    def _empty_module(self, name: str) -> Any:
        if name != "network_":
            return super()._empty_module(name)
        with torch.device("meta"):
            return self._network()

    def _raw(self, X: pd.DataFrame) -> np.ndarray:
        dense, cats = self._tensors(X)
        out = np.empty((len(X), len(HEADS)), np.float64)
        self.network_.eval()
        with torch_threads(self.num_threads), torch.inference_mode():
            for start in range(0, len(X), _PREDICT_BATCH):
                end = start + _PREDICT_BATCH
                out[start : start + len(dense[start:end])] = (
                    self.network_(dense[start:end], cats[start:end]).double().numpy()
                )
        return out

    def predict_heads(self, X: pd.DataFrame) -> np.ndarray:
        raw = self._raw(X)
        probs = 1.0 / (1.0 + np.exp(-raw[:, :N_BINARY]))
        dwell = np.maximum(np.expm1(raw[:, N_BINARY]), 0.0) * self.dwell_smearing_
        return np.column_stack([probs, dwell])
