"""Steps 3-5 on ``--data eventrec:DIR``: the five models on the challenge's rows, split by time.

The earliest three fifths of ``train.csv``'s rows train, the next fifth validates, the last fifth
tests (:mod:`.datasets_features`). Every hyper-parameter and tree count is chosen on the
validation rows with :func:`~.model_selection.select_models` (LambdaRank's query groups are the
requests: the events a user was shown at one timestamp), the models are refit on training +
validation rows, and each user's test events are ranked once: the challenge's MAP@200 and
nDCG@10 (relevant: ``interested`` = 1), averaged over users with an interested event. The same
pointwise LightGBM with ``event_attendees.csv``'s snapshot counts added shows what that leak
would report. A file has no world: no oracle, no A/B test (recorded as skipped).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from mlsd.data import DataError
from mlsd.metrics import average_precision_at_k, mean_over_users
from mlsd.report import Blueprint
from mlsd.systems.event_rec.datasets import ChallengeFiles
from mlsd.systems.event_rec.datasets_features import (
    TEST,
    TRAIN,
    VAL,
    ChallengeData,
    snapshot_features,
)
from mlsd.systems.event_rec.evaluation import EvalSet, ranking_metrics
from mlsd.systems.event_rec.features import TrainingData
from mlsd.systems.event_rec.model import MODELS, fit_model, make_model, score
from mlsd.systems.event_rec.model_selection import select_models


@dataclass(frozen=True)
class ChallengeResult:
    source: str
    rows: int
    split_rows: dict[str, int]
    test_users: int
    positive_rate: float
    home_from_profile: float
    chosen: str
    params: dict[str, dict[str, Any]]
    validation: dict[str, dict[str, float]]
    scores: dict[str, dict[str, float]]
    leak: dict[str, float]  # the pointwise model with and without the snapshot counts

    def metrics(self) -> dict[str, Any]:
        return {
            "data": {
                "source": self.source,
                "format": "eventrec",
                "rows": self.rows,
                "split_rows": self.split_rows,
                "test_users": self.test_users,
                "positive_rate": self.positive_rate,
                "home_from_profile": self.home_from_profile,
            },
            "models": {
                n: {
                    "offline": m,
                    "validation": self.validation[n],
                    "hyperparameters": {
                        k: list(v) if isinstance(v, tuple) else v for k, v in self.params[n].items()
                    },
                }
                for n, m in self.scores.items()
            },
            "chosen_model": self.chosen,
            "selection": {"chosen_on": "validation", "chosen": self.chosen},
            "snapshot_leak": self.leak,
            "oracle": None,
        }


def map_at(user: np.ndarray, event: np.ndarray, y: np.ndarray, s: np.ndarray, k: int) -> float:
    df = pd.DataFrame({"u": user, "e": event, "y": y, "s": s})
    df = df.sort_values(["u", "s"], ascending=[True, False], kind="stable")
    groups = [g for _, g in df.groupby("u")]
    recs = {int(g["u"].to_numpy()[0]): g["e"].tolist() for g in groups}
    truth = {int(g["u"].to_numpy()[0]): set(g.loc[g["y"] == 1, "e"].tolist()) for g in groups}
    return mean_over_users(average_precision_at_k, recs, truth, k)


def _training_data(data: ChallengeData) -> TrainingData:
    return TrainingData(
        X=data.X,
        y=data.y,
        grade=data.grade,
        session=data.request,
        day=data.split,
        p_true=np.full(len(data.y), np.nan),
        train_days=(TRAIN,),
        val_days=(VAL,),
        test_days=(TEST,),
    )


def _eval_set(data: ChallengeData, part: int) -> EvalSet:
    """The rows of one part as ranking lists, one per user (the challenge's unit)."""
    m = data.split == part
    n = int(m.sum())
    X = data.X[m].reset_index(drop=True)
    return EvalSet(
        X=X,
        session=data.user[m],
        user=data.user[m],
        event=data.event[m],
        p_true=np.full(n, np.nan),
        y=data.y[m],
        kept=np.ones(n, bool),
        km=X["d_dist_km"].to_numpy(),
        hours=X["d_hours_until"].to_numpy(),
        no_friends=X["d_n_friends"].to_numpy() == 0,
        new_event=np.zeros(n, bool),
        day=np.full(n, part, np.int64),
    )


def _scores(data: ChallengeData, s: np.ndarray) -> dict[str, float]:
    te = data.split == TEST
    r = ranking_metrics(data.user[te], data.y[te], s)
    return {
        "map@200": map_at(data.user[te], data.event[te], data.y[te], s, 200),
        "ndcg@10": r.get("ndcg@10", math.nan),
        "mrr": r.get("mrr", math.nan),
        "users": r.get("sessions", 0),
    }


def compute_challenge(
    files: ChallengeFiles, data: ChallengeData, seed: int, n_estimators: int
) -> ChallengeResult:
    parts = {"train": TRAIN, "validation": VAL, "test": TEST}
    for name, part in parts.items():
        labels = data.y[data.split == part]
        if name == "train" and len(np.unique(labels)) < 2:
            raise DataError(
                files.root / "train.csv",
                "the training rows (the earliest three fifths) need both interested 0 and 1",
                field="interested",
            )
        if not len(labels):
            raise DataError(files.root / "train.csv", f"no {name} rows after the split by time")
    sel = select_models(_training_data(data), _eval_set(data, VAL), seed, n_estimators)
    X_test = data.X[data.split == TEST].reset_index(drop=True)
    scores = {n: _scores(data, score(sel.models[n], X_test)) for n in MODELS}
    snap = snapshot_features(files, data)
    fit = data.split != TEST
    leaky = fit_model(
        make_model("lightgbm_pointwise", seed, params=sel.params["lightgbm_pointwise"]),
        snap[fit].reset_index(drop=True),
        data.y[fit],
        data.request[fit],
    )
    leak_scores = _scores(data, score(leaky, snap[data.split == TEST].reset_index(drop=True)))
    return ChallengeResult(
        source=str(files.root),
        rows=len(data.y),
        split_rows={k: int((data.split == v).sum()) for k, v in parts.items()},
        test_users=len(np.unique(data.user[data.split == TEST])),
        positive_rate=float(data.y.mean()),
        home_from_profile=data.home_from_profile,
        chosen=sel.chosen,
        params=sel.params,
        validation=sel.validation,
        scores=scores,
        leak={
            "point_in_time_map@200": scores["lightgbm_pointwise"]["map@200"],
            "with_snapshot_map@200": leak_scores["map@200"],
            "point_in_time_ndcg@10": scores["lightgbm_pointwise"]["ndcg@10"],
            "with_snapshot_ndcg@10": leak_scores["ndcg@10"],
        },
    )


def report_challenge(bp: Blueprint, result: ChallengeResult) -> None:
    r = result.split_rows
    bp.text(
        f"{result.rows:,} rows of `train.csv` from {result.source}, split by time: "
        f"{r['train']:,} to train, {r['validation']:,} to validate (every choice), "
        f"{r['test']:,} to test ({result.test_users:,} users); interested rate "
        f"{result.positive_rate:.2%}. Homes come from users.csv's location for "
        f"{result.home_from_profile:.0%} of the rows (else the events seen before). Every "
        "attendee and social count is point-in-time (timestamped rows strictly before the row). "
        f"Chosen on validation: **{result.chosen}**. Each user's test events are ranked once."
    )
    bp.table(
        ["model", "validation nDCG@10", "MAP@200", "nDCG@10", "MRR", "users"],
        [
            [n, result.validation[n]["ndcg@10"], s["map@200"], s["ndcg@10"], s["mrr"], s["users"]]
            for n, s in result.scores.items()
        ],
        caption="Test rows (the last fifth by time); validation nDCG@10 chose the settings",
    )
    lk = result.leak
    bp.text(
        "**The snapshot leak.** `event_attendees.csv` lists who answered as of the dump, after "
        "every row and with each user's own answer; it is not a feature. The same pointwise "
        f"LightGBM with its counts added would report MAP@200 {lk['with_snapshot_map@200']:.4f} "
        f"instead of {lk['point_in_time_map@200']:.4f} (nDCG@10 "
        f"{lk['with_snapshot_ndcg@10']:.4f} vs {lk['point_in_time_ndcg@10']:.4f})."
    )
