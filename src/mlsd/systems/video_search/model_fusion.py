"""The learned fusion: LightGBM LambdaRank over the candidates of every retriever.

Each query's candidates (the union of the retrievers' top lists) are one group; the labels
are graded relevance (0-3) from raters on the training queries (the world's grades with rater
noise; on a real collection, its qrels). The gradient of each pair is weighted by the nDCG
change of swapping it (listwise), so the model learns how much to trust each retriever's
score given the query (its length, its out-of-vocabulary share) and the video (its text
length, freshness, popularity).
"""

from __future__ import annotations

from typing import Self

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator

from mlsd.engine_lightgbm import fit_booster
from mlsd.model_io import SavedAsData
from mlsd.models import check_feature_frame


class FusionRanker(SavedAsData, BaseEstimator):  # type: ignore[misc]
    """LambdaRank on the ``d_*`` columns; groups are the queries."""

    def __init__(
        self,
        n_estimators: int = 200,
        learning_rate: float = 0.05,
        num_leaves: int = 15,
        min_child_samples: int = 20,
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
            raise ValueError(f"FusionRanker: feature frame lacks columns {missing}")
        return X[self.columns_].to_numpy(np.float64)

    def fit(self, X: pd.DataFrame, y: np.ndarray, group: np.ndarray) -> Self:
        check_feature_frame(X)
        labels = np.asarray(y, np.int64)
        g = np.asarray(group)
        if len(g) != len(X) or len(labels) != len(X):
            raise ValueError(f"X has {len(X)} rows, y {len(labels)}, group {len(g)}")
        if len(labels) and (labels.min() < 0 or labels.max() > 30):
            raise ValueError("labels must be relevance grades in [0, 30]")
        order = np.argsort(g, kind="stable")
        _, sizes = np.unique(g[order], return_counts=True)
        self.columns_ = [c for c in X.columns if c.startswith("d_")]
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
        self.booster_ = fit_booster(  # data-parallel in a Ray engine's data_parallel()
            params,
            self._matrix(X.iloc[order]),
            labels[order],
            self.n_estimators,
            group_sizes=sizes,
            feature_name=self.columns_,
        )
        return self

    def score(self, X: pd.DataFrame) -> np.ndarray:
        if len(X) == 0:
            return np.zeros(0)
        return np.asarray(
            self.booster_.predict(self._matrix(X), num_threads=self.num_threads), np.float64
        )

    def importances(self) -> dict[str, float]:
        gain = self.booster_.feature_importance("gain")
        total = float(gain.sum()) or 1.0
        return {c: float(v) / total for c, v in zip(self.columns_, gain, strict=True)}
