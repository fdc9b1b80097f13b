"""Ad click prediction, step 4 (model development): the chapter's line-up of models.

The chapter walks from a no-ML baseline to deep models that learn feature interactions:

* ``historical_ctr``: the smoothed historical CTR of the ad (``mlsd.models.HistoricalCTR``);
* ``logistic_regression``: a linear model over hashed one-hot features (the hashing trick), fast
  to train and serve but blind to interactions it is not handed as crosses;
* ``lightgbm``: gradient-boosted trees, which learn interactions by splitting;
* ``dcn_v2``: a deep & cross network (Wang et al. 2021), which learns explicit feature crosses
  from embeddings (in ``model_dcn``).

Every model follows ``mlsd.models.ClickEstimator`` and consumes any ``d_*`` / ``c_*`` feature frame.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable
from typing import Any, Self

import lightgbm as lgb
import numpy as np
import pandas as pd
import scipy.sparse as sp
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression

from mlsd.models import (
    ClickEstimator,
    HistoricalCTR,
    as_proba,
    categorical_columns,
    check_feature_frame,
    check_training_data,
    dense_columns,
)
from mlsd.systems.ad_click.model_dcn import DCNv2

__all__ = ["DCNv2", "HashedLogisticRegression", "LightGBMCTR", "candidate_models"]

logger = logging.getLogger(__name__)

_GOLDEN = 0x9E3779B97F4A7C15
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)


def _field_hash(values: np.ndarray, field: int, n_bits: int) -> np.ndarray:
    """Field-aware re-hash of int ids into ``2**n_bits`` buckets (a splitmix64 finaliser).

    The same id in two different columns lands in different buckets, so fields do not share
    weights by accident.
    """
    salt = np.uint64(((field + 1) * _GOLDEN) % 2**64)
    z = values.astype(np.uint64) ^ salt
    z = (z ^ (z >> np.uint64(30))) * _MIX1
    z = (z ^ (z >> np.uint64(27))) * _MIX2
    z = z ^ (z >> np.uint64(31))
    return (z & np.uint64((1 << n_bits) - 1)).astype(np.int64)


def _standardize_stats(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-column mean and standard deviation, ignoring NaN; constant columns get std 1."""
    if values.shape[1] == 0:
        return np.zeros(0), np.ones(0)
    mean = np.nan_to_num(np.nanmean(values, axis=0))
    std = np.nan_to_num(np.nanstd(values, axis=0))
    return mean, np.where(std > 1e-12, std, 1.0)


