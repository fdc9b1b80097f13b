"""Matrix factorisation of implicit feedback with the ``implicit`` library (Frederickson, 2017-):
alternating least squares (Hu, Koren & Volinsky, "Collaborative Filtering for Implicit Feedback
Datasets", ICDM 2008) and Bayesian personalised ranking (Rendle et al., UAI 2009).

Both learn a user factor ``p_u`` and a video factor ``q_v`` with ``score = p_u · q_v``:

* **ALS** weighs every (user, video) cell, watched ones with confidence ``1 + alpha``, and
  alternates closed-form ridge solves for the users and the videos (conjugate gradient).
* **BPR** samples (user, watched, unwatched) triples and pushes the watched video above the
  other by stochastic gradient ascent on ``log σ(p_u·q_i − p_u·q_j)``; implicit adds a bias
  column to the video factors.

``implicit`` is imported inside ``fit`` so that ``mlsd run``'s default import path stays light.
Determinism: ``random_state`` is a named stream of the run's seed; ALS updates every user (and
every video) independently, so its result does not depend on the thread count; BPR's SGD is
Hogwild! across threads, so it runs on one thread to be reproducible. BLAS is held to one thread
inside the fit (implicit's own advice). A user outside the fit is folded in with one ALS user
step against the fixed video factors (both models).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any, ClassVar, Self

import numpy as np
from scipy import sparse
from threadpoolctl import threadpool_limits

from mlsd.model_io import register_model
from mlsd.rng import seed_of
from mlsd.systems.video_rec.model_cf import CFSource, interactions

log = logging.getLogger(__name__)


class _FactorSource(CFSource):
    """Learned ``user_factors_`` (users, d) and ``item_factors_`` (items, d)."""

    ARRAYS: ClassVar[tuple[str, ...]] = ("user_factors_", "item_factors_")

    def _fold_params(self) -> tuple[float, float]:
        """``(alpha, l2)`` of the fold-in step."""
        return 1.0, 0.1

    @property
    def n_items_(self) -> int:
        return int(self.item_factors_.shape[0])

    @property
    def n_users_(self) -> int:
        return int(self.user_factors_.shape[0])

    def _known_scores(self, users: np.ndarray) -> np.ndarray:
        return np.asarray(self.user_factors_[users] @ self.item_factors_.T, np.float32)

    def _history_scores(self, hx: sparse.csr_matrix) -> np.ndarray:
        """One ALS user step per row: ``p = (QᵀQ + α QₕᵀQₕ + λI)⁻¹ (1 + α) Qₕᵀ 1``."""
        alpha, l2 = self._fold_params()
        q = self.item_factors_.astype(np.float64)  # (items, d)
        gram = q.T @ q + l2 * np.eye(q.shape[1])  # (d, d)
        p = np.zeros((hx.shape[0], q.shape[1]))
        for i in range(hx.shape[0]):
            h = hx.indices[hx.indptr[i] : hx.indptr[i + 1]]
            if len(h):
                qh = q[h]  # (len(h), d)
                a = gram + alpha * qh.T @ qh
                p[i] = np.linalg.solve(a, (1.0 + alpha) * qh.sum(axis=0))
        return np.asarray(p @ q.T, np.float32)

    def _fit_implicit(self, make: Callable[[], Any], x: sparse.csr_matrix) -> Self:
        t0 = time.perf_counter()
        with threadpool_limits(1, "blas"):  # implicit checks BLAS when the model is made
            model = make()
            model.fit(x, show_progress=False)
        self.user_factors_ = np.asarray(model.user_factors, np.float32)
        self.item_factors_ = np.asarray(model.item_factors, np.float32)
        self.train_seconds_ = time.perf_counter() - t0
        return self


@register_model
class AlsSource(_FactorSource):
    """Weighted matrix factorisation by alternating least squares (implicit's CPU solver)."""

    NAME = "ALS"

    def __init__(
        self,
        factors: int = 64,
        l2: float = 0.05,
        alpha: float = 10.0,
        iterations: int = 15,
        num_threads: int = 2,
        seed: int = 0,
    ) -> None:
        self.factors = factors
        self.l2 = l2
        self.alpha = alpha
        self.iterations = iterations
        self.num_threads = num_threads
        self.seed = seed

    def fit(self, user: np.ndarray, video: np.ndarray, click: np.ndarray, n_videos: int) -> Self:
        from implicit.cpu.als import AlternatingLeastSquares

        x = interactions(user, video, click, n_videos, self.NAME)
        return self._fit_implicit(
            lambda: AlternatingLeastSquares(
                factors=self.factors,
                regularization=self.l2,
                alpha=self.alpha,
                iterations=self.iterations,
                num_threads=self.num_threads,
                random_state=seed_of(self.seed, "video-rec/als"),
            ),
            x,
        )

    def _fold_params(self) -> tuple[float, float]:
        return float(self.alpha), float(self.l2)


@register_model
class BprSource(_FactorSource):
    """Bayesian personalised ranking by SGD over sampled triples (implicit's CPU solver)."""

    NAME = "BPR"

    def __init__(
        self,
        factors: int = 64,
        learning_rate: float = 0.05,
        l2: float = 0.01,
        iterations: int = 100,
        seed: int = 0,
    ) -> None:
        self.factors = factors
        self.learning_rate = learning_rate
        self.l2 = l2
        self.iterations = iterations
        self.seed = seed

    def fit(self, user: np.ndarray, video: np.ndarray, click: np.ndarray, n_videos: int) -> Self:
        from implicit.cpu.bpr import BayesianPersonalizedRanking

        x = interactions(user, video, click, n_videos, self.NAME)
        return self._fit_implicit(
            lambda: BayesianPersonalizedRanking(
                factors=self.factors,
                learning_rate=self.learning_rate,
                regularization=self.l2,
                iterations=self.iterations,
                num_threads=1,  # Hogwild! SGD: more threads would vary the result run to run
                random_state=seed_of(self.seed, "video-rec/bpr"),
            ),
            x,
        )
