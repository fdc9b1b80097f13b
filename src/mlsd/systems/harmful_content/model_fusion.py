"""The fusion networks: one shared trunk with a head per harm class (multi-task), or one small
network per class (single-task), over any concatenation of representations (early fusion), with
the class imbalance handled by re-weighting positives or by the focal loss.

:class:`MultiLabelNet` is the module (``n_nets`` trunks: 1 for multi-task, one per class for
single-task); :class:`HarmClassifier` is the estimator around it, trained with the one PyTorch
loop (:func:`mlsd.training.fit_torch`), early stopping on a seeded tenth of the training rows.
"""

from __future__ import annotations

from typing import Any, Self

import numpy as np
import torch
from scipy.special import expit
from sklearn.base import BaseEstimator
from torch import nn

from mlsd.model_io import SavedAsData, register_value_class
from mlsd.rng import rng, seed_of, torch_generator
from mlsd.training import TrainHistory, fit_torch, torch_threads

register_value_class(TrainHistory)  # ``history_`` saves as data with the model

LOSSES = ("bce", "weighted", "focal")
MODES = ("multi_task", "single_task")
_BATCH = 65536


def check_labels(X: np.ndarray, Y: np.ndarray) -> np.ndarray:
    """``Y`` as an int ``(n, C)`` 0/1 array with as many rows as ``X``; ValueError naming the
    first bad row otherwise."""
    y = np.asarray(Y)
    if y.ndim != 2 or len(y) != len(X):
        raise ValueError(f"labels must be (n, classes) with n = {len(X)}, got shape {y.shape}")
    bad = ~np.isin(y, (0, 1))
    if bad.any():
        row = int(np.flatnonzero(bad.any(axis=1))[0])
        raise ValueError(f"labels must be 0/1; row {row} holds {y[row].tolist()}")
    return y.astype(np.int64)


class MultiLabelNet(nn.Module):
    """``x`` (n, d) -> logits (n, C). Multi-task: one trunk, C heads; single-task: C trunks."""

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(
        self, n_in: int, hidden: tuple[int, ...], n_classes: int, n_nets: int, wide: bool = False
    ) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(n_in))
        self.register_buffer("std", torch.ones(n_in))
        outs = n_classes if n_nets == 1 else 1
        self.nets = nn.ModuleList(self._net(n_in, hidden, outs) for _ in range(n_nets))
        # wide & deep (Cheng et al. 2016): a linear path from every input to every head, so the
        # few positives' main effects need no hidden unit; the trunk adds the interactions
        self.wide = nn.Linear(n_in, n_classes, bias=False) if wide else None
        if self.wide is not None:  # starts as the trunk alone (deterministic, whoever builds it)
            nn.init.zeros_(self.wide.weight)

    @staticmethod
    def _net(n_in: int, hidden: tuple[int, ...], n_out: int) -> nn.Sequential:
        layers: list[nn.Module] = []
        width = n_in
        for h in hidden:  # the shared trunk: (n, width) -> (n, h)
            layers += [nn.Linear(width, h), nn.ReLU(), nn.Dropout(0.1)]
            width = h
        layers.append(nn.Linear(width, n_out))  # the heads: (n, h) -> (n, n_out)
        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = (x - self.mean) / self.std
        out = torch.cat([net(z) for net in self.nets], dim=1)  # (n, C)
        return out if self.wide is None else out + self.wide(z)


def focal_loss(logits: torch.Tensor, target: torch.Tensor, gamma: float = 2.0) -> torch.Tensor:
    """The focal loss (Lin et al. 2017) with alpha 0.5: BCE scaled by ``(1 - p_t)^gamma``."""
    bce = nn.functional.binary_cross_entropy_with_logits(logits, target, reduction="none")
    p_t = torch.exp(-bce)
    return ((1 - p_t) ** gamma * bce).mean()


