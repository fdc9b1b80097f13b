"""EASE: a closed-form item-to-item model of implicit feedback (Steck, "Embarrassingly Shallow
Autoencoders for Sparse Data", WWW 2019).

It learns one item × item weight matrix ``B`` that reconstructs each user's row of the binary
interaction matrix ``X`` from the *other* items of that row: minimise
``‖X − X B‖² + λ‖B‖²`` with ``diag(B) = 0``. The solution is closed form: with
``P = (XᵀX + λI)⁻¹``, ``B = −P / diag(P)`` (column-wise) and ``diag(B) = 0``. A user's scores
are ``x_u B``: co-watch counts (the Gram matrix ``XᵀX``) de-correlated and shrunk, so a video
watched with everything (popular) no longer dominates every list. Training is one inversion of
an items × items matrix (cubic in the catalogue: seconds for a few thousand items), so the model
is refused above ``max_items``; the one hyper-parameter ``l2`` is chosen on a validation split.
It follows scikit-learn's estimator API and saves to one ``.npz`` file (no pickle).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Self

import numpy as np
from scipy import sparse
from sklearn.base import BaseEstimator

from mlsd.artifacts import atomic_path
from mlsd.model_io import register_model


@register_model
class EaseSource(BaseEstimator):  # type: ignore[misc]
    """Closed-form item-to-item weights; score(v) = Σ over the user's videos h of B[h, v]."""

    def __init__(self, l2: float = 250.0, max_items: int = 20_000) -> None:
        self.l2 = l2
        self.max_items = max_items

    def fit(self, user: np.ndarray, video: np.ndarray, click: np.ndarray, n_videos: int) -> Self:
        """``B`` from the clicked (user, video) pairs; a pair counts once however often."""
        if n_videos > self.max_items:
            raise ValueError(
                f"EASE inverts an items × items matrix: {n_videos:,} items is more than "
                f"max_items={self.max_items:,} ({8 * n_videos**2 / 2**30:.1f} GiB per copy)"
            )
        c = np.asarray(click).astype(bool)
        n_users = int(np.max(user)) + 1 if len(user) else 1
        x = sparse.csr_matrix(
            (np.ones(int(c.sum())), (np.asarray(user)[c], np.asarray(video)[c])),
            shape=(n_users, n_videos),
        )
        x.data[:] = 1.0  # watched or not
        gram = (x.T @ x).toarray()  # (items, items) co-watch counts
        gram[np.diag_indices_from(gram)] += self.l2
        p = np.linalg.inv(gram)
        b = -p / np.diag(p)[None, :]
        b[np.diag_indices_from(b)] = 0.0
        self.weights_ = b.astype(np.float32)  # (items, items)
        return self

    def scores(self, histories: Sequence[np.ndarray]) -> np.ndarray:
        """``(len(histories), items)`` scores: the sum of the weights' rows of each history."""
        n_items = self.weights_.shape[0]
        rows, cols = [], []
        for i, h in enumerate(histories):
            h = np.unique(np.asarray(h, np.int64))
            h = h[(h >= 0) & (h < n_items)]
            rows.append(np.full(len(h), i))
            cols.append(h)
        r, c = np.concatenate(rows or [np.zeros(0)]), np.concatenate(cols or [np.zeros(0)])
        hx = sparse.csr_matrix(
            (np.ones(len(r), np.float32), (r, c)), shape=(len(histories), n_items)
        )
        return np.asarray(hx @ self.weights_)

    def recommend(self, histories: Sequence[np.ndarray], n: int) -> list[np.ndarray]:
        """Top ``n`` videos per history, the history's own videos left out."""
        s = self.scores(histories)
        out = []
        for i, h in enumerate(histories):
            row = s[i]
            h = np.asarray(h, np.int64)
            row[h[(h >= 0) & (h < len(row))]] = -np.inf
            top = np.argsort(-row, kind="stable")[:n]
            out.append(top[np.isfinite(row[top])].astype(np.int64))
        return out

    def save(self, path: Path) -> None:
        """``l2``, ``max_items`` and the weights as one ``.npz`` file, written atomically."""
        with atomic_path(Path(path)) as tmp, tmp.open("wb") as fh:
            np.savez(
                fh,
                allow_pickle=False,
                l2=np.float64(self.l2),
                max_items=np.int64(self.max_items),
                weights=self.weights_,
            )

    @classmethod
    def load(cls, path: Path) -> EaseSource:
        with np.load(Path(path), allow_pickle=False) as z:
            out = cls(l2=float(z["l2"]), max_items=int(z["max_items"]))
            out.weights_ = z["weights"]
        return out
