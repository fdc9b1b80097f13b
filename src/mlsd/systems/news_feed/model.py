"""Step 4: the chapter's rankers side by side, each predicting the reactions of a (user, post).

* **multi_task**: the shared-bottom network of :mod:`.model_multitask` (one head per reaction,
  dwell time a regression head);
* **per_head_lightgbm**: independent single-task models, one :class:`mlsd.models.LightGBMClick`
  per binary reaction and a LightGBM regressor of ``log(1 + dwell)`` (:class:`LightGBMDwell`);
* **any_engagement**: one classifier of "any positive engagement" (click, like, comment or
  share), the single-task baseline the chapter starts from: it has no heads to weigh, so it
  ranks by its one probability.

The two multi-head rankers rank by the weighted engagement score
(:class:`~.world_config.EngagementWeights`). The logged slot (``d_position``) is a training
feature set to 0 when ranking, so the log's position bias is learned and then removed.
:func:`contract_cases` puts every model under the contract of :mod:`mlsd.contracts`.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any, Self

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator

from mlsd.contracts import ModelCase, click_case, click_frame
from mlsd.model_io import SavedAsData
from mlsd.models import (
    LightGBMClick,
    check_feature_frame,
)
from mlsd.report import Blueprint
from mlsd.rng import seed_of
from mlsd.systems.news_feed.model_multitask import MultiTaskRanker
from mlsd.systems.news_feed.world_config import (
    BINARY_HEADS,
    DEFAULT_WEIGHTS,
    HEADS,
    POSITIVE_ENGAGEMENT,
    EngagementWeights,
)

log = logging.getLogger(__name__)

MODELS = ("multi_task", "per_head_lightgbm", "any_engagement")
SINGLE = "any_engagement"  # the A/B test's control
NUM_LEAVES = 15


class LightGBMDwell(LightGBMClick):
    """LightGBM regression of ``log(1 + dwell seconds)``; ``predict_dwell`` gives expected
    seconds (``expm1`` times a smearing factor fitted on the training rows). The feature
    handling is :class:`~mlsd.models.LightGBMClick`'s."""

    def fit(self, X: pd.DataFrame, y: np.ndarray) -> Self:
        target = np.asarray(y, np.float64)
        if target.shape != (len(X),) or len(X) == 0 or not np.all(target >= 0):
            raise ValueError("LightGBMDwell: y must hold one non-negative dwell time per row")
        self._code_columns(X)
        self._train(
            self._matrix(X), np.log1p(target), {**self._params(), "objective": "regression"}
        )
        self.classes_ = np.array([0, 1])
        raw = np.expm1(self._log_dwell(X))
        self.smearing_ = float(target.mean() / max(float(np.maximum(raw, 0).mean()), 1e-9))
        return self

    def _log_dwell(self, X: pd.DataFrame) -> np.ndarray:
        return np.asarray(
            self.booster_.predict(
                self._matrix(X), num_iteration=self.best_iteration_, num_threads=self.num_threads
            ),
            np.float64,
        )

    def predict_dwell(self, X: pd.DataFrame) -> np.ndarray:
        return np.maximum(np.expm1(self._log_dwell(X)), 0.0) * self.smearing_


def _same_columns(a: LightGBMClick, b: LightGBMClick) -> bool:
    """Whether two fitted LightGBM models read the same feature matrix."""
    return bool(
        a.feature_names_ == b.feature_names_
        and all(np.array_equal(a.categories_[c], b.categories_[c]) for c in a.categories_)
    )


