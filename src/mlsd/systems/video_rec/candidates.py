"""Candidate generation sources other than the two-tower, the ANN index, and the merge.

The chapter generates candidates from several sources in parallel and merges them: the two-tower
(personal, searched with approximate nearest neighbours), popular/trending videos (cheap, good for
new users) and co-watch item-to-item ("users who watched this also watched"). Each source returns
a ranked list; the merge keeps the first occurrence of every video and remembers its sources.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any, Self

import faiss
import numpy as np
from scipy import sparse

log = logging.getLogger(__name__)


class PopularSource:
    """Trending videos: clicks with a daily decay (half-life ~2 days), ranked once per day."""

    def __init__(self, decay: float = 0.7) -> None:
        self.decay = decay

    def fit(self, video: np.ndarray, day: np.ndarray, click: np.ndarray, n_videos: int) -> Self:
        c = click.astype(bool)
        w = self.decay ** (day.max() - day[c]).astype(np.float64) if c.any() else np.zeros(0)
        self.score_ = np.bincount(video[c], weights=w, minlength=n_videos).astype(np.float64)
        self.ranked_ = np.argsort(-self.score_, kind="stable")
        return self

    def recommend(self, n: int, exclude: set[int] | None = None) -> np.ndarray:
        ranked = self.ranked_[: n + (len(exclude) if exclude else 0)]
        if exclude:
            ranked = ranked[~np.isin(ranked, np.fromiter(exclude, np.int64, len(exclude)))]
        return ranked[:n]


class CoWatchSource:
    """Item-to-item co-watch counts: score(v) = Σ over the user's recent videos h of C[h, v]."""

    def __init__(self, history_len: int = 20) -> None:
        self.history_len = history_len

    def fit(self, user: np.ndarray, video: np.ndarray, click: np.ndarray, n_videos: int) -> Self:
        c = click.astype(bool)
        n_users = int(user.max()) + 1 if len(user) else 1
        x = sparse.csr_matrix(
            (np.ones(int(c.sum())), (user[c], video[c])), shape=(n_users, n_videos)
        )
        x.data[:] = 1.0  # watched or not
        co = (x.T @ x).tocsr()
        co.setdiag(0.0)
        co.eliminate_zeros()
        self.co_ = co
        return self

    def scores(self, histories: Sequence[np.ndarray]) -> sparse.csr_matrix:
        rows, cols = [], []
        for i, h in enumerate(histories):
            h = np.asarray(h)[-self.history_len :]
            h = h[(h >= 0) & (h < self.co_.shape[0])]
            rows.append(np.full(len(h), i))
            cols.append(h)
        r, c = np.concatenate(rows or [np.zeros(0)]), np.concatenate(cols or [np.zeros(0)])
        hx = sparse.csr_matrix((np.ones(len(r)), (r, c)), shape=(len(histories), self.co_.shape[0]))
        return (hx @ self.co_).tocsr()

    def recommend(self, histories: Sequence[np.ndarray], n: int) -> list[np.ndarray]:
        """Top ``n`` co-watched videos per history (fewer when the counts run out)."""
        s = self.scores(histories)
        out = []
        for i in range(s.shape[0]):
            lo, hi = s.indptr[i], s.indptr[i + 1]
            idx, val = s.indices[lo:hi], s.data[lo:hi]
            order = np.lexsort((idx, -val))[:n]
            out.append(idx[order].astype(np.int64))
        return out


class AnnIndex:
    """A FAISS inner-product index: ``exact`` (flat), ``ivf`` (inverted lists) or ``hnsw``."""

    def __init__(self, kind: str = "hnsw", nlist: int = 0, nprobe: int = 16, ef: int = 64):
        if kind not in ("exact", "ivf", "hnsw"):
            raise ValueError(f"unknown index kind {kind!r}; use exact, ivf or hnsw")
        self.kind = kind
        self.nlist = nlist
        self.nprobe = nprobe
        self.ef = ef

    def build(self, emb: np.ndarray, seed: int = 0) -> Self:
        x = np.ascontiguousarray(emb, dtype=np.float32)
        d = x.shape[1]
        t0 = time.perf_counter()
        index: Any
        if self.kind == "exact":
            index = faiss.IndexFlatIP(d)
        elif self.kind == "ivf":
            nlist = self.nlist or max(1, int(4 * np.sqrt(len(x))))
            index = faiss.IndexIVFFlat(faiss.IndexFlatIP(d), d, nlist, faiss.METRIC_INNER_PRODUCT)
            rng = np.random.default_rng(seed)
            train = x[rng.choice(len(x), min(len(x), 64 * nlist), replace=False)]
            index.cp.seed = seed
            index.train(train)
            index.nprobe = min(self.nprobe, nlist)
        else:
            index = faiss.IndexHNSWFlat(d, 32, faiss.METRIC_INNER_PRODUCT)
            index.hnsw.efConstruction = 80
            index.hnsw.efSearch = self.ef
        index.add(x)
        self.build_seconds_ = time.perf_counter() - t0
        self.index_ = index
        self.size_ = len(x)
        return self

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """``(scores, ids)``, each ``(n, k)``; ids are -1 where fewer than ``k`` exist."""
        q = np.ascontiguousarray(np.atleast_2d(queries), dtype=np.float32)
        scores, ids = self.index_.search(q, min(k, self.size_))
        return scores, ids

    def memory_bytes(self) -> int:
        return int(faiss.serialize_index(self.index_).nbytes)

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        if "index_" in state:
            state["index_"] = faiss.serialize_index(state["index_"])
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        if "index_" in state:
            state["index_"] = faiss.deserialize_index(state["index_"])
            if state.get("kind") == "hnsw":
                state["index_"].hnsw.efSearch = state["ef"]
            elif state["kind"] == "ivf":
                state["index_"].nprobe = state["nprobe"]
        self.__dict__.update(state)


def ann_recall(approx_ids: np.ndarray, exact_ids: np.ndarray) -> float:
    """Mean share of the exact top-k that the approximate search also returned."""
    hits = [
        len(np.intersect1d(a[a >= 0], e[e >= 0])) / max((e >= 0).sum(), 1)
        for a, e in zip(approx_ids, exact_ids, strict=True)
    ]
    return float(np.mean(hits)) if hits else float("nan")


def merge_candidates(
    sources: dict[str, np.ndarray], exclude: set[int] | None = None
) -> tuple[np.ndarray, list[list[str]]]:
    """Union of the sources' lists, first occurrence first, without ``exclude``d videos."""
    seen: dict[int, list[str]] = {}
    for name, ids in sources.items():
        for v in np.asarray(ids).tolist():
            if v < 0 or (exclude and v in exclude):
                continue
            seen.setdefault(int(v), []).append(name)
    return np.fromiter(seen, dtype=np.int64, count=len(seen)), list(seen.values())
