"""Ad click prediction, step 4: factorization machines and DeepFM, the chapter's other two.

The chapter names both beside DCN: a **factorization machine** (Rendle 2010) models every
pairwise interaction of fields through the dot product of their embeddings, so a pair never seen
together still gets a weight; **DeepFM** (Guo et al. 2017) adds a deep tower on the same
embeddings, for higher-order interactions, and sums the two logits:

    FeatureEmbedding -> v                      # (B, F, D) field embeddings, dense part scaled
    first order:   bias + Σ_f w_f[c_f] + w_dense · dense
    FM:            ½ Σ_d ((Σ_f v_fd)² − Σ_f v_fd²)   # all pairwise <v_i, v_j> in O(F·D)
    DeepFM:        FM logit + DeepTower(concat(v, dense)) -> linear

The estimator around the networks (training, hold-out, calibration) is :mod:`.model_deep`'s.
"""

from __future__ import annotations

import torch
from torch import nn

from mlsd.systems.ad_click.model_deep import (
    ClickNetwork,
    DeepClickModel,
    DeepTower,
    FeatureEmbedding,
)
from mlsd.tuning import Param, choice, real


class FirstOrder(nn.Module):
    """The linear part of an FM: one weight per (field, bucket) and one per dense feature."""

    def __init__(self, n_fields: int, n_buckets: int, n_dense: int) -> None:
        super().__init__()
        self.weights = nn.ModuleList(
            nn.Embedding(n_buckets, 1, sparse=True) for _ in range(n_fields)
        )
        self.dense = nn.Linear(n_dense, 1, bias=False) if n_dense else None  # none on id-only files

    def forward(self, cat: torch.Tensor, scaled_dense: torch.Tensor) -> torch.Tensor:
        # cat: (B, F); scaled_dense: (B, n_dense) -> (B,)
        out = torch.zeros(len(cat))  # (B,)
        if self.dense is not None:
            out = out + self.dense(scaled_dense).squeeze(1)
        for f, table in enumerate(self.weights):
            out = out + table(cat[:, f]).squeeze(1)
        return out


def pairwise_interactions(v: torch.Tensor) -> torch.Tensor:
    """``Σ_{i<j} <v_i, v_j>`` per row of ``v`` (B, F, D), in O(F·D) (Rendle's identity)."""
    square_of_sum = v.sum(dim=1) ** 2  # (B, D)
    sum_of_squares = (v**2).sum(dim=1)  # (B, D)
    return 0.5 * (square_of_sum - sum_of_squares).sum(dim=1)  # (B,)


class FMNetwork(ClickNetwork):
    """A factorization machine over the categorical fields, with a first-order dense part."""

    def __init__(self, n_fields: int, n_buckets: int, embedding_dim: int, n_dense: int) -> None:
        super().__init__()
        self.embedding = FeatureEmbedding(n_fields, n_buckets, embedding_dim, n_dense)
        self.first = FirstOrder(n_fields, n_buckets, n_dense)
        self.bias = nn.Parameter(torch.zeros(1))

    def fm_logit(self, cat: torch.Tensor, dense: torch.Tensor) -> torch.Tensor:
        scaled = self.embedding.scaled(dense)  # (B, n_dense)
        first = self.bias + self.first(cat, scaled)  # (B,)
        fields = self.embedding.fields(cat)  # F x (B, D)
        if not fields:
            return first
        return first + pairwise_interactions(torch.stack(fields, dim=1))  # (B,)

    def forward(self, cat: torch.Tensor, dense: torch.Tensor) -> torch.Tensor:
        return self.fm_logit(cat, dense)  # (B,) logits

    def start_at(self, logit: float) -> None:
        self.bias.fill_(logit)


class DeepFMNetwork(FMNetwork):
    """DeepFM: the FM's logit plus a deep tower's over the same embeddings (shared)."""

    def __init__(
        self,
        n_fields: int,
        n_buckets: int,
        embedding_dim: int,
        n_dense: int,
        deep_layers: tuple[int, ...],
        dropout: float,
    ) -> None:
        super().__init__(n_fields, n_buckets, embedding_dim, n_dense)
        self.deep = DeepTower(self.embedding.output_dim, deep_layers, dropout)
        self.deep_head = nn.Linear(self.deep.output_dim, 1)

    def forward(self, cat: torch.Tensor, dense: torch.Tensor) -> torch.Tensor:
        deep = self.deep_head(self.deep(self.embedding(cat, dense))).squeeze(1)  # (B,)
        return self.fm_logit(cat, dense) + deep  # (B,) logits

    def start_at(self, logit: float) -> None:
        self.bias.fill_(logit)
        self.deep_head.bias.zero_()


# What the tuner searches (mlsd.tuning), kept small: the step size, the L2 on the weights, the
# embedding width; DeepFM adds the tower's shape and dropout.
FM_SPACE: tuple[Param, ...] = (
    real("lr", 5e-4, 1e-2, log=True),
    real("weight_decay", 1e-8, 1e-4, log=True),
    choice("embedding_dim", (4, 8, 16)),
    choice("epochs", (6, 15)),  # a cap: early stopping on a hold-out of the training rows
)
DEEPFM_SPACE: tuple[Param, ...] = (
    *FM_SPACE,
    choice("deep_layers", ((64,), (128, 64), (256, 128))),
    real("dropout", 0.0, 0.3),
)


class FM(DeepClickModel):
    """A factorization machine under the estimator contract (see
    :class:`~.model_deep.DeepClickModel`)."""

    name = "FM"
    stream = "fm"

    def __init__(
        self,
        embedding_dim: int = 8,
        field_buckets: int = 2**16,
        epochs: int = 6,
        batch_size: int = 1024,
        lr: float = 2e-3,
        weight_decay: float = 1e-6,
        random_state: int = 0,
        num_threads: int = 2,
        patience: int = 2,
    ) -> None:
        self.embedding_dim = embedding_dim
        self.field_buckets = field_buckets
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.random_state = random_state
        self.num_threads = num_threads
        self.patience = patience

    def _network(self) -> FMNetwork:
        return FMNetwork(
            len(self.categorical_), self.field_buckets, self.embedding_dim, len(self.dense_)
        )


class DeepFM(DeepClickModel):
    """DeepFM under the estimator contract (see :class:`~.model_deep.DeepClickModel`)."""

    name = "DeepFM"
    stream = "deepfm"

    def __init__(
        self,
        embedding_dim: int = 8,
        deep_layers: tuple[int, ...] = (128, 64),
        field_buckets: int = 2**16,
        epochs: int = 6,
        batch_size: int = 1024,
        lr: float = 2e-3,
        weight_decay: float = 1e-6,
        random_state: int = 0,
        num_threads: int = 2,
        dropout: float = 0.1,
        patience: int = 2,
    ) -> None:
        self.embedding_dim = embedding_dim
        self.deep_layers = deep_layers
        self.field_buckets = field_buckets
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.random_state = random_state
        self.num_threads = num_threads
        self.dropout = dropout
        self.patience = patience

    def _network(self) -> DeepFMNetwork:
        return DeepFMNetwork(
            len(self.categorical_),
            self.field_buckets,
            self.embedding_dim,
            len(self.dense_),
            tuple(self.deep_layers),
            self.dropout,
        )
