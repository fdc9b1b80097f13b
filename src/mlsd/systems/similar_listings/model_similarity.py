"""What every model of the similar-listings line-up answers, and how it is ranked (ch. 9).

:class:`ListingSimilarity`: ``similarity(query)`` gives ``(Q, N)`` scores of every listing for
the query listings; models with vectors expose the item vectors (indexed for serving) and the
query vectors (searched with; the same unless the similarity is asymmetric, as the skip-gram's
input-output score is). :func:`region_top_k` and :func:`rank_of` rank the listings of the
query's region by it, for the evaluation and the monitoring.
"""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator

from mlsd.model_io import SavedAsData


def unit_rows(x: np.ndarray) -> np.ndarray:
    out: np.ndarray = (x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)).astype(
        np.float32
    )
    return out


class ListingSimilarity(BaseEstimator, SavedAsData):  # type: ignore[misc]
    """What every model of the line-up answers."""

    def similarity(self, query: np.ndarray) -> np.ndarray:
        """``(Q, N)`` float scores of every listing for the query listings (higher: more
        similar)."""
        raise NotImplementedError

    def vectors(self) -> np.ndarray | None:
        """``(N, D)`` item vectors (to index) whose inner products with
        :meth:`query_vectors` are :meth:`similarity`, or None."""
        return None

    def query_vectors(self) -> np.ndarray | None:
        """``(N, D)`` the vector each listing searches with (the item vectors by default:
        a symmetric similarity)."""
        return self.vectors()


def region_top_k(
    model: ListingSimilarity, query: np.ndarray, region: np.ndarray, k: int, chunk: int = 512
) -> np.ndarray:
    """``(Q, k)`` the ``k`` most similar listings of each query's region (itself excluded;
    -1 pads a region with fewer listings), ties broken by id."""
    q = np.asarray(query, dtype=np.int64)
    out = np.full((len(q), k), -1, np.int64)
    for lo in range(0, len(q), chunk):
        qq = q[lo : lo + chunk]
        s = model.similarity(qq).astype(np.float64)
        s[region[qq][:, None] != region[None, :]] = -np.inf
        s[np.arange(len(qq)), qq] = -np.inf
        kk = min(k, s.shape[1])
        top = np.argpartition(-s, kk - 1, axis=1)[:, :kk]
        ts = np.take_along_axis(s, top, 1)
        order = np.lexsort((top, -ts), axis=1)
        top = np.take_along_axis(top, order, 1)
        ts = np.take_along_axis(ts, order, 1)
        out[lo : lo + len(qq), :kk] = np.where(np.isfinite(ts), top, -1)
    return out


def rank_of(
    model: ListingSimilarity, query: np.ndarray, target: np.ndarray, region: np.ndarray
) -> np.ndarray:
    """1-based rank of ``target[i]`` among the listings of ``query[i]``'s region ordered by
    similarity to ``query[i]`` (itself excluded; ties count half)."""
    q, t = np.asarray(query, np.int64), np.asarray(target, np.int64)
    out = np.zeros(len(q), np.float64)
    for lo in range(0, len(q), 512):
        qq, tt = q[lo : lo + 512], t[lo : lo + 512]
        s = model.similarity(qq).astype(np.float64)
        same = region[qq][:, None] == region[None, :]
        same[np.arange(len(qq)), qq] = False
        st = s[np.arange(len(qq)), tt][:, None]
        better = ((s > st) & same).sum(1)
        ties = ((s == st) & same).sum(1) - 1
        out[lo : lo + len(qq)] = 1 + better + 0.5 * np.maximum(ties, 0)
    return out


__all__ = ["ListingSimilarity", "rank_of", "region_top_k", "unit_rows"]
