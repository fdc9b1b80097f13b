"""The ranking stage (book ch. 6, "Ranking"): P(click) and expected watch time per candidate.

Two gradient-boosted models share one feature frame: a click classifier trained on every logged
impression, and a watch-time regressor trained on the clicked ones (minutes watched given a
click). The final score is the expected watch time, ``P(click) × E[minutes | click]``: the
business objective (time spent) rather than clicks alone, which would favour click-bait. Position
is a training feature and is set to 0 when scoring, so the position bias of the logs is learned
and then removed.
"""

from __future__ import annotations

import logging
import time
from typing import Self

import lightgbm as lgb
import numpy as np
import pandas as pd

from mlsd.models import ClickEstimator, as_proba, categorical_columns, check_training_data

log = logging.getLogger(__name__)


class LightGBMClick(ClickEstimator):
    """P(click) from a ranking feature frame (``d_*`` dense, ``c_*`` hashed categorical)."""

    def __init__(
        self,
        n_estimators: int = 200,
        num_leaves: int = 31,
        learning_rate: float = 0.05,
        num_threads: int = 1,
        random_state: int = 0,
    ) -> None:
        self.n_estimators = n_estimators
        self.num_leaves = num_leaves
        self.learning_rate = learning_rate
        self.num_threads = num_threads
        self.random_state = random_state

    def fit(self, X: pd.DataFrame, y: np.ndarray) -> Self:
        labels = check_training_data(X, y)
        self.columns_ = list(X.columns)
        self.model_ = lgb.LGBMClassifier(
            n_estimators=self.n_estimators,
            num_leaves=self.num_leaves,
            learning_rate=self.learning_rate,
            num_threads=self.num_threads,
            random_state=self.random_state,
            min_child_samples=50,
            verbose=-1,
        )
        self.model_.fit(X, labels, categorical_feature=categorical_columns(X) or "auto")
        self.classes_ = np.array([0, 1])
        return self

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        proba = np.asarray(self.model_.predict_proba(X[self.columns_]))
        return as_proba(proba[:, 1])


class RankingModel:
    """Expected watch time = P(click) × E[minutes | click], two LightGBM models."""

    def __init__(
        self,
        n_estimators: int = 200,
        num_leaves: int = 31,
        num_threads: int = 1,
        random_state: int = 0,
    ) -> None:
        self.n_estimators = n_estimators
        self.num_leaves = num_leaves
        self.num_threads = num_threads
        self.random_state = random_state

    def fit(self, X: pd.DataFrame, click: np.ndarray, watch_min: np.ndarray) -> Self:
        t0 = time.perf_counter()
        self.click_ = LightGBMClick(
            self.n_estimators,
            self.num_leaves,
            num_threads=self.num_threads,
            random_state=self.random_state,
        ).fit(X, click)
        c = np.asarray(click).astype(bool)
        if c.sum() < 10:
            raise ValueError(f"the watch-time model needs clicked rows; the log has {c.sum()}")
        self.watch_ = lgb.LGBMRegressor(
            n_estimators=self.n_estimators // 2,
            num_leaves=15,
            learning_rate=0.05,
            num_threads=self.num_threads,
            random_state=self.random_state,
            min_child_samples=20,
            verbose=-1,
        )
        Xc = X[c]
        self.watch_.fit(Xc, np.asarray(watch_min)[c], categorical_feature=categorical_columns(X))
        self.train_seconds_ = time.perf_counter() - t0
        return self

    def predict(self, X: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """``(p_click, expected_minutes)`` of every row.

        The boosters are called on one float matrix (the same numbers the scikit-learn wrappers
        would pass them), which skips the wrappers' per-call DataFrame checks: at serving time
        those cost as much as the trees themselves.
        """
        x = X[self.click_.columns_].to_numpy(np.float64)
        p = np.asarray(self.click_.model_.booster_.predict(x, num_threads=self.num_threads))
        minutes = np.asarray(self.watch_.booster_.predict(x, num_threads=self.num_threads))
        return p, p * np.maximum(minutes, 0.0)
