"""Steps 3-5 on ``--data eventrec:DIR``: the four models on the challenge's rows, split by time.

Each user's test rows are their candidate events; every model ranks them and is scored with the
challenge's MAP@200 and with nDCG@10 (relevant: ``interested`` = 1), averaged over users with an
interested event. A file has no world: no oracle, no A/B test (recorded as skipped).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from mlsd.metrics import average_precision_at_k, mean_over_users
from mlsd.report import Blueprint
from mlsd.systems.event_rec.datasets import ChallengeData, ChallengeFiles
from mlsd.systems.event_rec.evaluation import ranking_metrics
from mlsd.systems.event_rec.model import MODELS, fit_model, make_model, score


@dataclass(frozen=True)
class ChallengeResult:
    source: str
    rows: int
    train_rows: int
    test_rows: int
    test_users: int
    positive_rate: float
    scores: dict[str, dict[str, float]]

    def metrics(self) -> dict[str, Any]:
        return {
            "data": {
                "source": self.source,
                "format": "eventrec",
                "rows": self.rows,
                "train_rows": self.train_rows,
                "test_rows": self.test_rows,
                "test_users": self.test_users,
                "positive_rate": self.positive_rate,
            },
            "models": {n: {"offline": m} for n, m in self.scores.items()},
            "oracle": None,
        }


def map_at(user: np.ndarray, event: np.ndarray, y: np.ndarray, s: np.ndarray, k: int) -> float:
    df = pd.DataFrame({"u": user, "e": event, "y": y, "s": s})
    df = df.sort_values(["u", "s"], ascending=[True, False], kind="stable")
    groups = [g for _, g in df.groupby("u")]
    recs = {int(g["u"].to_numpy()[0]): g["e"].tolist() for g in groups}
    truth = {int(g["u"].to_numpy()[0]): set(g.loc[g["y"] == 1, "e"].tolist()) for g in groups}
    return mean_over_users(average_precision_at_k, recs, truth, k)


def compute_challenge(
    files: ChallengeFiles, data: ChallengeData, seed: int, n_estimators: int
) -> ChallengeResult:
    tr, te = ~data.test, data.test
    X_train = data.X[tr].reset_index(drop=True)
    X_test = data.X[te].reset_index(drop=True)
    y_train = data.y[tr]
    if len(np.unique(y_train)) < 2:
        from mlsd.data import DataError

        raise DataError(
            files.root / "train.csv",
            "the training rows need both interested 0 and 1",
            field="interested",
        )
    scores = {}
    for name in MODELS:
        model = fit_model(make_model(name, seed, n_estimators), X_train, y_train, data.user[tr])
        s = score(model, X_test)
        r = ranking_metrics(data.user[te], data.y[te], s)
        m = map_at(data.user[te], data.event[te], data.y[te], s, 200)
        scores[name] = {
            "map@200": m,
            "ndcg@10": r.get("ndcg@10", math.nan),
            "mrr": r.get("mrr", math.nan),
            "users": r.get("sessions", 0),
        }
    return ChallengeResult(
        source=str(files.root),
        rows=len(data.y),
        train_rows=int(tr.sum()),
        test_rows=int(te.sum()),
        test_users=len(np.unique(data.user[te])),
        positive_rate=float(data.y.mean()),
        scores=scores,
    )


def report_challenge(bp: Blueprint, result: ChallengeResult) -> None:
    bp.text(
        f"{result.rows:,} rows of `train.csv` from {result.source}, split by time: "
        f"{result.train_rows:,} to train, {result.test_rows:,} to test ({result.test_users:,} "
        f"users); interested rate {result.positive_rate:.2%}. Each user's test events are ranked."
    )
    bp.table(
        ["model", "MAP@200", "nDCG@10", "MRR", "users"],
        [[n, s["map@200"], s["ndcg@10"], s["mrr"], s["users"]] for n, s in result.scores.items()],
    )
