"""Step 7 for similar listings, simulated: the daily retrain against a model trained once.

The chapter retrains the embeddings every day, because new listings appear and what guests
book drifts with the season. The simulation replays the last days of the world: for each day
``d`` of the curve a *daily* model is trained on the sessions of days ``<= d`` and evaluated on
day ``d + 1`` (the booked-listing rank and next-click HR@10, :func:`.evaluation.score_model`),
while the *static* model is trained once, on the days up to the first day of the curve, and
meets later days with only the cold-start vectors for the listings that appeared since
(:meth:`.model_skipgram.SkipGramEmbeddings.with_listings`). Every model sees only the listings that
exist on the day it is evaluated. The cost of each retrain (seconds on one core) is reported.

The curve reuses the chosen model's hyper-parameters (chosen on the validation days); it
trains on later days than the offline evaluation's training set, so it is a simulation of
operations, not a model choice.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from mlsd.report import Blueprint
from mlsd.systems.similar_listings.evaluation import K, build_cases, score_model
from mlsd.systems.similar_listings.features import Sessions
from mlsd.systems.similar_listings.model_skipgram import SkipGramEmbeddings

CURVE_DAYS = 4
MAX_CASES = 5_000


@dataclass(frozen=True)
class RetrainCurve:
    """One row per evaluated day: the static and the daily model's figures."""

    rows: list[dict[str, Any]]
    static_trained_through: int
    #: the daily models of the last two days (yesterday's, today's), for the drift monitors
    last_models: tuple[SkipGramEmbeddings, ...] = field(default=(), repr=False, compare=False)

    def metrics(self) -> dict[str, Any]:
        return {
            "daily_retrain": {
                "static_trained_through_day": self.static_trained_through,
                "days": self.rows,
            }
        }

    def mean(self, key: str) -> float:
        vals = [r[key] for r in self.rows if r[key] is not None]
        return float(np.mean(vals)) if vals else float("nan")


def _figures(
    model: SkipGramEmbeddings, day: Sessions, n: int, region: np.ndarray, seed: int
) -> tuple[float | None, float | None]:
    cases = build_cases(day, seed, MAX_CASES)
    s = score_model(model, cases, region[:n], ~model.trained_[:n])
    return s["booked_rank"], s[f"next_hr@{K}"]


def daily_retrain_curve(
    sessions: Sessions,
    listings: pd.DataFrame,
    params: dict[str, Any],
    last_day: int,
    seed: int,
    days: int = CURVE_DAYS,
    progress: Callable[[str, float, float], None] | None = None,
) -> RetrainCurve:
    """Train on days ``<= d``, evaluate on ``d + 1`` for the ``days`` days ending at
    ``last_day`` (the last evaluated day), daily against static; the last two daily models
    are kept for the drift monitors."""
    region = listings["region"].to_numpy()
    created = listings["created_day"].to_numpy()
    first = max(last_day - days, 0)
    static: SkipGramEmbeddings | None = None
    rows: list[dict[str, Any]] = []
    daily_models: list[SkipGramEmbeddings] = []
    for i, d in enumerate(range(first, last_day)):
        if progress is not None:
            progress("daily retrain", i, last_day - first)
        n_train = int((created <= d).sum())
        n_eval = int((created <= d + 1).sum())
        train = sessions.subset(sessions.day <= d)
        t0 = time.perf_counter()
        daily = SkipGramEmbeddings(**params).fit(train, listings.iloc[:n_train])
        seconds = time.perf_counter() - t0
        daily_models = [*daily_models[-1:], daily]
        if static is None:
            static = daily
        test = sessions.subset(sessions.day == d + 1)
        ext_daily = daily.with_listings(listings.iloc[:n_eval])
        ext_static = static.with_listings(listings.iloc[:n_eval])
        d_rank, d_hr = _figures(ext_daily, test, n_eval, region, seed)
        s_rank, s_hr = _figures(ext_static, test, n_eval, region, seed)
        rows.append(
            {
                "trained_through_day": d,
                "eval_day": d + 1,
                "new_listings_since_static": n_eval - static.n_listings_,
                "static_booked_rank": s_rank,
                "daily_booked_rank": d_rank,
                f"static_next_hr@{K}": s_hr,
                f"daily_next_hr@{K}": d_hr,
                "retrain_seconds": round(seconds, 2),
            }
        )
    return RetrainCurve(rows, first, tuple(daily_models))


def report_retrain_curve(bp: Blueprint, curve: RetrainCurve) -> None:
    bp.text(
        f"Daily retrain, simulated: the static model was trained once on days up to "
        f"{curve.static_trained_through}; the daily model is retrained every day on all days so "
        "far. Each row evaluates both on the next day's sessions (new listings get the "
        "cold-start vectors in both)."
    )
    bp.table(
        [
            "eval day",
            "new listings",
            "booked rank static ↓",
            "booked rank daily ↓",
            f"next HR@{K} static",
            f"next HR@{K} daily",
            "retrain s",
        ],
        [
            [
                r["eval_day"],
                r["new_listings_since_static"],
                r["static_booked_rank"],
                r["daily_booked_rank"],
                r[f"static_next_hr@{K}"],
                r[f"daily_next_hr@{K}"],
                r["retrain_seconds"],
            ]
            for r in curve.rows
        ],
    )
