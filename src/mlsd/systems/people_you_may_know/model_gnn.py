"""Step 4, the graph neural network: GraphSAGE-style link prediction (PyTorch, full batch).

Each user's node features are what the platform knows (log degree, log friendships of the last
week, account age, age, and hashed embeddings of school, employer and city; unknown = bucket 0).
Two GraphSAGE layers with mean aggregation over the snapshot's friendships turn them into node
embeddings ``h``; a pair ``(u, v)`` is scored by a small MLP on the Hadamard product
``h_u ⊙ h_v`` and the standardised pair features (the chapter's edge features). The whole graph
is embedded at every step (full batch: the small world's 50k nodes and 1M directed edges take
milliseconds); training pairs are the time split's, in shuffled mini-batches through
:func:`mlsd.training.train_loop`.

The model is inductive: it embeds whatever snapshot it is given (:meth:`GraphSAGELink.score`),
so the same weights score the test snapshot and the serving day's graph. Embeddings are cached
per snapshot (``Snapshot.cache``), never saved.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from typing import Any, Self, cast

import numpy as np
import pandas as pd
import torch
from sklearn.base import BaseEstimator
from torch import nn

from mlsd.model_io import SavedAsData
from mlsd.models import dense_columns
from mlsd.rng import seed_of, torch_generator
from mlsd.systems.people_you_may_know.features import Snapshot
from mlsd.systems.people_you_may_know.world import GROUPS
from mlsd.training import Batch, train_loop

N_DENSE = 5
GROUP_DIM = 8


class _Sage(nn.Module):
    def __init__(self, buckets: int, dim: int, n_pair: int) -> None:
        super().__init__()
        self.groups = nn.ModuleList(nn.Embedding(buckets + 1, GROUP_DIM) for _ in GROUPS)
        d_in = N_DENSE + GROUP_DIM * len(GROUPS)
        self.l1 = nn.Linear(2 * d_in, dim)
        self.l2 = nn.Linear(2 * dim, dim)
        self.head = nn.Sequential(nn.Linear(dim + n_pair, 32), nn.ReLU(), nn.Linear(32, 1))

    def embed(self, dense: torch.Tensor, groups: torch.Tensor, adj: torch.Tensor) -> torch.Tensor:
        x = torch.cat([dense, *(e(groups[:, k]) for k, e in enumerate(self.groups))], dim=1)
        h = torch.relu(self.l1(torch.cat([x, torch.sparse.mm(adj, x)], dim=1)))
        return cast(torch.Tensor, self.l2(torch.cat([h, torch.sparse.mm(adj, h)], dim=1)))

    def pair_logit(
        self, h: torch.Tensor, u: torch.Tensor, v: torch.Tensor, pf: torch.Tensor
    ) -> torch.Tensor:
        return cast(torch.Tensor, self.head(torch.cat([h[u] * h[v], pf], dim=1)).squeeze(-1))


def _init_weights(net: nn.Module, generator: torch.Generator) -> None:
    for m in net.modules():
        if isinstance(m, nn.Embedding):
            nn.init.normal_(m.weight, std=0.1, generator=generator)
        elif isinstance(m, nn.Linear):
            nn.init.kaiming_uniform_(m.weight, a=math.sqrt(5), generator=generator)
            bound = 1.0 / math.sqrt(m.in_features) if m.in_features > 0 else 0.0
            nn.init.uniform_(m.bias, -bound, bound, generator=generator)


def graph_tensors(snap: Snapshot, buckets: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Node features, group bucket ids and the mean-aggregation matrix ``D⁻¹A`` of ``snap``."""
    us = snap.users
    join = us["join_day"].to_numpy()
    dense = np.column_stack(
        [
            np.log1p(snap.deg),
            np.log1p(snap.recent),
            np.clip(snap.day - join, 0, None) / 30.0,
            us["age"].to_numpy() / 50.0,
            (us["school"].to_numpy() >= 0).astype(np.float64),
        ]
    ).astype(np.float32)
    groups = np.column_stack(
        [np.where(us[k].to_numpy() >= 0, us[k].to_numpy() % buckets + 1, 0) for k in GROUPS]
    )
    coo = snap.adj.tocoo()
    w = 1.0 / np.maximum(snap.deg[coo.row], 1.0)
    adj = torch.sparse_coo_tensor(
        torch.tensor(np.vstack([coo.row, coo.col]).astype(np.int64)),
        torch.tensor(w.astype(np.float32)),
        size=snap.adj.shape,
        check_invariants=False,  # built from a valid CSR matrix
    ).coalesce()
    return torch.tensor(dense), torch.tensor(groups.astype(np.int64)), adj


