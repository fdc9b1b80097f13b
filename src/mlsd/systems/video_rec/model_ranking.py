"""The ranking stage (book ch. 6, "Ranking"): P(click) and expected watch time per candidate.

Two gradient-boosted models share one feature frame: a click classifier trained on every logged
impression (:class:`mlsd.models.LightGBMClick`, the one LightGBM click model of mlsd, with early
stopping on a held-out tenth), and a watch-time regressor trained on the clicked ones (minutes
watched given a click). The final score is the expected watch time, ``P(click) × E[minutes |
click]``: the business objective (time spent) rather than clicks alone, which would favour
click-bait. Position is a training feature and is set to 0 when scoring, so the position bias of
the logs is learned and then removed.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Self

import lightgbm as lgb
import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator

from mlsd import metrics as mm
from mlsd.model_io import SavedAsData
from mlsd.models import LightGBMClick, categorical_columns
from mlsd.rng import seed_of
from mlsd.systems.video_rec.features import (
    Catalogue,
    Demographics,
    UserSide,
    VideoSide,
    ranking_frame,
)

log = logging.getLogger(__name__)


class RankingModel(SavedAsData, BaseEstimator):  # type: ignore[misc]
    """Expected watch time = P(click) × E[minutes | click], two LightGBM models.

    ``save`` / ``load`` (:mod:`mlsd.model_io`) write both boosters in LightGBM's own text format
    and the rest as JSON and arrays."""

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
            n_estimators=self.n_estimators,
            learning_rate=0.05,
            num_leaves=self.num_leaves,
            min_child_samples=50,
            num_threads=self.num_threads,
            random_state=seed_of(self.random_state, "video-rec/ranker/click"),
        ).fit(X, click)
        c = np.asarray(click).astype(bool)
        if c.sum() < 10:
            raise ValueError(f"the watch-time model needs clicked rows; the log has {c.sum()}")
        watch = lgb.LGBMRegressor(
            n_estimators=self.n_estimators // 2,
            num_leaves=15,
            learning_rate=0.05,
            num_threads=self.num_threads,
            random_state=seed_of(self.random_state, "video-rec/ranker/watch"),
            min_child_samples=20,
            verbose=-1,
        )
        self.watch_columns_ = list(X.columns)
        Xc = X[c]
        watch.fit(Xc, np.asarray(watch_min)[c], categorical_feature=categorical_columns(X))
        self.watch_: lgb.Booster = watch.booster_  # the booster alone: it saves as LightGBM text
        self.train_seconds_ = time.perf_counter() - t0
        return self

    def predict(self, X: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """``(p_click, expected_minutes)`` of every row.

        The boosters are called on float matrices (the click model's own matrix, and the
        numbers the scikit-learn wrapper would pass the watch-time booster), which skips the
        wrappers' per-call DataFrame checks: at serving time those cost as much as the trees.
        """
        click = self.click_
        raw = click.booster_.predict(
            click._matrix(X), num_iteration=click.best_iteration_, num_threads=self.num_threads
        )
        p = np.clip(np.asarray(raw, dtype=np.float64), 1e-7, 1 - 1e-7)  # as predict_proba
        return p, p * np.maximum(self.minutes(X), 0.0)

    def minutes(self, X: pd.DataFrame) -> np.ndarray:
        """The watch-time model's E[minutes | click] of every row (not clipped at 0)."""
        x = X[self.watch_columns_].to_numpy(np.float64)
        return np.asarray(self.watch_.predict(x, num_threads=self.num_threads), np.float64)


def fit_ranker(
    cat: Catalogue,
    us: UserSide,
    vs: VideoSide,
    users: pd.DataFrame,
    log_df: pd.DataFrame,
    n_estimators: int,
    seed: int,
) -> tuple[RankingModel, dict[str, Any], float | None]:
    """Train on the days before the last logged day; validate on that day.

    Returns the model, its validation figures and, when the log carries the world's true click
    probabilities, their NCE on the same day (the oracle; ``None`` on real data).
    """
    u = log_df["user_id"].to_numpy(np.int64)
    v = log_df["video_id"].to_numpy(np.int64)
    d = log_df["day"].to_numpy(np.int64)
    X = ranking_frame(
        cat, us, vs, Demographics.of(users, u), u, v, d, log_df["position"].to_numpy()
    )
    y = log_df["click"].to_numpy(np.int64)
    w = log_df["watch_min"].to_numpy(np.float64)
    last = int(d.max())
    tr, va = d < last, d == last
    model = RankingModel(n_estimators=n_estimators, random_state=seed)
    model.fit(X[tr], y[tr], w[tr])
    p, _ = model.predict(X[va])
    info: dict[str, Any] = {
        "train_rows": int(tr.sum()),
        "validation_rows": int(va.sum()),
        "validation_day": last,
        "click_auc": mm.roc_auc(y[va], p),
        "click_nce": mm.normalized_cross_entropy(y[va], p),
        "trees": model.click_.best_iteration_,
        "features": list(X.columns),
        "dropped_features": list(model.click_.dropped_),
    }
    c = va & (y == 1)
    if c.any():
        pred_w = np.maximum(model.minutes(X[c]), 0.0)
        info["watch_mae_min"] = float(np.mean(np.abs(pred_w - w[c])))
        info["watch_mae_baseline_min"] = float(np.mean(np.abs(w[tr & (y == 1)].mean() - w[c])))
    oracle = None
    if "p_true" in log_df:
        oracle = mm.normalized_cross_entropy(y[va], log_df["p_true"].to_numpy()[va])
    return model, info, oracle