class HarmClassifier(SavedAsData, BaseEstimator):  # type: ignore[misc]
    """Multi-label probabilities ``(n, C)`` from a float feature matrix ``(n, d)``."""

    def __init__(
        self,
        mode: str = "multi_task",
        loss: str = "weighted",
        hidden: tuple[int, ...] = (128, 64),
        epochs: int = 12,
        batch_size: int = 256,
        lr: float = 1e-3,
        weight_decay: float = 1e-5,
        random_state: int = 0,
        num_threads: int = 1,
        wide: bool = False,
    ) -> None:
        self.mode = mode
        self.loss = loss
        self.hidden = hidden
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.random_state = random_state
        self.num_threads = num_threads
        self.wide = wide

    def _network(self) -> MultiLabelNet:
        n_nets = 1 if self.mode == "multi_task" else self.n_classes_
        return MultiLabelNet(self.n_in_, tuple(self.hidden), self.n_classes_, n_nets, self.wide)

    def _loss_fn(self, y: np.ndarray) -> Any:
        if self.loss == "focal":
            return focal_loss
        if self.loss == "weighted":
            pos = y.sum(axis=0).astype(np.float64)
            w = np.sqrt(np.maximum(len(y) - pos, 1.0) / np.maximum(pos, 1.0))
            pos_weight = torch.from_numpy(np.clip(w, 1.0, 50.0).astype(np.float32))
            return nn.BCEWithLogitsLoss(pos_weight=pos_weight)
        return nn.BCEWithLogitsLoss()

    def fit(self, X: np.ndarray, Y: np.ndarray) -> Self:
        if self.mode not in MODES or self.loss not in LOSSES:
            raise ValueError(f"mode must be one of {MODES} and loss one of {LOSSES}")
        x = torch.from_numpy(np.nan_to_num(np.asarray(X, np.float32)))
        y = check_labels(X, Y)
        self.n_in_, self.n_classes_ = int(x.shape[1]), int(y.shape[1])
        target = torch.from_numpy(y.astype(np.float32))
        n = len(y)
        order = torch.from_numpy(
            rng(self.random_state, "harmful-content/fusion/holdout").permutation(n)
        )
        n_val = round(0.1 * n) if n >= 50 else 0
        val_idx, train_idx = order[:n_val], order[n_val:]
        with torch_threads(self.num_threads), torch.random.fork_rng(devices=[]):
            gen = torch_generator(self.random_state, "harmful-content/fusion/init")
            net = self._network()
            with torch.no_grad():
                for p in net.nets.parameters():
                    scale = (2.0 / p.shape[1]) ** 0.5 if p.ndim > 1 else 0.0
                    p.copy_(torch.randn(p.shape, generator=gen) * scale)
                xt = x[train_idx].double()
                net.mean.copy_(xt.mean(dim=0).float())
                std = xt.std(dim=0).float() if len(train_idx) > 1 else torch.ones(self.n_in_)
                net.std.copy_(torch.where(std > 1e-6, std, torch.ones_like(std)))
            self.history_ = fit_torch(
                net,
                [x[train_idx]],
                target[train_idx],
                loss_fn=self._loss_fn(y[train_idx.numpy()]),
                epochs=self.epochs,
                batch_size=self.batch_size,
                lr=self.lr,
                weight_decay=self.weight_decay,
                seed=seed_of(self.random_state, "harmful-content/fusion/training"),
                val=([x[val_idx]], target[val_idx]) if n_val > 0 else None,
            )
        self.network_ = net
        return self

    def _empty_module(self, name: str) -> Any:
        if name != "network_":
            return super()._empty_module(name)
        with torch.device("meta"):
            return self._network()

    def predict_logits(self, X: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(np.nan_to_num(np.asarray(X, np.float32)))
        if x.ndim != 2 or x.shape[1] != self.n_in_:
            raise ValueError(f"expected (n, {self.n_in_}) features, got {tuple(x.shape)}")
        out = np.empty((len(x), self.n_classes_), np.float64)
        self.network_.eval()
        with torch_threads(self.num_threads), torch.inference_mode():
            for start in range(0, len(x), _BATCH):
                logits = self.network_(x[start : start + _BATCH])
                out[start : start + len(logits)] = logits.double().numpy()
        return out

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        return np.asarray(expit(self.predict_logits(X)))

    @property
    def n_parameters(self) -> int:
        return int(sum(p.numel() for p in self.network_.parameters()))