class HashedLogisticRegression(ClickEstimator):
    """Logistic regression on hashed one-hot categoricals plus standardized dense features.

    The hashing trick (the chapter's answer to huge, open-ended id vocabularies): every ``c_*``
    value is re-hashed with its column index into ``2**n_bits`` buckets, giving one sparse one-hot
    row per impression. Fitted with L-BFGS capped at ``max_iter`` iterations (400k rows x 30
    fields in seconds on one core; the cap also acts as mild early stopping).
    """

    def __init__(
        self, n_bits: int = 18, C: float = 1.0, random_state: int = 0, max_iter: int = 100
    ) -> None:
        self.n_bits = n_bits
        self.C = C
        self.random_state = random_state
        self.max_iter = max_iter

    def _design(self, X: pd.DataFrame) -> sp.csr_matrix:
        check_feature_frame(X)
        missing = [c for c in (*self.categorical_, *self.dense_) if c not in X.columns]
        if missing:
            raise ValueError(f"HashedLogisticRegression: feature frame lacks columns {missing}")
        n, n_buckets = len(X), 1 << self.n_bits
        hashed = [
            _field_hash(X[c].to_numpy(), j, self.n_bits) for j, c in enumerate(self.categorical_)
        ]
        dense = X[self.dense_].to_numpy(dtype=np.float64) if self.dense_ else np.zeros((n, 0))
        dense = np.nan_to_num((dense - self.mean_) / self.std_)
        width = len(hashed) + dense.shape[1]
        indices = np.empty((n, width), dtype=np.int64)
        data = np.ones((n, width), dtype=np.float64)
        for j, h in enumerate(hashed):
            indices[:, j] = h
        indices[:, len(hashed) :] = n_buckets + np.arange(dense.shape[1])
        data[:, len(hashed) :] = dense
        indptr = np.arange(0, n * width + 1, width, dtype=np.int64)
        shape = (n, n_buckets + dense.shape[1])
        design = sp.csr_matrix((data.ravel(), indices.ravel(), indptr), shape=shape)
        design.sum_duplicates()
        return design

    def fit(self, X: pd.DataFrame, y: np.ndarray) -> Self:
        labels = check_training_data(X, y)
        if not 1 <= self.n_bits <= 30:
            raise ValueError(
                f"HashedLogisticRegression: n_bits must be in [1, 30], not {self.n_bits}"
            )
        self.categorical_ = categorical_columns(X)
        self.dense_ = dense_columns(X)
        if not self.categorical_ and not self.dense_:
            raise ValueError("HashedLogisticRegression: the frame has no d_* or c_* columns")
        raw = X[self.dense_].to_numpy(dtype=np.float64) if self.dense_ else np.zeros((len(X), 0))
        self.mean_, self.std_ = _standardize_stats(raw)
        model = LogisticRegression(
            C=self.C, solver="lbfgs", max_iter=self.max_iter, random_state=self.random_state
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            self.model_ = model.fit(self._design(X), labels)
        logger.info("HashedLogisticRegression: %d L-BFGS iterations", int(model.n_iter_[0]))
        self.classes_ = np.array([0, 1])
        return self

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        return as_proba(self.model_.predict_proba(self._design(X))[:, 1])


class LightGBMCTR(ClickEstimator):
    """Gradient-boosted trees (LightGBM) on dense features and low-cardinality categoricals.

    ``c_*`` columns with at most ``max_cat_cardinality`` distinct training values become native
    LightGBM categoricals (re-coded to compact codes; unseen values become missing); the
    high-cardinality ones (user and ad ids) are dropped: their signal enters through the CTR
    features. A seeded 10% of the training rows is held out for early stopping.
    """

    def __init__(
        self,
        n_estimators: int = 300,
        learning_rate: float = 0.05,
        num_leaves: int = 63,
        min_child_samples: int = 50,
        max_cat_cardinality: int = 1000,
        random_state: int = 0,
        early_stopping_rounds: int = 30,
        num_threads: int = 2,
    ) -> None:
        self.n_estimators = n_estimators
        self.learning_rate = learning_rate
        self.num_leaves = num_leaves
        self.min_child_samples = min_child_samples
        self.max_cat_cardinality = max_cat_cardinality
        self.random_state = random_state
        self.early_stopping_rounds = early_stopping_rounds
        self.num_threads = num_threads

    def _matrix(self, X: pd.DataFrame) -> np.ndarray:
        check_feature_frame(X)
        missing = [c for c in (*self.dense_, *self.categories_) if c not in X.columns]
        if missing:
            raise ValueError(f"LightGBMCTR: feature frame lacks columns {missing}")
        out = np.empty((len(X), len(self.feature_names_)), dtype=np.float64)
        for j, c in enumerate(self.dense_):
            out[:, j] = X[c].to_numpy(dtype=np.float64)
        for j, (c, cats) in enumerate(self.categories_.items(), start=len(self.dense_)):
            values = X[c].to_numpy()
            codes = np.clip(np.searchsorted(cats, values), 0, max(len(cats) - 1, 0))
            out[:, j] = np.where(cats[codes] == values, codes, np.nan)
        return out

    def _params(self) -> dict[str, Any]:
        return {
            "objective": "binary",
            "learning_rate": self.learning_rate,
            "num_leaves": self.num_leaves,
            "min_child_samples": self.min_child_samples,
            "seed": self.random_state,
            "num_threads": self.num_threads,
            "deterministic": True,
            "force_row_wise": True,
            "verbosity": -1,
        }

    def fit(self, X: pd.DataFrame, y: np.ndarray) -> Self:
        labels = check_training_data(X, y)
        self.dense_ = dense_columns(X)
        self.categories_: dict[str, np.ndarray] = {}
        self.dropped_: list[str] = []
        for c in categorical_columns(X):
            values = np.unique(X[c].to_numpy())
            if len(values) <= self.max_cat_cardinality:
                self.categories_[c] = values
            else:
                self.dropped_.append(c)
        if self.dropped_:
            logger.info("LightGBMCTR: dropped high-cardinality columns %s", self.dropped_)
        self.feature_names_ = [*self.dense_, *self.categories_]
        if not self.feature_names_:
            raise ValueError("LightGBMCTR: no usable d_* or low-cardinality c_* column")
        matrix = self._matrix(X)
        n = len(labels)
        order = np.random.default_rng(self.random_state).permutation(n)
        n_val = round(0.1 * n) if n >= 20 else 0
        val_idx, train_idx = np.sort(order[:n_val]), np.sort(order[n_val:])
        cat_idx = list(range(len(self.dense_), len(self.feature_names_)))

        def dataset(rows: np.ndarray, reference: lgb.Dataset | None = None) -> lgb.Dataset:
            return lgb.Dataset(
                matrix[rows],
                label=labels[rows],
                feature_name=self.feature_names_,
                categorical_feature=cat_idx,
                reference=reference,
                params={"verbosity": -1},
                free_raw_data=True,
            )

        train_set = dataset(train_idx)
        callbacks: list[Callable[..., Any]] = []
        valid_sets: list[lgb.Dataset] = []
        if n_val > 0 and self.early_stopping_rounds > 0:
            valid_sets = [dataset(val_idx, reference=train_set)]
            callbacks.append(lgb.early_stopping(self.early_stopping_rounds, verbose=False))
        self.booster_ = lgb.train(
            self._params(),
            train_set,
            num_boost_round=self.n_estimators,
            valid_sets=valid_sets,
            callbacks=callbacks,
        )
        self.best_iteration_ = int(
            self.booster_.best_iteration or self.booster_.current_iteration()
        )
        self.classes_ = np.array([0, 1])
        return self

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        p = self.booster_.predict(
            self._matrix(X), num_iteration=self.best_iteration_, num_threads=self.num_threads
        )
        return as_proba(np.asarray(p))


# The learners train on every click and this share of the non-clicks, then re-calibrate
# (He et al. 2014); the baseline counts clicks over all impressions.
NEGATIVE_RATE = 0.2


def candidate_models(random_state: int) -> dict[str, ClickEstimator]:
    """The chapter's line-up, from the no-ML baseline to the deep cross network."""
    return {
        "historical_ctr": HistoricalCTR(key="c_ad_id"),
        "logistic_regression": HashedLogisticRegression(random_state=random_state),
        "lightgbm": LightGBMCTR(random_state=random_state),
        "dcn_v2": DCNv2(random_state=random_state),
    }
