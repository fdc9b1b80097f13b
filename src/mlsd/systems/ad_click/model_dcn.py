"""Ad click prediction, step 4: DCN-v2, the deep & cross network of the chapter.

The chapter's point: clicks depend on *interactions* (this user segment x this ad category), and
a linear model sees only the crosses it is handed. DCN-v2 (Wang et al. 2021, "DCN V2: Improved
Deep & Cross Network") learns explicit crosses with a cross network next to a plain MLP:

    FeatureEmbedding -> x0                 # (B, F*D + n_dense)
    CrossNetworkV2:  x_{l+1} = x0 * (W_l x_l + b_l) + x_l
    DeepTower:       ReLU MLP with dropout
    logit head       stacked (cross then deep) or parallel (both, concatenated)

The estimator around the network (training, hold-out, calibration) is :mod:`.model_deep`'s.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from mlsd.systems.ad_click.model_deep import (
    ClickNetwork,
    DeepClickModel,
    DeepTower,
    FeatureEmbedding,
)
from mlsd.tuning import Param, choice, integer, real


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


class DCNv2Network(ClickNetwork):
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

    def start_at(self, logit: float) -> None:
        self.head.bias.fill_(logit)


# What the tuner searches (mlsd.tuning), kept small: step size, L2, embedding width, the number
# of cross layers (the degree of the explicit crosses) and the deep tower's shape.
DCN_SPACE: tuple[Param, ...] = (
    real("lr", 5e-4, 1e-2, log=True),
    real("weight_decay", 1e-8, 1e-4, log=True),
    choice("embedding_dim", (4, 8, 16)),
    choice("epochs", (6, 15)),  # a cap: early stopping on a hold-out of the training rows
    integer("n_cross_layers", 1, 3),
    choice("deep_layers", ((64,), (128, 64), (256, 128))),
)


class DCNv2(DeepClickModel):
    """DCN-v2 under the estimator contract (see :class:`~.model_deep.DeepClickModel`)."""

    name = "DCNv2"
    stream = "dcn"

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

    def _check_params(self) -> None:
        if self.structure not in ("stacked", "parallel"):
            raise ValueError(
                f"DCNv2: structure must be 'stacked' or 'parallel', not {self.structure!r}"
            )

    def _network(self) -> DCNv2Network:
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
