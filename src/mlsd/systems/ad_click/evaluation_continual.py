"""Ad click prediction, step 5 (continual learning): a model trained once against one retrained
every day, each scored on the next, unseen day.

Interests drift and new ads arrive every day, so the chapter keeps the model fresh. On the
simulated world this is measured: the same LightGBM recipe, trained once on the training days or
retrained daily on a sliding window as long as the first one, next to the oracle's NCE per day.
A file has no days, so this needs the world.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from mlsd import metrics as mm
from mlsd.models import ClickEstimator, LightGBMClick, NegativeDownsampled
from mlsd.report import Blueprint
from mlsd.rng import seed_of
from mlsd.runner import ProgressFn
from mlsd.systems.ad_click.evaluation import figure, predict
from mlsd.systems.ad_click.features_split import TrainingData
from mlsd.systems.ad_click.model import NEGATIVE_RATE

log = logging.getLogger(__name__)

RECIPE = "lightgbm (80 trees, learning rate 0.1), negative-downsampled"
SERIES = ("trained_once", "updated_daily", "oracle")


@dataclass(frozen=True)
class ContinualLearning:
    """Per evaluated day: the NCE of the model trained once, of the one updated daily, and of
    the oracle."""

    first_eval_day: int
    window_days: int
    days: Sequence[int]
    nce: Mapping[str, Sequence[float]]  # SERIES -> one NCE per day

    @property
    def mean_nce_gain(self) -> float:
        """How much daily updates lower NCE, on average over the evaluated days."""
        once, daily = np.asarray(self.nce["trained_once"]), np.asarray(self.nce["updated_daily"])
        return float(np.mean(once - daily))

    def metrics(self) -> dict[str, Any]:
        return {
            "continual_learning": {
                "model": RECIPE,
                "window_days": self.window_days,
                "day": list(self.days),
                **{k: list(v) for k, v in self.nce.items()},
                "mean_nce_gain": self.mean_nce_gain,
            }
        }


def compute_continual(
    data: TrainingData, seed: int, progress: ProgressFn | None = None
) -> ContinualLearning:
    """Replay the evaluation days: score a static and a daily-retrained model on each."""
    if data.days is None or data.p_true is None:
        raise ValueError("continual learning needs the world's days and true probabilities")
    X, y, days, p_true = data.X, data.y, data.days, data.p_true
    first_eval = int(days[data.split["validation"][0]])
    window = first_eval  # the daily model keeps a sliding window as long as the first one
    model_seed = seed_of(seed, "ad-click/continual-learning")

    def fit(lo: int, hi: int) -> ClickEstimator:
        idx = np.flatnonzero((days >= lo) & (days < hi))
        model = NegativeDownsampled(
            LightGBMClick(n_estimators=80, learning_rate=0.1, random_state=model_seed),
            rate=NEGATIVE_RATE,
            random_state=model_seed,
        )
        return model.fit(X.iloc[idx].reset_index(drop=True), y[idx])

    static = fit(0, first_eval)
    eval_days = list(range(first_eval, int(days.max()) + 1))
    nce: dict[str, list[float]] = {k: [] for k in SERIES}
    for i, d in enumerate(eval_days):
        if progress is not None:
            progress(f"day {d}", i, len(eval_days))
        daily = static if d == first_eval else fit(max(0, d - window), d)
        idx = np.flatnonzero(days == d)
        nce["trained_once"].append(
            mm.normalized_cross_entropy(y[idx], predict(static, X.iloc[idx]))
        )
        nce["updated_daily"].append(
            mm.normalized_cross_entropy(y[idx], predict(daily, X.iloc[idx]))
        )
        nce["oracle"].append(mm.normalized_cross_entropy(y[idx], p_true[idx]))
    return ContinualLearning(first_eval, window, eval_days, nce)


def report_continual(bp: Blueprint, result: ContinualLearning) -> None:
    """The blueprint's continual-learning section: the daily NCE table and its plot."""
    once, daily, oracle = (result.nce[k] for k in SERIES)
    bp.section("Continual learning")
    bp.text(
        f"Interests drift and new ads arrive every day. A model trained once on days "
        f"0–{result.first_eval_day - 1} is compared with one retrained every day on the last "
        f"{result.window_days} days (the same LightGBM recipe), each scored on the next, unseen "
        "day."
    )
    bp.table(
        ["day", "NCE, trained once", "NCE, updated daily", "NCE, oracle", "gain of daily updates"],
        [[d, s, u, o, s - u] for d, s, u, o in zip(result.days, once, daily, oracle, strict=True)],
    )
    fig, ax = figure(6.4, 3.4)
    for k in SERIES:
        ax.plot(result.days, result.nce[k], marker="o", label=k.replace("_", " "))
    ax.set(xlabel="simulated day", ylabel="NCE (lower is better)", title="Daily NCE")
    ax.legend(fontsize=8)
    bp.figure(fig, "continual_learning", "Daily NCE of a static and a daily-updated model.")
