"""Step 5, continual learning: a ranker retrained every day vs one trained once.

Events are new every day and the seasons turn, so yesterday's registrations carry news. On each
test day the frozen model (fit once on the training + validation days) and a model retrained on
every logged day before that day (same hyper-parameters, chosen on validation) rank the same
labelled candidates; the daily gain in nDCG@10 is the value of retraining daily.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from mlsd.report import Blueprint
from mlsd.systems.event_rec.evaluation import EvalSet, ranking_metrics
from mlsd.systems.event_rec.features import TrainingData, rows_of
from mlsd.systems.event_rec.model import fit_rows, make_model, score


@dataclass(frozen=True)
class ContinualLearning:
    model: str
    daily: list[dict[str, float]]  # day, frozen and retrained nDCG@10 / MAP@10, gain

    def metrics(self) -> dict[str, Any]:
        gains = [d["ndcg_gain"] for d in self.daily]
        return {
            "continual_learning": {
                "model": self.model,
                "daily": self.daily,
                "mean_ndcg_gain": float(np.mean(gains)) if gains else None,
            }
        }


def compute_continual(
    data: TrainingData,
    ev: EvalSet,
    frozen: Any,
    name: str,
    params: dict[str, Any],
    seed: int,
    progress: Any = None,
) -> ContinualLearning:
    """``frozen`` (fit on training + validation days) vs ``name`` with the same ``params``
    (chosen on validation) refit before each test day on every day logged before it."""
    rows = []
    for i, day in enumerate(data.test_days):
        past = tuple(int(d) for d in np.unique(data.day[data.day < day]))
        model = fit_rows(make_model(name, seed, params=params), rows_of(data, past))
        m = ev.kept & (ev.day == day)
        X = ev.X[m].reset_index(drop=True)
        old = ranking_metrics(ev.session[m], ev.y[m], score(frozen, X))
        new = ranking_metrics(ev.session[m], ev.y[m], score(model, X))
        rows.append(
            {
                "day": int(day),
                "days_since_training": int(day - data.test_days[0] + 1),
                "frozen_ndcg@10": old.get("ndcg@10", float("nan")),
                "retrained_ndcg@10": new.get("ndcg@10", float("nan")),
                "frozen_map@10": old.get("map@10", float("nan")),
                "retrained_map@10": new.get("map@10", float("nan")),
                "ndcg_gain": new.get("ndcg@10", float("nan")) - old.get("ndcg@10", float("nan")),
                "sessions": old.get("sessions", 0),
            }
        )
        if progress is not None:
            progress("continual learning", i + 1, len(data.test_days))
    return ContinualLearning(name, rows)


def report_continual(bp: Blueprint, result: ContinualLearning) -> None:
    bp.text(
        f"**{result.model}** fit once on the training + validation days vs refit before each "
        "test day on every day logged before it, ranking the same labelled candidates:"
    )
    cols = [
        "day",
        "frozen_ndcg@10",
        "retrained_ndcg@10",
        "ndcg_gain",
        "frozen_map@10",
        "retrained_map@10",
        "sessions",
    ]
    bp.table(cols, [[d[c] for c in cols] for d in result.daily])
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3))
    days = [d["day"] for d in result.daily]
    ax.plot(days, [d["ndcg_gain"] for d in result.daily], marker="o")
    ax.axhline(0.0, color="grey", lw=0.8)
    ax.set_xlabel("test day")
    ax.set_ylabel("nDCG@10 gain of daily retraining")
    bp.figure(fig, "continual_gain", "Daily gain of the retrained model over the frozen one")
