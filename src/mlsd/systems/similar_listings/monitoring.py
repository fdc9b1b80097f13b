"""Step 7 for similar listings: embedding drift and the daily retrain (book ch. 9).

Embeddings are retrained every day on the sessions up to yesterday, and the index is swapped.
Two things are watched between yesterday's model and today's, for the listings both know:

* **nearest-neighbour overlap**: the share of a listing's ``K`` most similar listings (in its
  region) that are still among them after the retrain; a low overlap means the carousel
  changes under users' feet (or the training broke);
* **similarity drift**: the population stability index of the top-1 similarity (how tight the
  neighbourhoods are), :func:`mlsd.monitoring.psi`.

Each crossing raises an :class:`mlsd.monitoring.Alert`; the retrain decision comes from
:func:`mlsd.monitoring.retrain_trigger`. The daily retrain's cost (seconds on this machine, pairs
trained) is reported with it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from mlsd import monitoring as mon
from mlsd.report import Blueprint
from mlsd.rng import rng
from mlsd.systems.similar_listings.model import (
    ListingSimilarity,
    SkipGramEmbeddings,
    region_top_k,
)
from mlsd.systems.similar_listings.monitoring_retrain import RetrainCurve, report_retrain_curve

K = 10
MIN_OVERLAP = 0.3
PSI_ALERT = mon.DriftThresholds().psi_alert
SAMPLE = 2000


@dataclass(frozen=True)
class MonitoringResult:
    day: int
    overlap: float
    psi_top1: float
    mean_top1: tuple[float, float]
    retrain_seconds: float
    alerts: list[mon.Alert]
    retrain: bool
    reason: str
    curve: RetrainCurve | None = None

    def metrics(self) -> dict[str, Any]:
        curve = self.curve.metrics() if self.curve is not None else {}
        return curve | {
            "monitoring": {
                "day": self.day,
                f"nn_overlap@{K}": self.overlap,
                "psi_top1_similarity": self.psi_top1,
                "mean_top1_similarity": {
                    "yesterday": self.mean_top1[0],
                    "today": self.mean_top1[1],
                },
                "retrain_seconds": round(self.retrain_seconds, 3),
                "alerts": [a.to_dict() for a in self.alerts],
                "retrain": self.retrain,
                "retrain_reason": self.reason,
            }
        }


def compute_monitoring(
    yesterday: SkipGramEmbeddings,
    today: SkipGramEmbeddings,
    region: np.ndarray,
    day: int,
    retrain_seconds: float,
    seed: int,
) -> MonitoringResult:
    """Compare yesterday's and today's embeddings over a seeded sample of listings both
    trained on."""
    both = np.flatnonzero(yesterday.trained_ & today.trained_[: len(yesterday.trained_)])
    if len(both) > SAMPLE:
        both = np.sort(rng(seed, "similar-listings/monitoring/sample").choice(both, SAMPLE, False))
    n = len(yesterday.vectors_)
    reg = region[:n]
    top_y = region_top_k(yesterday, both, reg, K)
    top_t = region_top_k(_Restricted(today, n), both, reg, K)
    overlap = (
        float(
            np.mean(
                [
                    len(np.intersect1d(a[a >= 0], b[b >= 0])) / K
                    for a, b in zip(top_y, top_t, strict=True)
                ]
            )
        )
        if len(both)
        else float("nan")
    )
    s_y = _top1_scores(yesterday, both, top_y[:, 0])
    s_t = _top1_scores(today, both, top_t[:, 0])
    psi = mon.psi(s_y, s_t) if len(both) else float("nan")
    alerts = []
    if overlap < MIN_OVERLAP:
        alerts.append(
            mon.Alert(
                day,
                "prediction_drift",
                f"nn_overlap@{K}",
                overlap,
                MIN_OVERLAP,
                f"only {overlap:.0%} of the nearest neighbours survived the retrain",
            )
        )
    if psi > PSI_ALERT:
        alerts.append(
            mon.Alert(
                day,
                "feature_drift",
                "top1_similarity",
                psi,
                PSI_ALERT,
                f"PSI {psi:.3f} of the top-1 similarity",
            )
        )
    retrain, reason = mon.retrain_trigger(alerts)
    return MonitoringResult(
        day,
        overlap,
        float(psi),
        (
            float(np.mean(s_y)) if len(s_y) else float("nan"),
            float(np.mean(s_t)) if len(s_t) else float("nan"),
        ),
        retrain_seconds,
        alerts,
        retrain,
        reason,
    )


def _top1_scores(model: SkipGramEmbeddings, query: np.ndarray, top: np.ndarray) -> np.ndarray:
    """The model's score of each query's nearest listing (its own score: cosine or dot)."""
    ok = top >= 0
    out: np.ndarray = np.einsum(
        "ij,ij->i", model.query_vectors_[query[ok]], model.vectors_[top[ok]]
    ).astype(np.float64)
    return out


class _Restricted(ListingSimilarity):
    """Today's model limited to yesterday's listings (new ones cannot be compared)."""

    def __init__(self, model: SkipGramEmbeddings, n: int) -> None:
        self.model = model
        self.n = n

    def similarity(self, query: np.ndarray) -> np.ndarray:
        out: np.ndarray = self.model.similarity(query)[:, : self.n]
        return out


def report_monitoring(bp: Blueprint, result: MonitoringResult) -> None:
    bp.section("Monitoring")
    bp.text(
        f"The daily retrain: yesterday's embeddings (sessions up to day {result.day - 1}) "
        f"against today's (up to day {result.day}), over the listings both know. Retraining "
        f"took {result.retrain_seconds:.1f} s on one core (the last day of the simulated "
        "curve below)."
    )
    bp.table(
        ["signal", "value", "alert at"],
        [
            [f"nearest-neighbour overlap@{K}", result.overlap, f"< {MIN_OVERLAP}"],
            ["PSI of the top-1 similarity", result.psi_top1, f"> {PSI_ALERT}"],
            ["mean top-1 similarity, yesterday", result.mean_top1[0], ""],
            ["mean top-1 similarity, today", result.mean_top1[1], ""],
        ],
    )
    alerts = "; ".join(a.message for a in result.alerts) or "none"
    bp.text(f"Alerts: {alerts}. **{result.reason}**")
    if result.curve is not None:
        report_retrain_curve(bp, result.curve)
