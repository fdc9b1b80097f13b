"""Candidate generation sources other than the two-tower, and the merge (book ch. 6).

The chapter generates candidates from several sources in parallel and merges them: the two-tower
(personal, searched with approximate nearest neighbours in :mod:`mlsd.index`), popular/trending
videos (cheap, good for new users) and co-watch item-to-item ("users who watched this also
watched"). Each source returns a ranked list; the merge keeps the first occurrence of every video
and remembers its sources. Both sources follow scikit-learn's estimator API (``__init__`` stores
its arguments, ``fit`` returns ``self``) and save to one ``.npz`` file (no pickle); they are
registered with :mod:`mlsd.model_io`, so the served recommender saves them as data too.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Self

import numpy as np
from scipy import sparse
from sklearn.base import BaseEstimator

from mlsd.artifacts import atomic_path
from mlsd.model_io import register_model

log = logging.getLogger(__name__)


@register_model
class PopularSource(BaseEstimator):  # type: ignore[misc]
    """Trending videos: clicks with a daily decay (half-life ~2 days), ranked once per day."""

    def __init__(self, decay: float = 0.7) -> None:
        self.decay = decay

    def fit(self, video: np.ndarray, day: np.ndarray, click: np.ndarray, n_videos: int) -> Self:
        c = np.asarray(click).astype(bool)
        w = self.decay ** (day.max() - day[c]).astype(np.float64) if c.any() else np.zeros(0)
        self.score_ = np.bincount(video[c], weights=w, minlength=n_videos).astype(np.float64)
        self.ranked_ = np.argsort(-self.score_, kind="stable")
        return self

    def recommend(self, n: int, exclude: set[int] | None = None) -> np.ndarray:
        ranked = self.ranked_[: n + (len(exclude) if exclude else 0)]
        if exclude:
            ranked = ranked[~np.isin(ranked, np.fromiter(exclude, np.int64, len(exclude)))]
        return ranked[:n]

    def save(self, path: Path) -> None:
        """The decay and the fitted scores as one ``.npz`` file, written atomically."""
        with atomic_path(Path(path)) as tmp, tmp.open("wb") as fh:
            np.savez(
                fh,
                allow_pickle=False,
                decay=np.float64(self.decay),
                score=self.score_,
                ranked=self.ranked_,
            )

    @classmethod
    def load(cls, path: Path) -> PopularSource:
        with np.load(Path(path), allow_pickle=False) as z:
            out = cls(decay=float(z["decay"]))
            out.score_, out.ranked_ = z["score"], z["ranked"]
        return out


@register_model
class CoWatchSource(BaseEstimator):  # type: ignore[misc]
    """Item-to-item co-watch counts: score(v) = Σ over the user's recent videos h of C[h, v]."""

    def __init__(self, history_len: int = 20) -> None:
        self.history_len = history_len

    def fit(self, user: np.ndarray, video: np.ndarray, click: np.ndarray, n_videos: int) -> Self:
        c = np.asarray(click).astype(bool)
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

    def save(self, path: Path) -> None:
        """The history length and the co-watch counts as one ``.npz`` file, written atomically."""
        co = self.co_
        with atomic_path(Path(path)) as tmp, tmp.open("wb") as fh:
            np.savez(
                fh,
                allow_pickle=False,
                history_len=np.int64(self.history_len),
                data=co.data,
                indices=co.indices,
                indptr=co.indptr,
                shape=np.asarray(co.shape, np.int64),
            )

    @classmethod
    def load(cls, path: Path) -> CoWatchSource:
        with np.load(Path(path), allow_pickle=False) as z:
            out = cls(history_len=int(z["history_len"]))
            shape = (int(z["shape"][0]), int(z["shape"][1]))
            out.co_ = sparse.csr_matrix((z["data"], z["indices"], z["indptr"]), shape=shape)
        return out


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
