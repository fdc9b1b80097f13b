"""What every collaborative-filtering candidate source shares: the interaction matrix, checked
inputs, scoring a batch of users from their ids or their watch histories, top-n without the
videos already watched, and saving as one ``.npz`` file (no pickle).

The sources (matrix factorisation with ALS and BPR in ``model_mf``, the Mult-VAE in
``model_vae``, LightGCN in ``model_lightgcn``) all learn from implicit feedback: a (user, video)
pair counts once, clicked or not, as in :class:`~mlsd.systems.video_rec.model_ease.EaseSource`.
Each has ``fit(user, video, click, n_videos)`` like the other sources, so the world's log and a
MovieLens file feed them the same way, and ``scores(histories, users=None)``: a user the model
was fitted on is scored from its learned parameters, any other user (a new user in the world, an
inline request) from its history alone ("folding in"). Videos added after the fit score
``-inf``: a collaborative model cannot retrieve what nobody has watched (the two-tower's
content tower is what does).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar, Self

import numpy as np
from scipy import sparse
from sklearn.base import BaseEstimator

from mlsd.artifacts import atomic_path

log = logging.getLogger(__name__)


def interactions(
    user: np.ndarray, video: np.ndarray, click: np.ndarray, n_videos: int, what: str
) -> sparse.csr_matrix:
    """The binary (users × videos) matrix of the clicked pairs, or a ``ValueError`` naming the
    first bad row (``what`` names the model in the message)."""
    u, v, c = np.asarray(user), np.asarray(video), np.asarray(click)
    if not (len(u) == len(v) == len(c)):
        raise ValueError(
            f"{what}: user, video and click differ in length ({len(u)}, {len(v)}, {len(c)})"
        )
    for name, a in (("user", u), ("video", v)):
        if len(a) and not np.issubdtype(a.dtype, np.integer):
            raise ValueError(f"{what}: {name} ids must be integers, got {a.dtype}")
    if n_videos < 1:
        raise ValueError(f"{what}: n_videos must be >= 1, got {n_videos}")
    bad = np.flatnonzero((u < 0) | (v < 0) | (v >= n_videos))
    if len(bad):
        i = int(bad[0])
        raise ValueError(
            f"{what}: row {i}: user {int(u[i])}, video {int(v[i])} is out of range "
            f"(ids are 0..n-1, n_videos={n_videos})"
        )
    keep = c.astype(bool)
    if not keep.any():
        raise ValueError(f"{what}: no clicked (user, video) pair to learn from")
    n_users = int(u.max()) + 1
    x = sparse.csr_matrix(
        (np.ones(int(keep.sum()), np.float32), (u[keep].astype(np.int64), v[keep])),
        shape=(n_users, n_videos),
    )
    x.sum_duplicates()
    x.data[:] = 1.0  # watched or not
    return x


def history_matrix(histories: Sequence[np.ndarray], n_items: int) -> sparse.csr_matrix:
    """``(len(histories), n_items)`` binary rows; ids outside the fitted catalogue dropped."""
    rows, cols = [], []
    for i, h in enumerate(histories):
        h = np.unique(np.asarray(h, np.int64))
        h = h[(h >= 0) & (h < n_items)]
        rows.append(np.full(len(h), i, np.int64))
        cols.append(h)
    r = np.concatenate(rows) if rows else np.zeros(0, np.int64)
    c = np.concatenate(cols) if cols else np.zeros(0, np.int64)
    return sparse.csr_matrix((np.ones(len(r), np.float32), (r, c)), shape=(len(histories), n_items))


def top_n(scores: np.ndarray, histories: Sequence[np.ndarray], n: int) -> list[np.ndarray]:
    """Top ``n`` ids per row of ``scores``, the row's history and ``-inf`` scores left out."""
    out = []
    for i, h in enumerate(histories):
        row = scores[i].astype(np.float64, copy=True)
        h = np.asarray(h, np.int64)
        row[h[(h >= 0) & (h < len(row))]] = -np.inf
        k = min(n, len(row))
        top = np.argpartition(-row, k - 1)[:k] if k else np.zeros(0, np.int64)
        top = top[np.lexsort((top, -row[top]))]
        out.append(top[np.isfinite(row[top])].astype(np.int64))
    return out


