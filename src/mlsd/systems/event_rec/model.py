"""Step 4: the chapter's models side by side, all free of event ids (every event is new).

* **popular-nearby** (no ML): registrations so far, discounted by distance;
* **logistic regression** on the standardised dense features (pointwise);
* a **small neural network** (``model_mlp``: two hidden layers, BCE, pointwise);
* **LightGBM pointwise**: :class:`mlsd.models.LightGBMClick`, P(register) per pair;
* **LightGBM LambdaRank** (listwise): optimises nDCG of each shown list directly.

The logged slot (``d_position``) is a training feature of the learned models and is set to 0 when
ranking, so the log's position bias is learned and then removed. Hyper-parameters and LightGBM
tree counts are chosen on the validation days by :mod:`.model_selection` (:func:`staged_scores`,
:func:`use_trees`). :func:`contract_cases` puts every model under the contract of
:mod:`mlsd.contracts`.
"""

from __future__ import annotations

import logging
from typing import Any, Self

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.linear_model import LogisticRegression

from mlsd.contracts import ModelCase, click_case, click_frame
from mlsd.engine_lightgbm import fit_booster
from mlsd.model_io import SavedAsData
from mlsd.models import (
    ClickEstimator,
    LightGBMClick,
    as_proba,
    check_feature_frame,
    check_training_data,
    dense_columns,
)
from mlsd.rng import seed_of
from mlsd.systems.event_rec.features import Rows

log = logging.getLogger(__name__)