class PerHeadLightGBM(SavedAsData, BaseEstimator):  # type: ignore[misc]
    """Independent single-task models: one LightGBM per reaction and one for dwell."""

    def __init__(
        self,
        n_estimators: int = 300,
        learning_rate: float = 0.05,
        num_leaves: int = NUM_LEAVES,
        random_state: int = 0,
        num_threads: int = 1,
    ) -> None:
        self.n_estimators = n_estimators
        self.learning_rate = learning_rate
        self.num_leaves = num_leaves
        self.random_state = random_state
        self.num_threads = num_threads

    def _params(self, head: str) -> dict[str, Any]:
        return {
            "n_estimators": self.n_estimators,
            "learning_rate": self.learning_rate,
            "num_leaves": self.num_leaves,
            "min_child_samples": 50,
            "early_stopping_rounds": 30,
            "num_threads": self.num_threads,
            "random_state": seed_of(self.random_state, f"news-feed/per-head/{head}"),
        }

    def fit(self, X: pd.DataFrame, Y: np.ndarray) -> Self:
        check_feature_frame(X)
        Y = np.asarray(Y, np.float64)
        if Y.shape != (len(X), len(HEADS)):
            raise ValueError(f"Y must be (n, {len(HEADS)}) in HEADS order, got {Y.shape}")
        self.heads_: dict[str, LightGBMClick] = {}
        for j, head in enumerate(BINARY_HEADS):
            y = Y[:, j].astype(np.int64)
            if y.min() == y.max():  # a reaction never (or always) seen: a constant model
                y = y.copy()
                y[0] = 1 - y[0]
            self.heads_[head] = LightGBMClick(**self._params(head)).fit(X, y)
        self.dwell_ = LightGBMDwell(**self._params("dwell")).fit(X, Y[:, -1])
        return self

    def predict_heads(self, X: pd.DataFrame) -> np.ndarray:
        # every head was fitted on the same frame: one feature matrix serves all seven (a head
        # whose columns came out different gets its own)
        matrix = self.dwell_._matrix(X)
        probs = [
            m.booster_.predict(
                matrix if _same_columns(m, self.dwell_) else m._matrix(X),
                num_iteration=m.best_iteration_,
                num_threads=m.num_threads,
            )
            for m in (self.heads_[h] for h in BINARY_HEADS)
        ]
        dwell = self.dwell_.booster_.predict(
            matrix, num_iteration=self.dwell_.best_iteration_, num_threads=self.num_threads
        )
        expected = np.maximum(np.expm1(np.asarray(dwell, np.float64)), 0.0) * self.dwell_.smearing_
        return np.column_stack([*probs, expected])


def any_engagement(Y: np.ndarray) -> np.ndarray:
    """The single classifier's label: any of click, like, comment or share."""
    cols = [HEADS.index(h) for h in POSITIVE_ENGAGEMENT]
    return np.asarray(np.asarray(Y)[:, cols].max(axis=1) > 0, np.int64)


def at_top(X: pd.DataFrame) -> pd.DataFrame:
    """The frame as if every post were shown in the top slot (the position feature set to 0)."""
    return X.assign(d_position=0.0) if "d_position" in X.columns else X


def predict_heads(model: Any, X: pd.DataFrame) -> np.ndarray | None:
    """``(n, 7)`` head predictions of a multi-head model; None for the single classifier."""
    if isinstance(model, MultiTaskRanker | PerHeadLightGBM):
        return np.asarray(model.predict_heads(X))
    return None


def ranking_score(
    model: Any, X: pd.DataFrame, weights: EngagementWeights = DEFAULT_WEIGHTS
) -> np.ndarray:
    """The ranking score of every row at the top slot: the weighted engagement score of the
    predicted heads, or the single classifier's probability."""
    Xt = at_top(X)
    heads = predict_heads(model, Xt)
    if heads is not None:
        return weights.score(heads)
    return np.asarray(model.predict_proba(Xt)[:, 1], np.float64)


def make_model(name: str, seed: int, n_estimators: int = 300, epochs: int = 8) -> Any:
    if name == "multi_task":
        return MultiTaskRanker(epochs=epochs, random_state=seed_of(seed, "news-feed/multitask"))
    if name == "per_head_lightgbm":
        return PerHeadLightGBM(n_estimators=n_estimators, random_state=seed)
    if name == "any_engagement":
        return LightGBMClick(
            n_estimators=n_estimators,
            learning_rate=0.05,
            num_leaves=NUM_LEAVES,
            min_child_samples=50,
            num_threads=1,
            random_state=seed_of(seed, "news-feed/any-engagement"),
        )
    raise ValueError(f"unknown news-feed model {name!r}; the models are {MODELS}")


