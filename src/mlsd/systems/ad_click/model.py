"""Ad click prediction, step 4 (model development): the chapter's line-up of models.

The chapter walks from a no-ML baseline to deep models that learn feature interactions:

* ``historical_ctr``: the smoothed historical CTR of the ad (``mlsd.models.HistoricalCTR``);
* ``logistic_regression``: a linear model over hashed one-hot features (the hashing trick), fast
  to train and serve but blind to interactions it is not handed as crosses;
* ``lightgbm``: gradient-boosted trees, which learn interactions by splitting;
* ``fm`` and ``deepfm``: a factorization machine (Rendle 2010), every pair of fields through the
  dot product of their embeddings, and DeepFM (Guo et al. 2017), an FM plus a deep tower on the
  same embeddings (in ``model_fm``);
* ``dcn_v2``: a deep & cross network (Wang et al. 2021), which learns explicit feature crosses
  from embeddings (in ``model_dcn``). The three deep models share their estimator
  (``model_deep``).

Every model follows ``mlsd.models.ClickEstimator`` and consumes any ``d_*`` / ``c_*`` feature frame.
The models step (the baseline on every row, each learner tuned on the validation rows, trained
on every click and a share of the non-clicks where clicks are rare, re-calibrated) is
:func:`~.model_tuning.train_tuned`.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Self

import numpy as np
import pandas as pd
import scipy.sparse as sp
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from threadpoolctl import threadpool_limits

from mlsd.contracts import ModelCase, click_case
from mlsd.hashing import GOLDEN, mix64
from mlsd.models import (
    ClickEstimator,
    HistoricalCTR,
    LightGBMClick,
    as_proba,
    categorical_columns,
    check_feature_frame,
    check_training_data,
    dense_columns,
)
from mlsd.report import Blueprint
from mlsd.rng import seed_of
from mlsd.systems.ad_click.model_dcn import DCN_SPACE, DCNv2
from mlsd.systems.ad_click.model_fm import DEEPFM_SPACE, FM, FM_SPACE, DeepFM
from mlsd.tuning import Param, TuningResult, choice, integer, real

__all__ = [
    "BASELINE",
    "FM",
    "NEGATIVE_RATE",
    "SEARCH_SPACES",
    "DCNv2",
    "DeepFM",
    "HashedLogisticRegression",
    "TrainedModels",
    "candidate_models",
    "contract_cases",
    "downsampling_seed",
    "negative_rate",
]

logger = logging.getLogger(__name__)


def _field_hash(values: np.ndarray, field: int, n_bits: int) -> np.ndarray:
    """Field-aware re-hash of int ids into ``2**n_bits`` buckets (a splitmix64 finaliser).

    The same id in two different columns lands in different buckets, so fields do not share
    weights by accident.
    """
    salt = np.uint64(((field + 1) * int(GOLDEN)) % 2**64)
    z = mix64(values.astype(np.uint64) ^ salt)
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
        # one BLAS thread: scipy's L-BFGS-B makes small BLAS calls on a vector as long as the
        # hashing space, and threads spinning on them cost ten times the work on a busy machine
        with warnings.catch_warnings(), threadpool_limits(limits=1, user_api="blas"):
            warnings.simplefilter("ignore", ConvergenceWarning)
            self.model_ = model.fit(self._design(X), labels)
        logger.info("HashedLogisticRegression: %d L-BFGS iterations", int(model.n_iter_[0]))
        self.classes_ = np.array([0, 1])
        return self

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        return as_proba(self.model_.predict_proba(self._design(X))[:, 1])


# What the tuner searches (mlsd.tuning), kept small. Logistic regression: the inverse L2
# strength and the hashing width. LightGBM (mlsd.models.LightGBMClick): step size, tree size, leaf
# size, the smoothing of categorical splits and how many values of an id column the trees keep.
LR_SPACE: tuple[Param, ...] = (real("C", 1e-2, 10.0, log=True), choice("n_bits", (16, 18)))
LIGHTGBM_SPACE: tuple[Param, ...] = (
    real("learning_rate", 0.02, 0.2, log=True),
    integer("num_leaves", 15, 127, log=True),
    integer("min_child_samples", 10, 200, log=True),
    real("cat_smooth", 1.0, 200.0, log=True),
    choice("max_cat_cardinality", (1000, 5000)),
)
SEARCH_SPACES: Mapping[str, tuple[Param, ...]] = {
    "logistic_regression": LR_SPACE,
    "lightgbm": LIGHTGBM_SPACE,
    "fm": FM_SPACE,
    "deepfm": DEEPFM_SPACE,
    "dcn_v2": DCN_SPACE,
}

# The learners train on every click and this share of the non-clicks, then re-calibrate
# (He et al. 2014); the baseline counts clicks over all impressions.
NEGATIVE_RATE = 0.2
# Downsampling pays when clicks are rare (ad logs: a few percent). On a file with one click in
# three (the public libFM benchmarks sample negatives that way) it would only throw data away.
DOWNSAMPLE_BELOW = 0.1


def negative_rate(y_train: np.ndarray) -> float:
    """The share of non-clicks the learners keep: :data:`NEGATIVE_RATE` when the training click
    rate is under :data:`DOWNSAMPLE_BELOW`, else every row (1.0)."""
    rate = float(np.mean(y_train)) if len(y_train) else 0.0
    return NEGATIVE_RATE if rate < DOWNSAMPLE_BELOW else 1.0


BASELINE = "historical_ctr"


def downsampling_seed(seed: int) -> int:
    """The seed of the run's negative downsampling: every learner (and the features step's
    report of it) keeps the same non-clicks."""
    return seed_of(seed, "ad-click/negative-downsampling")


def candidate_models(random_state: int) -> dict[str, ClickEstimator]:
    """The chapter's line-up, from the no-ML baseline to the deep cross network."""
    return {
        "historical_ctr": HistoricalCTR(key="c_ad_id"),
        "logistic_regression": HashedLogisticRegression(random_state=random_state),
        "lightgbm": LightGBMClick(random_state=random_state),
        "fm": FM(random_state=random_state),
        "deepfm": DeepFM(random_state=random_state),
        "dcn_v2": DCNv2(random_state=random_state),
    }


