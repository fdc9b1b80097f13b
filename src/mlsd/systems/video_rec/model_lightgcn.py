"""LightGCN: graph convolution stripped to neighbourhood averaging (He et al., "LightGCN:
Simplifying and Powering Graph Convolution Network for Recommendation", SIGIR 2020), in PyTorch.

Users and videos are the nodes of one bipartite graph, an edge per watched pair. Every node has
a free embedding ``E⁰``; a layer averages the neighbours' embeddings through the symmetrically
normalised adjacency ``Â = D^{-1/2} A D^{-1/2}`` (no weights, no non-linearity):
``E^{k+1} = Â E^k``; a node's final embedding is the mean of its layers ``E⁰ … E^L``, and
``score(u, v) = e_u · e_v``. Training is BPR on (user, watched, sampled unwatched) triples with
an L2 penalty on the ego embeddings of the batch. The final embeddings are saved as arrays;
a user outside the fit is folded in as one propagation step from its history (the normalised
sum of the watched videos' final embeddings).

Seeded from named streams (initial embeddings, shuffling and negative samples all come from
:func:`mlsd.rng.torch_generator`), on ``num_threads`` torch threads.
"""

from __future__ import annotations

import logging
import time
from typing import Any, ClassVar, Self

import numpy as np
import torch
from scipy import sparse
from torch import nn

from mlsd.model_io import register_model
from mlsd.rng import torch_generator
from mlsd.systems.video_rec.model_cf import CFSource, interactions
from mlsd.training import torch_threads

log = logging.getLogger(__name__)


def normalised_adjacency(x: sparse.csr_matrix) -> sparse.csr_matrix:
    """``D^{-1/2} A D^{-1/2}`` of the bipartite graph of ``x`` (users × items): a symmetric
    ``(users + items, users + items)`` float32 matrix, users first, then items."""
    a = sparse.bmat([[None, x], [x.T, None]], format="csr", dtype=np.float32)
    deg = np.asarray(a.sum(axis=1)).ravel()
    inv = np.zeros_like(deg)
    inv[deg > 0] = deg[deg > 0] ** -0.5
    d = sparse.diags(inv.astype(np.float32))
    return sparse.csr_matrix(d @ a @ d, dtype=np.float32)


class Propagate(torch.autograd.Function):
    """``Â @ E`` with SciPy's sparse product (faster on CPU than torch's sparse backward here);
    ``Â`` is symmetric, so the gradient is ``Â @ grad`` too."""

    @staticmethod
    def forward(ctx: Any, e: torch.Tensor, adj: sparse.csr_matrix) -> torch.Tensor:
        ctx.adj = adj
        return torch.from_numpy(np.asarray(adj @ e.detach().numpy(), np.float32))

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        return torch.from_numpy(np.asarray(ctx.adj @ grad.numpy(), np.float32)), None


class LightGcn(nn.Module):
    """Ego embeddings ``E⁰`` (nodes, dim) and ``layers`` rounds of ``Â`` averaging."""

    def __init__(self, n_nodes: int, dim: int, layers: int) -> None:
        super().__init__()
        self.ego = nn.Embedding(n_nodes, dim)
        self.layers = layers

    def forward(self, adj: sparse.csr_matrix) -> torch.Tensor:
        e = self.ego.weight  # (nodes, dim)
        total = e
        for _ in range(self.layers):
            e = Propagate.apply(e, adj)  # (nodes, dim): each node's neighbours, averaged
            total = total + e
        return total / (self.layers + 1)  # (nodes, dim): the mean over layers 0..L


def sample_negatives(
    x: sparse.csr_matrix, users: np.ndarray, generator: torch.Generator, tries: int = 3
) -> np.ndarray:
    """One uniformly drawn video per user that the user did not watch (redrawn up to
    ``tries`` times; a dense user may keep a watched one, a negligible bias)."""
    n_items = x.shape[1]
    coo = x.tocoo()
    watched = np.sort(coo.row.astype(np.int64) * n_items + coo.col)  # (pairs,) sorted keys

    def draw(n: int) -> np.ndarray:
        return torch.randint(0, n_items, (n,), generator=generator).numpy().astype(np.int64)

    neg = draw(len(users))
    for _ in range(tries):
        keys = users * n_items + neg
        pos = np.minimum(np.searchsorted(watched, keys), len(watched) - 1)
        hit = watched[pos] == keys
        if not hit.any():
            break
        neg[hit] = draw(int(hit.sum()))
    return neg


