"""Step 4 for people you may know: the models side by side.

* **No-ML baselines** (:class:`HeuristicScore`): rank candidates by one graph heuristic: common
  neighbours (mutual friends), Jaccard, Adamic–Adar, preferential attachment.
* **Logistic regression** (:class:`PairLogistic`) on the standardised pair features.
* **LightGBM** (:class:`mlsd.models.LightGBMClick`, the framework's one LightGBM) on the same.
* **GraphSAGE** (:class:`~mlsd.systems.people_you_may_know.model_gnn.GraphSAGELink`): node
  embeddings learned over the snapshot, scored on ``h_u ⊙ h_v`` and the pair features.
* **node2vec + LightGBM** (:mod:`~mlsd.systems.people_you_may_know.model_node2vec`): the
  Hadamard product of random-walk skip-gram embeddings next to the pair features.

Each model maps a pair feature frame (:data:`~mlsd.systems.people_you_may_know.features.FEATURES`)
to a score, higher = more likely to become friends (:func:`score`). Training pairs come from the
time split: features at ``t - Δ``, labels = friendships formed in ``[t - Δ, t)``.
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
from sklearn.linear_model import LogisticRegression

from mlsd.contracts import ModelCase, click_case
from mlsd.model_io import SavedAsData
from mlsd.models import ClickEstimator, LightGBMClick, as_proba, check_training_data, dense_columns
from mlsd.report import Blueprint
from mlsd.systems.people_you_may_know.features import Snapshot
from mlsd.systems.people_you_may_know.model_gnn import GraphSAGELink, describe
from mlsd.systems.people_you_may_know.model_node2vec import Node2VecLightGBM
from mlsd.world import Scale

log = logging.getLogger(__name__)

#: The no-ML baselines: name -> the feature column they rank by.
HEURISTICS = {
    "common_neighbours": "d_mutual",
    "jaccard": "d_jaccard",
    "adamic_adar": "d_adamic_adar",
    "preferential_attachment": "d_pref_attach",
}
BASELINE = "common_neighbours"
LEARNED = ("logistic_regression", "lightgbm", "graphsage", "node2vec_lightgbm")


class HeuristicScore(SavedAsData, BaseEstimator):  # type: ignore[misc]
    """A graph heuristic as a model: the score is one feature column (nothing is learned)."""

    def __init__(self, column: str = "d_mutual") -> None:
        self.column = column

    def fit(self, X: pd.DataFrame, y: np.ndarray | None = None) -> Self:
        if self.column not in X.columns:
            raise ValueError(f"HeuristicScore: the frame has no column {self.column!r}")
        self.fitted_ = True
        return self

    def score(self, X: pd.DataFrame) -> np.ndarray:
        return X[self.column].to_numpy(dtype=np.float64)


class PairLogistic(ClickEstimator):
    """Logistic regression on the standardised ``d_*`` columns."""

    def __init__(self, C: float = 1.0, max_iter: int = 300) -> None:
        self.C = C
        self.max_iter = max_iter

    def _matrix(self, X: pd.DataFrame) -> np.ndarray:
        m = X[self.columns_].to_numpy(dtype=np.float64)
        return (m - self.mean_) / self.scale_

    def fit(self, X: pd.DataFrame, y: np.ndarray) -> Self:
        labels = check_training_data(X, y)
        self.columns_ = dense_columns(X)
        m = X[self.columns_].to_numpy(dtype=np.float64)
        self.mean_ = m.mean(axis=0)
        self.scale_ = np.where(m.std(axis=0) > 0, m.std(axis=0), 1.0)
        self.lr_ = LogisticRegression(C=self.C, max_iter=self.max_iter).fit(self._matrix(X), labels)
        self.classes_ = np.array([0, 1])
        return self

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        return as_proba(self.lr_.predict_proba(self._matrix(X))[:, 1])


def score(
    model: Any, X: pd.DataFrame, pairs: tuple[Snapshot, np.ndarray, np.ndarray] | None = None
) -> np.ndarray:
    """Higher = more likely friends: a heuristic's column or a classifier's P(friends).
    ``pairs`` (the snapshot and the pairs' users ``u, v``) is what the GNN needs besides ``X``."""
    if len(X) == 0:  # a user with no candidate at all
        return np.zeros(0, np.float64)
    if isinstance(model, HeuristicScore):
        return model.score(X)
    if isinstance(model, GraphSAGELink | Node2VecLightGBM):
        if pairs is None:
            raise ValueError("the GNN scores pairs of a snapshot: pass pairs=(snap, u, v)")
        return model.score(pairs[0], pairs[1], pairs[2], X)
    return np.asarray(model.predict_proba(X))[:, 1]


SMALL_DATA_ROWS = 50_000


def min_leaf(rows: int, most: int) -> int:
    """Rows per leaf at least: ``most``, fewer on a few dozen training pairs (a small real
    graph), where 20 a leaf would leave LightGBM a constant."""
    return max(2, min(most, rows // 20))


def make_lightgbm(seed: int, rows: int) -> LightGBMClick:
    """LightGBM sized to the training pairs (a tiny world or a small edge list: fewer trees)."""
    small = rows < SMALL_DATA_ROWS
    return LightGBMClick(
        n_estimators=60 if small else 400,
        learning_rate=0.1 if small else 0.05,
        num_leaves=15 if small else 63,
        min_child_samples=min_leaf(rows, 20) if small else 100,
        random_state=seed,
        num_threads=1 if small else 2,  # two threads on two busy cores: LightGBM spins
    )


@dataclass(frozen=True)
class TrainedModels:
    """Every model, fitted on the training pairs, and what fitting measured."""

    models: dict[str, Any]
    train_seconds: dict[str, float]
    train_rows: int
    train_positive_rate: float

    def metrics(self) -> dict[str, Any]:
        models: dict[str, dict[str, Any]] = {
            name: {"train_seconds": round(self.train_seconds[name], 3)} for name in self.models
        }
        gnn = self.models.get("graphsage")
        if isinstance(gnn, GraphSAGELink):
            models["graphsage"] |= describe(gnn)
        return {
            "models": models,
            "features": {
                "train_rows": self.train_rows,
                "train_positive_rate": self.train_positive_rate,
            },
        }


BIG_GRAPH_NODES = 200_000
FULL_GRAPH_PASSES = 8  # per epoch on a big graph: every step embeds the whole graph


def make_gnn(seed: int, rows: int, nodes: int = 0) -> GraphSAGELink:
    """GraphSAGE sized to the training pairs; on a graph of more than
    :data:`BIG_GRAPH_NODES` nodes, batches so big that an epoch embeds the whole graph only
    :data:`FULL_GRAPH_PASSES` times (full-batch: a step's cost grows with the graph)."""
    small = rows < SMALL_DATA_ROWS
    big = nodes > BIG_GRAPH_NODES
    return GraphSAGELink(
        dim=16 if small else 32,
        epochs=6 if small else 3,
        batch_size=1024 if small else max(16384, -(-rows // FULL_GRAPH_PASSES) if big else 0),
        lr=5e-3 if small else 1e-2,
        num_threads=1 if small else 2,
        seed=seed,
    )


def train_models(
    X: pd.DataFrame,
    y: np.ndarray,
    seed: int,
    pairs: tuple[Snapshot, np.ndarray, np.ndarray] | None = None,
) -> TrainedModels:
    """Every model on the training pairs; the GNN only with ``pairs`` (the snapshot and the
    pairs' users)."""
    models: dict[str, Any] = {}
    seconds: dict[str, float] = {}
    for name, column in HEURISTICS.items():
        t0 = time.perf_counter()
        models[name] = HeuristicScore(column).fit(X, y)
        seconds[name] = time.perf_counter() - t0
    for name, model in (
        ("logistic_regression", PairLogistic()),
        ("lightgbm", make_lightgbm(seed, len(y))),
    ):
        t0 = time.perf_counter()
        models[name] = model.fit(X, y)
        seconds[name] = time.perf_counter() - t0
        log.info("pymk: %s trained in %.1f s", name, seconds[name])
    if pairs is not None:
        t0 = time.perf_counter()
        gnn = make_gnn(seed, len(y), pairs[0].n)
        models["graphsage"] = gnn.fit(pairs[0], pairs[1], pairs[2], X, y)
        seconds["graphsage"] = time.perf_counter() - t0
        log.info("pymk: graphsage trained in %.1f s", seconds["graphsage"])
        t0 = time.perf_counter()
        small = len(y) < SMALL_DATA_ROWS
        n2v = Node2VecLightGBM(
            dim=16 if small else 32,
            n_estimators=60 if small else 300,
            min_child_samples=min_leaf(len(y), 50),
            num_threads=1 if small else 2,
            seed=seed,
        )
        models["node2vec_lightgbm"] = n2v.fit(pairs[0], pairs[1], pairs[2], X, y)
        seconds["node2vec_lightgbm"] = time.perf_counter() - t0
        log.info("pymk: node2vec + lightgbm trained in %.1f s", seconds["node2vec_lightgbm"])
    return TrainedModels(models, seconds, len(y), float(np.mean(y)) if len(y) else 0.0)


def report_models(bp: Blueprint, result: TrainedModels) -> None:
    bp.section("Model development")
    bp.text(
        f"Trained on {result.train_rows:,} (user, candidate) pairs of the training split "
        f"(positive rate {result.train_positive_rate:.2%}). The no-ML baselines rank by one graph "
        "heuristic each; logistic regression and LightGBM learn from every pair feature; the "
        "GraphSAGE network adds node embeddings learned over the snapshot's friendships "
        "(scored on the Hadamard product of the two users' embeddings and the pair features); "
        "node2vec + LightGBM adds the Hadamard product of the two users' random-walk skip-gram "
        "embeddings (fitted on each snapshot it scores, rotated onto the training snapshot's "
        "coordinates by orthogonal Procrustes)."
    )
    bp.table(
        ["model", "kind", "train seconds"],
        [
            [
                n,
                "heuristic (no ML)" if n in HEURISTICS else "learned",
                round(result.train_seconds[n], 3),
            ]
            for n in result.models
        ],
    )


# ---- the contract ------------------------------------------------------------------------------
def _pair_data() -> tuple[pd.DataFrame, np.ndarray]:
    """Pair features and labels of a tiny world's time split."""
    data = _graph_pair_data()
    return data[3], data[4]


GraphPairs = tuple[Snapshot, np.ndarray, np.ndarray, pd.DataFrame, np.ndarray]


def _graph_pair_data() -> GraphPairs:
    """The snapshot, the candidate pairs, their features and labels of a tiny world."""
    from mlsd.systems.people_you_may_know.features import (
        Snapshot,
        candidates,
        label_pairs,
        labels_of,
        pair_features,
    )
    from mlsd.systems.people_you_may_know.world import PymkConfig, PymkWorld

    world = PymkWorld(Scale.TINY, 0, PymkConfig.for_scale(Scale.TINY).with_(n_initial=150))
    t = world.config.n_days - world.config.window
    snap = Snapshot.at(world.public_users, world.edges, t)
    q = np.flatnonzero(snap.present)[:80]
    pairs = candidates(snap, q, seed=0)
    y = labels_of(pairs, label_pairs(world.edges, t, world.config.n_days, snap.present), snap.n)
    u, v = pairs["u"].to_numpy(), pairs["v"].to_numpy()
    return snap, u, v, pair_features(snap, u, v), y


def _ranker_case(name: str, make: Any) -> ModelCase:
    return ModelCase(
        name=name,
        kind="ranker",
        make=make,
        data=_pair_data,
        fit=lambda m, d: m.fit(d[0], d[1]),
        output=lambda m, d: score(m, d[0]),
        shape=lambda m, d: (len(d[0]),),
        save=lambda m, path: m.save(path),
        load=lambda path: type(make(0)).load(path),
    )


def contract_cases() -> list[ModelCase]:
    """The heuristic baseline, logistic regression, LightGBM and the GNN on tiny pair data
    (rankers), and logistic regression as a click estimator on the framework's click data."""
    return [
        _ranker_case("pymk_adamic_adar", lambda seed: HeuristicScore("d_adamic_adar")),
        _ranker_case("pymk_logistic", lambda seed: PairLogistic()),
        _ranker_case("pymk_lightgbm", lambda seed: make_lightgbm(seed, 0)),
        click_case("pymk_logistic_click", lambda seed: PairLogistic()),
        ModelCase(
            name="pymk_graphsage",
            kind="ranker",
            make=lambda seed: GraphSAGELink(dim=8, epochs=2, batch_size=512, seed=seed),
            data=_graph_pair_data,
            fit=lambda m, d: m.fit(d[0], d[1], d[2], d[3], d[4]),
            output=lambda m, d: m.score(d[0], d[1], d[2], d[3]),
            shape=lambda m, d: (len(d[3]),),
            save=lambda m, path: m.save(path),
            load=GraphSAGELink.load,
            atol=1e-6,
        ),
        ModelCase(
            name="pymk_node2vec_lightgbm",
            kind="ranker",
            make=lambda seed: Node2VecLightGBM(dim=8, n_estimators=20, num_threads=1, seed=seed),
            data=_graph_pair_data,
            fit=lambda m, d: m.fit(d[0], d[1], d[2], d[3], d[4]),
            output=lambda m, d: m.score(d[0], d[1], d[2], d[3]),
            shape=lambda m, d: (len(d[3]),),
            save=lambda m, path: m.save(path),
            load=Node2VecLightGBM.load,
        ),
    ]
