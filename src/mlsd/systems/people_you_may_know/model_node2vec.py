"""Step 4, node embeddings: random-walk skip-gram (DeepWalk, node2vec with p = q = 1).

Uniform random walks over a snapshot's friendships (vectorised over every start node), then a
skip-gram with negative sampling trained through :func:`mlsd.training.train_loop` (sparse
embedding tables, SparseAdam). A pair's edge features are the **Hadamard product** of the two
users' embeddings, ``e_u ⊙ e_v`` (``d_n2v_h0..``; Grover & Leskovec 2016 found it the best of
their edge operators), with their cosine, next to the pair features (LightGBM).

The embeddings are *transductive*: they exist for the nodes of the snapshot they were fitted on,
and two fits live in different coordinates, which a Hadamard feature is not invariant to. So the
model keeps the training snapshot's embeddings as its reference (``ref_``); on any other
snapshot it fits the embeddings afresh (no labels involved: legitimate at any day, cached per
snapshot) and rotates them onto the reference by orthogonal Procrustes over the nodes both
know (:func:`align`), so a coordinate means the same thing at training and at scoring time.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Self, cast

import numpy as np
import pandas as pd
import torch
from sklearn.base import BaseEstimator
from torch import nn

from mlsd.model_io import SavedAsData
from mlsd.models import LightGBMClick
from mlsd.rng import rng, seed_of
from mlsd.systems.people_you_may_know.features import Snapshot
from mlsd.training import Batch, train_loop

COLUMN = "d_n2v_cosine"
#: Skip-gram pairs of one fit at most (the small world makes ~7M; the large one ~350M).
MAX_WALK_PAIRS = 8_000_000
HADAMARD = "d_n2v_h"


def align(emb: np.ndarray, ref: np.ndarray, known: np.ndarray) -> np.ndarray:
    """``emb`` rotated onto ``ref``: the orthogonal ``R`` minimising ``‖emb[known] R −
    ref[known]‖`` (orthogonal Procrustes, the SVD of ``emb[known]ᵀ ref[known]``). Rows of
    ``emb`` beyond ``ref`` (users who joined later) rotate with the rest."""
    if len(known) < emb.shape[1]:
        return emb
    u, _, vt = np.linalg.svd(emb[known].T @ ref[known])
    return cast(np.ndarray, emb @ (u @ vt))


class _SkipGram(nn.Module):
    def __init__(self, n: int, dim: int) -> None:
        super().__init__()
        self.center = nn.Embedding(n, dim, sparse=True)
        self.context = nn.Embedding(n, dim, sparse=True)


def walk_pairs(snap: Snapshot, walks: int, length: int, window: int, seed: int) -> np.ndarray:
    """(center, context) pairs of uniform random walks from every node with a friend (a seeded
    sample of the walks when they would make more than :data:`MAX_WALK_PAIRS` pairs)."""
    r = rng(seed, f"pymk/node2vec/walks/{snap.day}")
    indptr, indices = snap.adj.indptr, snap.adj.indices
    deg = np.diff(indptr)
    start = np.repeat(np.flatnonzero(deg > 0), walks)
    per_walk = 2 * sum(max(length - o, 0) for o in range(1, window + 1))
    max_walks = max(MAX_WALK_PAIRS // max(per_walk, 1), 1)
    if len(start) > max_walks:  # a big graph: a seeded sample of the walks, memory bounded
        start = np.sort(r.choice(start, max_walks, replace=False))
    path = [start]
    cur = start
    for _ in range(length - 1):
        cur = indices[indptr[cur] + (r.random(len(cur)) * deg[cur]).astype(np.int64)]
        path.append(cur)
    w = np.stack(path, axis=1)
    pairs = [np.stack([w[:, :-o].ravel(), w[:, o:].ravel()], axis=1) for o in range(1, window + 1)]
    both = np.concatenate(pairs) if pairs else np.zeros((0, 2), np.int64)
    return np.concatenate([both, both[:, ::-1]]).astype(np.int64)


def fit_embeddings(
    snap: Snapshot, dim: int, walks: int, length: int, window: int, negatives: int, seed: int
) -> np.ndarray:
    """Skip-gram embeddings (``n × dim``, L2-normalised; zero for a node without friends) of
    the snapshot's nodes."""
    pairs = torch.tensor(walk_pairs(snap, walks, length, window, seed))
    n = snap.n
    net = _SkipGram(n, dim)
    g = torch.Generator().manual_seed(seed_of(seed, "pymk/node2vec/init"))
    with torch.no_grad():
        net.center.weight.uniform_(-0.5 / dim, 0.5 / dim, generator=g)
        net.context.weight.zero_()
    size = 16384

    def batches(epoch: int, generator: torch.Generator) -> Iterator[Batch]:
        order = torch.randperm(len(pairs), generator=generator)
        for s in range(0, len(pairs), size):
            b = pairs[order[s : s + size]]
            neg = torch.randint(0, n, (len(b), negatives), generator=generator)
            yield (b[:, 0], b[:, 1], neg)

    def loss(module: nn.Module, batch: Batch) -> torch.Tensor:
        m = cast(_SkipGram, module)
        c = m.center(batch[0])
        pos = (c * m.context(batch[1])).sum(-1)
        neg = torch.bmm(m.context(batch[2]), c.unsqueeze(-1)).squeeze(-1)
        return -(
            torch.nn.functional.logsigmoid(pos).mean()
            + torch.nn.functional.logsigmoid(-neg).sum(-1).mean()
        )

    if len(pairs):
        train_loop(
            net,
            batches,
            loss,
            epochs=1,
            lr=0.05,
            seed=seed_of(seed, "pymk/node2vec/sgd"),
            num_threads=1,
        )
    emb = net.center.weight.detach().numpy().astype(np.float64)
    emb[snap.deg == 0] = 0.0  # never walked: no embedding (its random start means nothing)
    norm = np.linalg.norm(emb, axis=1, keepdims=True)
    return cast(np.ndarray, emb / np.where(norm > 0, norm, 1.0))