MODELS = (
    "popular_nearby",
    "logistic_regression",
    "mlp",
    "lightgbm_pointwise",
    "lightgbm_lambdarank",
)
BASELINE = "popular_nearby"
LIGHTGBM = ("lightgbm_pointwise", "lightgbm_lambdarank")
POSITION_COLUMN = "d_position"  # the logged slot (features.POSITION), 0 when ranking
# The default leaves; the validation days choose among model_selection.LEAVES per run
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
    weighted by the nDCG change of swapping it; groups are the shown lists (one per request).

    ``graded``: the labels are grades 0 (shown), 1 (clicked or bookmarked), 2 (registered), with
    LightGBM's gains ``2^g - 1`` (or ``label_gain``); otherwise 0/1 registrations.
    ``objective`` is ``lambdarank`` or ``rank_xendcg``; ``best_iteration_`` (the trees used to
    score) is every tree unless the validation days chose fewer (:func:`use_trees`)."""

    def __init__(
        self,
        n_estimators: int = 200,
        learning_rate: float = 0.05,
        num_leaves: int = 31,
        min_child_samples: int = 50,
        objective: str = "lambdarank",
        truncation_level: int = 20,
        graded: bool = False,
        label_gain: tuple[float, ...] | None = None,
        num_threads: int = 1,
        random_state: int = 0,
    ) -> None:
        self.n_estimators = n_estimators
        self.learning_rate = learning_rate
        self.num_leaves = num_leaves
        self.min_child_samples = min_child_samples
        self.objective = objective
        self.truncation_level = truncation_level
        self.graded = graded
        self.label_gain = label_gain
        self.num_threads = num_threads
        self.random_state = random_state

    def _matrix(self, X: pd.DataFrame) -> np.ndarray:
        missing = [c for c in self.columns_ if c not in X.columns]
        if missing:
            raise ValueError(f"LambdaRank: feature frame lacks columns {missing}")
        return X[self.columns_].to_numpy(np.float64)

    def _labels(self, X: pd.DataFrame, y: np.ndarray) -> np.ndarray:
        if not self.graded:
            return check_training_data(X, y)
        check_feature_frame(X)
        labels = np.asarray(y)
        if labels.ndim != 1 or len(labels) != len(X) or len(labels) == 0:
            raise ValueError(f"y has shape {labels.shape} but X has {len(X)} rows")
        bad = ~np.isin(labels, (0, 1, 2))
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise ValueError(f"graded y must hold 0/1/2; row {row} holds {labels[row]!r}")
        return labels.astype(np.int64)

    def fit(self, X: pd.DataFrame, y: np.ndarray, group: np.ndarray) -> Self:
        labels = self._labels(X, y)
        g = np.asarray(group)
        if len(g) != len(labels):
            raise ValueError(f"group has {len(g)} rows but X has {len(labels)}")
        if self.objective not in ("lambdarank", "rank_xendcg"):
            raise ValueError(f"LambdaRank: unknown objective {self.objective!r}")
        order = np.argsort(g, kind="stable")
        _, sizes = np.unique(g[order], return_counts=True)
        self.columns_ = [c for c in X.columns if c.startswith("d_")]
        params: dict[str, Any] = {
            "objective": self.objective,
            "metric": "ndcg",
            "lambdarank_truncation_level": self.truncation_level,
            "learning_rate": self.learning_rate,
            "num_leaves": self.num_leaves,
            "min_child_samples": self.min_child_samples,
            "seed": self.random_state,
            "num_threads": self.num_threads,
            "deterministic": True,
            "force_row_wise": True,
            "verbosity": -1,
        }
        if self.label_gain is not None:
            params["label_gain"] = list(self.label_gain)
        self.booster_ = fit_booster(  # data-parallel in a Ray engine's data_parallel()
            params,
            self._matrix(X.iloc[order]),
            labels[order],
            self.n_estimators,
            group_sizes=sizes,
            feature_name=self.columns_,
        )
        self.best_iteration_ = int(self.booster_.current_iteration())
        return self

    def score(self, X: pd.DataFrame) -> np.ndarray:
        return np.asarray(
            self.booster_.predict(
                self._matrix(X), num_iteration=self.best_iteration_, num_threads=self.num_threads
            ),
            np.float64,
        )


def staged_scores(model: Any, X: pd.DataFrame, step: int) -> list[tuple[int, np.ndarray]]:
    """A LightGBM model's ranking scores (raw, position 0) after every ``step`` trees: one pass
    over the trees, for choosing the tree count on the validation days."""
    if not isinstance(model, LambdaRank | LightGBMClick):
        raise TypeError(f"{type(model).__name__} has no trees to count")
    if POSITION_COLUMN in X.columns:
        X = X.assign(**{POSITION_COLUMN: 0.0})
    matrix = model._matrix(X)
    total = int(model.booster_.current_iteration())
    acc = np.zeros(len(X))
    out = []
    for start in range(0, total, step):
        n = min(step, total - start)
        acc = acc + model.booster_.predict(
            matrix, start_iteration=start, num_iteration=n, raw_score=True
        )
        out.append((start + n, acc.copy()))
    return out


def use_trees(model: Any, n_trees: int) -> Any:
    """Score with the first ``n_trees`` trees of a fitted LightGBM model (chosen on validation)."""
    if not isinstance(model, LambdaRank | LightGBMClick):
        raise TypeError(f"{type(model).__name__} has no trees to count")
    model.best_iteration_ = int(n_trees)
    return model


def score(model: Any, X: pd.DataFrame) -> np.ndarray:
    """The ranking score of every row, position set to 0 (the top slot)."""
    if POSITION_COLUMN in X.columns:
        X = X.assign(**{POSITION_COLUMN: 0.0})
    if isinstance(model, ClickEstimator):
        return np.asarray(model.predict_proba(X)[:, 1], np.float64)
    return np.asarray(model.score(X), np.float64)


def make_model(
    name: str,
    seed: int,
    n_estimators: int = 200,
    threads: int = 1,
    params: dict[str, Any] | None = None,
) -> Any:
    """A fresh model ``name``, with ``params`` (hyper-parameters chosen on validation) set."""
    model = _make(name, seed, n_estimators, threads)
    return model.set_params(**params) if params else model


def _make(name: str, seed: int, n_estimators: int, threads: int) -> Any:
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
            early_stopping_rounds=0,  # the tree count is chosen on the validation days
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


def fit_model(
    model: Any,
    X: pd.DataFrame,
    y: np.ndarray,
    group: np.ndarray,
    grade: np.ndarray | None = None,
) -> Any:
    """Fit any of the models: LambdaRank on its groups (and on ``grade`` when graded)."""
    if isinstance(model, LambdaRank):
        if model.graded:
            if grade is None:
                raise ValueError("a graded LambdaRank needs the grades (0 shown, 1 click, 2 reg)")
            return model.fit(X, grade, group)
        return model.fit(X, y, group)
    return model.fit(X, y)


def fit_rows(model: Any, rows: Rows) -> Any:
    return fit_model(model, rows.X, rows.y, rows.group, rows.grade)


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