@dataclass(frozen=True)
class TrainedModels:
    """The models step: the fitted line-up (learners wrapped in their downsampling correction)
    and, per model, its class, training time and whether it was downsampled."""

    models: Mapping[str, ClickEstimator]
    info: Mapping[str, Mapping[str, Any]]
    baseline: str = BASELINE
    tuning: Mapping[str, TuningResult] = field(default_factory=dict)
    fields: Mapping[str, Mapping[str, str]] = field(default_factory=dict)  # model -> column -> how

    def metrics(self) -> dict[str, Any]:
        models: dict[str, dict[str, Any]] = {name: dict(info) for name, info in self.info.items()}
        for name, result in self.tuning.items():
            models[name]["tuning"] = result.metrics()
        for name, used in self.fields.items():
            models[name]["fields"] = dict(used)
        return {"models": models, "baseline_model": self.baseline}


def report_models(bp: Blueprint, result: TrainedModels) -> None:
    """The blueprint's model-development section: the line-up and its training times."""
    bp.section("Model development")
    bp.text(
        "Six models under one estimator contract (fit / predict_proba / save / load), from the "
        "chapter's line-up: a no-ML baseline (the ad's smoothed historical CTR), logistic "
        "regression on hashed features and crosses, gradient-boosted trees (LightGBM), and "
        "three embedding models of feature interactions (PyTorch): a factorization machine "
        "(every pair of fields), DeepFM (an FM plus a deep tower) and DCN-v2 (explicit crosses "
        "of bounded degree plus a deep tower). Where clicks are rare the learners train on the "
        "downsampled log and are re-calibrated."
    )
    bp.table(
        ["model", "class", "train seconds", "downsampled"],
        [[n, i["class"], i["train_seconds"], i["downsampled"]] for n, i in result.info.items()],
    )


def contract_cases() -> list[ModelCase]:
    """Ad click's own models under the one contract (the framework registers the baselines
    and LightGBM); tiny sizes so the contract test stays fast."""
    return [
        click_case(
            "logistic_regression",
            lambda seed: HashedLogisticRegression(n_bits=12, random_state=seed),
        ),
        click_case(
            "dcn_v2",
            lambda seed: DCNv2(
                embedding_dim=4,
                deep_layers=(16,),
                field_buckets=2**10,
                epochs=4,
                batch_size=128,
                lr=1e-2,
                num_threads=1,
                random_state=seed,
            ),
        ),
        click_case(
            "fm",
            lambda seed: FM(
                embedding_dim=4,
                field_buckets=2**10,
                epochs=4,
                batch_size=128,
                lr=1e-2,
                num_threads=1,
                random_state=seed,
            ),
        ),
        click_case(
            "deepfm",
            lambda seed: DeepFM(
                embedding_dim=4,
                deep_layers=(16,),
                field_buckets=2**10,
                epochs=4,
                batch_size=128,
                lr=1e-2,
                num_threads=1,
                random_state=seed,
            ),
        ),
    ]