@register_model
class LightGcnSource(CFSource):
    """LightGCN's final user and video embeddings; score = their dot product."""

    NAME = "LightGCN"
    ARRAYS: ClassVar[tuple[str, ...]] = ("user_emb_", "item_emb_")

    def __init__(
        self,
        dim: int = 64,
        layers: int = 3,
        l2: float = 1e-4,
        epochs: int = 50,
        batch_size: int = 4096,
        lr: float = 1e-2,
        num_threads: int = 2,
        seed: int = 0,
    ) -> None:
        self.dim = dim
        self.layers = layers
        self.l2 = l2
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.num_threads = num_threads
        self.seed = seed

    @property
    def n_items_(self) -> int:
        return int(self.item_emb_.shape[0])

    @property
    def n_users_(self) -> int:
        return int(self.user_emb_.shape[0])

    def fit(self, user: np.ndarray, video: np.ndarray, click: np.ndarray, n_videos: int) -> Self:
        x = interactions(user, video, click, n_videos, self.NAME)
        if self.layers < 0 or self.dim < 1:
            raise ValueError(
                f"{self.NAME}: layers >= 0 and dim >= 1, got {self.layers}, {self.dim}"
            )
        t0 = time.perf_counter()
        with torch_threads(self.num_threads):
            final, self.losses_ = self._train(x)
        self.user_emb_ = final[: x.shape[0]]
        self.item_emb_ = final[x.shape[0] :]
        self.train_seconds_ = time.perf_counter() - t0
        return self

    def _train(self, x: sparse.csr_matrix) -> tuple[np.ndarray, list[float]]:
        n_users, n_items = x.shape
        adj = normalised_adjacency(x)
        net = LightGcn(n_users + n_items, self.dim, self.layers)
        nn.init.normal_(
            net.ego.weight, std=0.1, generator=torch_generator(self.seed, "video-rec/lightgcn/init")
        )
        gen = torch_generator(self.seed, "video-rec/lightgcn/train")
        opt = torch.optim.Adam(net.parameters(), lr=self.lr)
        coo = x.tocoo()
        pu, pi = coo.row.astype(np.int64), coo.col.astype(np.int64)
        losses = []
        for _ in range(self.epochs):
            perm = torch.randperm(len(pu), generator=gen).numpy()
            neg = sample_negatives(x, pu[perm], gen)
            total = 0.0
            for s in range(0, len(perm), self.batch_size):
                b = perm[s : s + self.batch_size]
                u = torch.from_numpy(pu[b])  # (batch,)
                i = torch.from_numpy(pi[b] + n_users)  # (batch,) node ids of the watched videos
                j = torch.from_numpy(neg[s : s + self.batch_size] + n_users)  # (batch,) unwatched
                e = net(adj)  # (nodes, dim)
                eu, ei, ej = e[u], e[i], e[j]  # (batch, dim) each
                bpr = -nn.functional.logsigmoid((eu * ei).sum(1) - (eu * ej).sum(1)).mean()
                ego = net.ego.weight
                reg = 0.5 * (ego[u].pow(2) + ego[i].pow(2) + ego[j].pow(2)).sum() / len(b)
                loss = bpr + self.l2 * reg
                opt.zero_grad()
                loss.backward()  # type: ignore[no-untyped-call]
                opt.step()
                total += float(loss.detach()) * len(b)
            losses.append(total / len(pu))
        with torch.no_grad():
            final = net(adj).numpy().astype(np.float32)  # (nodes, dim)
        return final, losses

    def _known_scores(self, users: np.ndarray) -> np.ndarray:
        return np.asarray(self.user_emb_[users] @ self.item_emb_.T, np.float32)

    def _history_scores(self, hx: sparse.csr_matrix) -> np.ndarray:
        n = np.sqrt(np.asarray(hx.sum(axis=1)).ravel())
        n[n == 0] = 1.0
        eu = np.asarray(sparse.diags(1.0 / n) @ hx @ self.item_emb_)  # (rows, dim)
        return np.asarray(eu @ self.item_emb_.T, np.float32)
