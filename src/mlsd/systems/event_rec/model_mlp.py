"""The small neural ranker: an MLP on the standardised dense features, P(register) pointwise.

Trained with BCE through :func:`mlsd.training.fit_torch` (the one PyTorch loop), early stopping on
a seeded tenth of the rows; the weights are drawn from a named generator and saved as a state
dict (:mod:`mlsd.model_io`).
"""

from __future__ import annotations

from typing import Any, Self

import numpy as np
import pandas as pd
import torch
from torch import nn

from mlsd.models import ClickEstimator, as_proba, check_training_data, dense_columns
from mlsd.rng import rng, seed_of, torch_generator
from mlsd.training import fit_torch, torch_threads

_PREDICT_BATCH = 65536


class MLPNetwork(nn.Module):
    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, n_in: int, hidden: tuple[int, ...]) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        width = n_in
        for h in hidden:
            layers += [nn.Linear(width, h), nn.ReLU()]
            width = h
        layers.append(nn.Linear(width, 1))
        self.body = nn.Sequential(*layers)
        self.register_buffer("mean", torch.zeros(n_in))
        self.register_buffer("std", torch.ones(n_in))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.body((x - self.mean) / self.std).squeeze(-1)
        return out


class EventMLP(ClickEstimator):
    """A two-layer MLP over the ``d_*`` columns (no ids), trained pointwise with BCE."""

    def __init__(
        self,
        hidden: tuple[int, ...] = (64, 32),
        epochs: int = 8,
        batch_size: int = 1024,
        lr: float = 2e-3,
        random_state: int = 0,
        num_threads: int = 1,
    ) -> None:
        self.hidden = hidden
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.random_state = random_state
        self.num_threads = num_threads

    def _x(self, X: pd.DataFrame) -> torch.Tensor:
        missing = [c for c in self.columns_ if c not in X.columns]
        if missing:
            raise ValueError(f"EventMLP: feature frame lacks columns {missing}")
        return torch.from_numpy(np.nan_to_num(X[self.columns_].to_numpy(np.float32)))

    def _network(self) -> MLPNetwork:
        return MLPNetwork(len(self.columns_), tuple(self.hidden))

    def fit(self, X: pd.DataFrame, y: np.ndarray) -> Self:
        labels = check_training_data(X, y)
        self.columns_ = dense_columns(X)
        x = self._x(X)
        target = torch.from_numpy(labels.astype(np.float32))
        n = len(labels)
        order = torch.from_numpy(rng(self.random_state, "event-rec/mlp/holdout").permutation(n))
        n_val = round(0.1 * n) if n >= 20 else 0
        val_idx, train_idx = order[:n_val], order[n_val:]
        with torch_threads(self.num_threads), torch.random.fork_rng(devices=[]):
            gen = torch_generator(self.random_state, "event-rec/mlp/init")
            net = self._network()
            with torch.no_grad():
                for p in net.body.parameters():
                    p.copy_(torch.randn(p.shape, generator=gen) * (0.1 if p.ndim > 1 else 0.0))
                xt = x[train_idx].double()
                net.mean.copy_(xt.mean(dim=0).float())
                std = xt.std(dim=0).float()
                net.std.copy_(torch.where(std > 1e-9, std, torch.ones_like(std)))
            self.history_ = fit_torch(
                net,
                [x[train_idx]],
                target[train_idx],
                loss_fn=nn.BCEWithLogitsLoss(),
                epochs=self.epochs,
                batch_size=self.batch_size,
                lr=self.lr,
                seed=seed_of(self.random_state, "event-rec/mlp/training"),
                val=([x[val_idx]], target[val_idx]) if n_val > 0 else None,
            )
        self.network_ = net
        self.classes_ = np.array([0, 1])
        return self

    def _empty_module(self, name: str) -> Any:
        if name != "network_":
            return super()._empty_module(name)
        with torch.device("meta"):
            return self._network()

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        x = self._x(X)
        out = np.empty(len(x), np.float64)
        self.network_.eval()
        with torch_threads(self.num_threads), torch.inference_mode():
            for start in range(0, len(x), _PREDICT_BATCH):
                logits = self.network_(x[start : start + _PREDICT_BATCH])
                out[start : start + len(logits)] = torch.sigmoid(logits).double().numpy()
        return as_proba(out)