class GraphSAGELink(SavedAsData, BaseEstimator):  # type: ignore[misc]
    """GraphSAGE node embeddings + an MLP on ``h_u ⊙ h_v`` and the pair features."""

    def __init__(
        self,
        dim: int = 32,
        buckets: int = 2048,
        epochs: int = 4,
        batch_size: int = 4096,
        lr: float = 5e-3,
        num_threads: int = 1,
        seed: int = 0,
    ) -> None:
        self.dim = dim
        self.buckets = buckets
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.num_threads = num_threads
        self.seed = seed

    def _pair_matrix(self, X: pd.DataFrame) -> torch.Tensor:
        m = X[self.columns_].to_numpy(dtype=np.float64)
        return torch.tensor(((m - self.mean_) / self.scale_).astype(np.float32))

    def fit(
        self, snap: Snapshot, u: np.ndarray, v: np.ndarray, X: pd.DataFrame, y: np.ndarray
    ) -> Self:
        """Train on the pairs ``(u, v)`` of ``snap`` with features ``X`` and labels ``y``."""
        t0 = time.perf_counter()
        self.columns_ = dense_columns(X)
        m = X[self.columns_].to_numpy(dtype=np.float64)
        self.mean_ = m.mean(axis=0)
        std = m.std(axis=0)
        self.scale_ = np.where(std > 0, std, 1.0)
        with torch.device("meta"):
            net = _Sage(self.buckets, self.dim, len(self.columns_))
        net = net.to_empty(device="cpu")
        _init_weights(net, torch_generator(self.seed, "pymk/gnn/init"))
        self.net_ = net
        dense, groups, adj = graph_tensors(snap, self.buckets)
        tu, tv = torch.tensor(np.asarray(u, np.int64)), torch.tensor(np.asarray(v, np.int64))
        pf = self._pair_matrix(X)
        ty = torch.tensor(np.asarray(y, np.float32))
        n, size = len(ty), self.batch_size
        pos_weight = torch.tensor(float((len(ty) - ty.sum()) / max(float(ty.sum()), 1.0)))
        bce = nn.BCEWithLogitsLoss(pos_weight=pos_weight.sqrt())

        def batches(epoch: int, generator: torch.Generator) -> Iterator[Batch]:
            order = torch.randperm(n, generator=generator)
            for s in range(0, n, size):
                idx = order[s : s + size]
                yield (tu[idx], tv[idx], pf[idx], ty[idx])

        def loss(module: nn.Module, batch: Batch) -> torch.Tensor:
            net_ = cast(_Sage, module)
            h = net_.embed(dense, groups, adj)
            return cast(
                torch.Tensor, bce(net_.pair_logit(h, batch[0], batch[1], batch[2]), batch[3])
            )

        history = train_loop(
            net,
            batches,
            loss,
            epochs=self.epochs,
            lr=self.lr,
            seed=seed_of(self.seed, "pymk/gnn/train"),
            num_threads=self.num_threads,
        )
        self.train_loss_ = [float(x) for x in history.train_loss]  # plain data, saved with it
        self.train_seconds_ = time.perf_counter() - t0
        return self

    def embeddings(self, snap: Snapshot) -> torch.Tensor:
        """The node embeddings of ``snap`` (cached on the snapshot, per model)."""
        key = f"gnn/{id(self.net_)}"
        hit = snap.cache.get(key)
        if hit is None or hit[0] is not self.net_:  # the entry holds its net: ids never collide
            dense, groups, adj = graph_tensors(snap, self.buckets)
            with torch.no_grad():
                snap.cache[key] = (self.net_, self.net_.embed(dense, groups, adj))
        return cast(torch.Tensor, snap.cache[key][1])

    def score(self, snap: Snapshot, u: np.ndarray, v: np.ndarray, X: pd.DataFrame) -> np.ndarray:
        """P(friends) of the pairs ``(u, v)`` of ``snap`` with features ``X``."""
        if len(X) == 0:
            return np.zeros(0, np.float64)
        h = self.embeddings(snap)
        pf = self._pair_matrix(X)
        tu, tv = torch.tensor(np.asarray(u, np.int64)), torch.tensor(np.asarray(v, np.int64))
        with torch.no_grad():
            logit = self.net_.pair_logit(h, tu, tv, pf)
        return cast(np.ndarray, torch.sigmoid(logit).numpy().astype(np.float64))

    def _empty_module(self, name: str) -> nn.Module:
        if name != "net_":
            return cast(nn.Module, super()._empty_module(name))
        with torch.device("meta"):
            return _Sage(self.buckets, self.dim, len(self.columns_))


def describe(model: GraphSAGELink) -> dict[str, Any]:
    return {
        "epochs": len(model.train_loss_),
        "train_loss": [round(x, 5) for x in model.train_loss_],
    }