class Node2VecLightGBM(SavedAsData, BaseEstimator):  # type: ignore[misc]
    """LightGBM on the pair features plus the Hadamard product (and cosine) of the pair's
    node2vec embeddings, aligned to the training snapshot's."""

    def __init__(
        self,
        dim: int = 32,
        walks: int = 4,
        length: int = 10,
        window: int = 2,
        negatives: int = 5,
        n_estimators: int = 300,
        min_child_samples: int = 50,
        num_threads: int = 2,
        seed: int = 0,
    ) -> None:
        self.dim = dim
        self.walks = walks
        self.length = length
        self.window = window
        self.negatives = negatives
        self.n_estimators = n_estimators
        self.min_child_samples = min_child_samples
        self.num_threads = num_threads
        self.seed = seed

    def raw_embeddings(self, snap: Snapshot) -> np.ndarray:
        """The snapshot's own skip-gram embeddings (cached on it)."""
        key = f"node2vec/{self.dim}/{self.walks}/{self.length}/{self.window}/{self.seed}"
        if key not in snap.cache:  # unsupervised: fitted on the snapshot being scored
            snap.cache[key] = fit_embeddings(
                snap, self.dim, self.walks, self.length, self.window, self.negatives, self.seed
            )
        return cast(np.ndarray, snap.cache[key])

    def embeddings(self, snap: Snapshot) -> np.ndarray:
        """The snapshot's embeddings in the reference's coordinates (cached on it)."""
        key = f"node2vec-aligned/{id(self.ref_)}"
        hit = snap.cache.get(key)
        if hit is None or hit[0] is not self.ref_:  # the entry holds its reference
            emb = self.raw_embeddings(snap)
            m = min(len(self.ref_), len(emb))
            both = np.flatnonzero((np.linalg.norm(self.ref_[:m], axis=1) > 0) & (snap.deg[:m] > 0))
            snap.cache[key] = (self.ref_, align(emb, self.ref_, both))
        return cast(np.ndarray, snap.cache[key][1])

    def _frame(self, snap: Snapshot, u: np.ndarray, v: np.ndarray, X: pd.DataFrame) -> pd.DataFrame:
        e = self.embeddings(snap)
        had = e[np.asarray(u)] * e[np.asarray(v)]  # (P, D): the Hadamard edge features
        cols = {f"{HADAMARD}{i}": had[:, i] for i in range(had.shape[1])}
        return X.assign(**{COLUMN: had.sum(axis=1)}, **cols)

    def fit(
        self, snap: Snapshot, u: np.ndarray, v: np.ndarray, X: pd.DataFrame, y: np.ndarray
    ) -> Self:
        emb = self.raw_embeddings(snap)
        self.ref_ = emb.astype(np.float32)  # the coordinates every later snapshot is rotated to
        self.gbm_ = LightGBMClick(
            n_estimators=self.n_estimators,
            learning_rate=0.05,
            num_leaves=31,
            min_child_samples=self.min_child_samples,
            random_state=self.seed,
            num_threads=self.num_threads,
        ).fit(self._frame(snap, u, v, X), y)
        return self

    def score(self, snap: Snapshot, u: np.ndarray, v: np.ndarray, X: pd.DataFrame) -> np.ndarray:
        if len(X) == 0:
            return np.zeros(0, np.float64)
        return cast(np.ndarray, self.gbm_.predict_proba(self._frame(snap, u, v, X))[:, 1])

    def describe(self) -> dict[str, Any]:
        return {"embedding_dim": self.dim, "walks_per_node": self.walks, "walk_length": self.length}
