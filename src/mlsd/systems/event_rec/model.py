"""Step 4: the chapter's models side by side, all free of event ids (every event is new).

* **popular-nearby** (no ML): registrations so far, discounted by distance;
* **logistic regression** on the standardised dense features (pointwise);
* a **small neural network** (``model_mlp``: two hidden layers, BCE, pointwise);
* **LightGBM pointwise**: :class:`mlsd.models.LightGBMClick`, P(register) per pair;
* **LightGBM LambdaRank** (listwise): optimises nDCG of each shown list directly.

The logged slot (``d_position``) is a training feature of the learned models and is set to 0 when
ranking, so the log's position bias is learned and then removed. :func:`contract_cases` puts
every model under the contract of :mod:`mlsd.contracts`.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any, Self

import lightgbm as lgb
import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.linear_model import LogisticRegression

from mlsd.contracts import ModelCase, click_case, click_frame
from mlsd.model_io import SavedAsData
from mlsd.models import (
    ClickEstimator,
    LightGBMClick,
    as_proba,
    check_feature_frame,
    check_training_data,
    dense_columns,
)
from mlsd.report import Blueprint
from mlsd.rng import seed_of

log = logging.getLogger(__name__)

MODELS = (
    "popular_nearby",
    "logistic_regression",
    "mlp",
    "lightgbm_pointwise",
    "lightgbm_lambdarank",
)
BASELINE = "popular_nearby"
# Shallow trees: the world's effects are mostly additive with a few two-way interactions; 7
# leaves beat 15, 31 and 63 on nDCG@10 (compared on seeds 0 and 1 of the small world).
NUM_LEAVES = 7


class PopularNearby(SavedAsData, BaseEstimator):  # type: ignore[misc]
    """No ML: ``log(1 + registrations so far) - distance / km_scale``."""

    def __init__(self, km_scale: float = 4.0) -> None:
        self.km_scale = km_scale

    def fit(self, X: pd.DataFrame, y: np.ndarray | None = None, group: Any = None) -> Self:
        check_feature_frame(X)
        self.fitted_ = True
        return self

    def score(self, X: pd.DataFrame) -> np.ndarray:
        regs = X["d_event_regs"].to_numpy(np.float64) if "d_event_regs" in X else 0.0
        km = X["d_dist_km"].to_numpy(np.float64) if "d_dist_km" in X else 0.0
        return np.asarray(regs - km / self.km_scale, np.float64) + np.zeros(len(X))


class ScaledLogistic(ClickEstimator):
    """Logistic regression on the standardised ``d_*`` columns (``c_*`` ignored)."""

    def __init__(self, C: float = 1.0, max_iter: int = 300) -> None:
        self.C = C
        self.max_iter = max_iter

    def fit(self, X: pd.DataFrame, y: np.ndarray) -> Self:
        labels = check_training_data(X, y)
        self.columns_ = dense_columns(X)
        x = X[self.columns_].to_numpy(np.float64)
        self.mean_ = x.mean(axis=0)
        self.scale_ = np.where(x.std(axis=0) > 0, x.std(axis=0), 1.0)
        lr = LogisticRegression(C=self.C, max_iter=self.max_iter)
        lr.fit((x - self.mean_) / self.scale_, labels)
        self.coef_ = lr.coef_.ravel().astype(np.float64)
        self.intercept_ = float(lr.intercept_[0])
        self.classes_ = np.array([0, 1])
        return self

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        x = (X[self.columns_].to_numpy(np.float64) - self.mean_) / self.scale_
        return as_proba(1.0 / (1.0 + np.exp(-(x @ self.coef_ + self.intercept_))))


class LambdaRank(SavedAsData, BaseEstimator):  # type: ignore[misc]
    """LightGBM's LambdaRank on the dense ``d_*`` features: listwise, the gradient of each pair
    weighted by the nDCG change of swapping it; groups are the shown lists."""

    def __init__(
        self,
        n_estimators: int = 200,
        learning_rate: float = 0.05,
        num_leaves: int = 31,
        min_child_samples: int = 50,
        num_threads: int = 1,
        random_state: int = 0,
    ) -> None:
        self.n_estimators = n_estimators
        self.learning_rate = learning_rate
        self.num_leaves = num_leaves
        self.min_child_samples = min_child_samples
        self.num_threads = num_threads
        self.random_state = random_state

    def _matrix(self, X: pd.DataFrame) -> np.ndarray:
        missing = [c for c in self.columns_ if c not in X.columns]
        if missing:
            raise ValueError(f"LambdaRank: feature frame lacks columns {missing}")
        return X[self.columns_].to_numpy(np.float64)

    def fit(self, X: pd.DataFrame, y: np.ndarray, group: np.ndarray) -> Self:
        labels = check_training_data(X, y)
        g = np.asarray(group)
        if len(g) != len(labels):
            raise ValueError(f"group has {len(g)} rows but X has {len(labels)}")
        order = np.argsort(g, kind="stable")
        _, sizes = np.unique(g[order], return_counts=True)
        self.columns_ = [c for c in X.columns if c.startswith("d_")]
        train = lgb.Dataset(
            self._matrix(X.iloc[order]),
            label=labels[order],
            group=sizes,
            feature_name=self.columns_,
            params={"verbosity": -1},
        )
        params = {
            "objective": "lambdarank",
            "metric": "ndcg",
            "lambdarank_truncation_level": 20,
            "learning_rate": self.learning_rate,
            "num_leaves": self.num_leaves,
            "min_child_samples": self.min_child_samples,
            "seed": self.random_state,
            "num_threads": self.num_threads,
            "deterministic": True,
            "force_row_wise": True,
            "verbosity": -1,
        }
        self.booster_ = lgb.train(params, train, num_boost_round=self.n_estimators)
        return self

    def score(self, X: pd.DataFrame) -> np.ndarray:
        return np.asarray(
            self.booster_.predict(self._matrix(X), num_threads=self.num_threads), np.float64
        )


def score(model: Any, X: pd.DataFrame) -> np.ndarray:
    """The ranking score of every row, position set to 0 (the top slot)."""
    if "d_position" in X.columns:
        X = X.assign(d_position=0.0)
    if isinstance(model, ClickEstimator):
        return np.asarray(model.predict_proba(X)[:, 1], np.float64)
    return np.asarray(model.score(X), np.float64)


def make_model(name: str, seed: int, n_estimators: int = 200, threads: int = 1) -> Any:
    if name == "popular_nearby":
        return PopularNearby()
    if name == "logistic_regression":
        return ScaledLogistic()
    if name == "mlp":
        from mlsd.systems.event_rec.model_mlp import EventMLP

        return EventMLP(random_state=seed_of(seed, "event-rec/mlp"), num_threads=threads)
    if name == "lightgbm_pointwise":
        return LightGBMClick(
            n_estimators=n_estimators,
            learning_rate=0.05,
            num_leaves=NUM_LEAVES,
            min_child_samples=50,
            early_stopping_rounds=50,
            num_threads=threads,
            random_state=seed_of(seed, "event-rec/lightgbm-pointwise"),
        )
    if name == "lightgbm_lambdarank":
        return LambdaRank(
            n_estimators=n_estimators,
            num_leaves=NUM_LEAVES,
            num_threads=threads,
            random_state=seed_of(seed, "event-rec/lambdarank"),
        )
    raise ValueError(f"unknown event-rec model {name!r}; the models are {MODELS}")


def fit_model(model: Any, X: pd.DataFrame, y: np.ndarray, group: np.ndarray) -> Any:
    if isinstance(model, LambdaRank):
        return model.fit(X, y, group)
    return model.fit(X, y)


@dataclass(frozen=True)
class TrainedModels:
    models: dict[str, Any]
    train_seconds: dict[str, float]
    rows: int
    baseline: str = BASELINE
    columns: tuple[str, ...] = field(default_factory=tuple)

    def metrics(self) -> dict[str, Any]:
        return {
            "models": {
                n: {"train_seconds": round(s, 3), "train_rows": self.rows}
                for n, s in self.train_seconds.items()
            }
        }


def train_models(
    X: pd.DataFrame, y: np.ndarray, group: np.ndarray, seed: int, n_estimators: int = 200
) -> TrainedModels:
    models, seconds = {}, {}
    for name in MODELS:
        t0 = time.perf_counter()
        models[name] = fit_model(make_model(name, seed, n_estimators), X, y, group)
        seconds[name] = time.perf_counter() - t0
        log.info("event-rec: trained %s in %.1f s", name, seconds[name])
    return TrainedModels(models, seconds, len(y), columns=tuple(X.columns))


def report_models(bp: Blueprint, result: TrainedModels) -> None:
    bp.text(
        "Five rankers, none using an event id (every event is new): **popular-nearby** "
        "(registrations so far minus distance, no learning), **logistic regression** on the "
        "standardised features, a small **MLP** (two hidden layers, BCE), **LightGBM "
        "pointwise** (P(register) per pair) and **LightGBM "
        "LambdaRank** (listwise: each shown list is a query group, pairs weighted by their nDCG "
        "change). The logged slot is a training feature set to 0 when ranking, to learn and then "
        f"remove the position bias. Trained on {result.rows:,} logged impressions."
    )
    bp.table(
        ["model", "train seconds"],
        [[n, round(s, 2)] for n, s in result.train_seconds.items()],
    )


# ---- the contract ---------------------------------------------------------------------------
RankData = tuple[pd.DataFrame, np.ndarray, np.ndarray]


def _rank_data() -> RankData:
    X, y = click_frame(1200, 0)
    X = X.assign(d_event_regs=X["d_x1"], d_dist_km=np.abs(X["d_x2"]))
    return X, y, np.arange(len(y)) // 12


def _rank_case(name: str, make: Any, fit: Any) -> ModelCase:
    return ModelCase(
        name=name,
        kind="ranker",
        make=make,
        data=_rank_data,
        fit=fit,
        output=lambda m, d: m.score(d[0]),
        shape=lambda m, d: (len(d[0]),),
        save=lambda m, path: m.save(path),
        load=lambda path: make(0).load(path),
    )


def _mlp(seed: int) -> Any:
    from mlsd.systems.event_rec.model_mlp import EventMLP

    return EventMLP(hidden=(16,), epochs=3, random_state=seed)


def contract_cases() -> list[ModelCase]:
    return [
        _rank_case("event_rec_popular_nearby", lambda s: PopularNearby(), lambda m, d: m.fit(d[0])),
        click_case("event_rec_logistic", lambda s: ScaledLogistic()),
        click_case("event_rec_mlp", lambda s: _mlp(s)),
        _rank_case(
            "event_rec_lambdarank",
            lambda s: LambdaRank(n_estimators=20, num_threads=1, random_state=s),
            lambda m, d: m.fit(d[0], d[1], d[2]),
        ),
    ]