class CFSource(BaseEstimator):  # type: ignore[misc]
    """Base of the collaborative sources: learned arrays named in ``ARRAYS``, numeric params."""

    ARRAYS: ClassVar[tuple[str, ...]] = ()
    NAME: ClassVar[str] = "collaborative source"

    # ---- subclasses ---------------------------------------------------------------------
    def _known_scores(self, users: np.ndarray) -> np.ndarray:
        """``(len(users), items)`` scores of users the model was fitted on."""
        raise NotImplementedError

    def _history_scores(self, hx: sparse.csr_matrix) -> np.ndarray:
        """``(rows, items)`` scores from binary history rows (fold-in)."""
        raise NotImplementedError

    @property
    def n_items_(self) -> int:
        raise NotImplementedError

    @property
    def n_users_(self) -> int:
        raise NotImplementedError

    # ---- shared -------------------------------------------------------------------------
    def _check_fitted(self) -> None:
        missing = [a for a in self.ARRAYS if not hasattr(self, a)]
        if missing:
            raise RuntimeError(f"{self.NAME} is not fitted: call fit() first")

    def scores(
        self,
        histories: Sequence[np.ndarray],
        users: np.ndarray | None = None,
        n_items: int | None = None,
    ) -> np.ndarray:
        """``(len(histories), n_items)`` float32 scores. Row ``i`` comes from the learned
        parameters of ``users[i]`` when that user was in the fit, else from ``histories[i]``;
        videos beyond the fitted catalogue (``n_items`` larger) score ``-inf``."""
        self._check_fitted()
        n = len(histories)
        fitted = self.n_items_
        out = np.full((n, max(n_items or fitted, fitted)), -np.inf, np.float32)
        known = np.zeros(n, bool)
        if users is not None:
            users = np.asarray(users, np.int64)
            if len(users) != n:
                raise ValueError(f"{len(users)} users for {n} histories")
            known = (users >= 0) & (users < self.n_users_)
        if known.any():
            out[known, :fitted] = self._known_scores(users[known])  # type: ignore[index]
        rest = np.flatnonzero(~known)
        if len(rest):
            hx = history_matrix([histories[int(i)] for i in rest], fitted)
            s = self._history_scores(hx)
            empty = np.asarray(hx.sum(axis=1)).ravel() == 0
            s[empty] = -np.inf  # nothing to fold in: no collaborative signal
            out[rest, :fitted] = s
        return out[:, : n_items or fitted]

    def recommend(
        self,
        histories: Sequence[np.ndarray],
        n: int,
        users: np.ndarray | None = None,
        n_items: int | None = None,
    ) -> list[np.ndarray]:
        """Top ``n`` videos per user, its history left out (see :meth:`scores`)."""
        return top_n(self.scores(histories, users, n_items), histories, n)

    def save(self, path: Path) -> None:
        """The constructor's arguments and the learned arrays as one ``.npz``, atomically."""
        self._check_fitted()
        params = {f"param__{k}": np.asarray(v) for k, v in self.get_params(deep=False).items()}
        arrays = {a: getattr(self, a) for a in self.ARRAYS}
        with atomic_path(Path(path)) as tmp, tmp.open("wb") as fh:
            np.savez(fh, allow_pickle=False, **params, **arrays)

    @classmethod
    def load(cls, path: Path) -> Self:
        with np.load(Path(path), allow_pickle=False) as z:
            params: dict[str, Any] = {
                k.removeprefix("param__"): z[k].item() for k in z.files if k.startswith("param__")
            }
            out = cls(**params)
            for a in cls.ARRAYS:
                setattr(out, a, z[a])
        return out