def fit_model(model: Any, X: pd.DataFrame, Y: np.ndarray) -> Any:
    if isinstance(model, MultiTaskRanker | PerHeadLightGBM):
        return model.fit(X, Y)
    return model.fit(X, any_engagement(Y))


@dataclass(frozen=True)
class TrainedModels:
    models: dict[str, Any]
    train_seconds: dict[str, float]
    rows: int

    def metrics(self) -> dict[str, Any]:
        return {
            "models": {
                n: {"train_seconds": round(s, 3), "train_rows": self.rows}
                for n, s in self.train_seconds.items()
            }
        }


def train_models(
    X: pd.DataFrame, Y: np.ndarray, seed: int, n_estimators: int = 300, epochs: int = 8
) -> TrainedModels:
    models, seconds = {}, {}
    for name in MODELS:
        t0 = time.perf_counter()
        models[name] = fit_model(make_model(name, seed, n_estimators, epochs), X, Y)
        seconds[name] = time.perf_counter() - t0
        log.info("news-feed: trained %s in %.1f s", name, seconds[name])
    return TrainedModels(models, seconds, len(Y))


def report_models(bp: Blueprint, result: TrainedModels, weights: EngagementWeights) -> None:
    bp.text(
        "Three rankers: the **multi-task** network (a shared bottom of two ReLU layers over the "
        "dense features and embeddings of the categoricals, one small head per reaction, dwell "
        "time as a regression head on log seconds; the loss sums the six cross-entropies and "
        "half the dwell head's squared error), **independent per-reaction LightGBM** models "
        "(six classifiers and a dwell regressor) and a **single 'any engagement' classifier** "
        "(LightGBM on click, like, comment or share). The multi-head rankers order posts by the "
        "**weighted engagement score** `sum_r w_r P(r) + w_dwell E[dwell s]`; the single "
        f"classifier by its probability. Trained on {result.rows:,} logged impressions "
        "(training days only)."
    )
    bp.table(["reaction", "weight"], [[k, v] for k, v in weights.to_dict().items()])
    bp.table(
        ["model", "train seconds"], [[n, round(s, 2)] for n, s in result.train_seconds.items()]
    )


# ---- the contract ---------------------------------------------------------------------------
HeadData = tuple[pd.DataFrame, np.ndarray]


def _head_data() -> HeadData:
    X, y = click_frame(1500, 0)
    r = np.random.default_rng(5)
    x1 = X["d_x1"].to_numpy()
    Y = np.column_stack(
        [y]
        + [
            (r.random(len(y)) < 1 / (1 + np.exp(-(x1 - k)))).astype(np.float64)
            for k in (1, 2, 2.5, 3, 3.5)
        ]
        + [np.exp(1 + 0.5 * x1 + r.normal(0, 0.5, len(y)))]
    )
    return X, Y


def _heads_case(name: str, make: Any) -> ModelCase:
    return ModelCase(
        name=name,
        kind="ranker",
        make=make,
        data=_head_data,
        fit=lambda m, d: m.fit(d[0], d[1]),
        output=lambda m, d: m.predict_heads(d[0]),
        shape=lambda m, d: (len(d[0]), len(HEADS)),
        save=lambda m, path: m.save(path),
        load=lambda path: make(0).load(path),
    )


def contract_cases() -> list[ModelCase]:
    return [
        _heads_case(
            "news_feed_multi_task",
            lambda s: MultiTaskRanker(hidden=(16,), head=8, epochs=2, random_state=s),
        ),
        _heads_case(
            "news_feed_per_head_lightgbm",
            lambda s: PerHeadLightGBM(n_estimators=15, random_state=s),
        ),
        click_case(
            "news_feed_any_engagement",
            lambda s: LightGBMClick(n_estimators=30, num_threads=1, random_state=s),
        ),
    ]
