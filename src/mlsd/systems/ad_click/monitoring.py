"""Ad click prediction, step 7 (monitoring): drift per day, alerts and the retrain trigger.

Each day after training is compared with the last training day (what the served model saw): the
population stability index (PSI) of the dense features that should be stable (rates and context;
cumulative counts and ages grow by construction, so they are watched through the rates derived
from them), the PSI of the served model's predictions, calibration (observed / expected clicks)
and NCE. Crossing a threshold of :class:`mlsd.monitoring.DriftThresholds` raises an alert;
:func:`mlsd.monitoring.retrain_trigger` turns the alerts into the retrain decision.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd

from mlsd import monitoring as mon
from mlsd.models import ClickEstimator
from mlsd.report import Blueprint
from mlsd.rng import rng
from mlsd.systems.ad_click.evaluation import figure, predict
from mlsd.systems.ad_click.features_split import TrainingData

log = logging.getLogger(__name__)

REFERENCE_ROWS = 50_000
ALERTS_SHOWN = 12


def monitored_columns(X: pd.DataFrame) -> list[str]:
    """Dense features whose distribution should be stable: cumulative counts and ages grow by
    construction every day, so they are watched through the rates derived from them instead."""
    return [
        c
        for c in X.columns
        if c.startswith("d_") and not c.endswith(("_imps", "_clicks")) and "age_days" not in c
    ]


@dataclass(frozen=True)
class Monitoring:
    """The monitoring step: per window (day) the most drifted feature, prediction PSI,
    calibration and NCE; the alerts; whether to retrain and why."""

    reference_rows: int
    columns: Sequence[str]
    thresholds: mon.DriftThresholds
    windows: Sequence[Mapping[str, Any]]
    alerts: Sequence[mon.Alert]
    retrain: bool
    retrain_reason: str

    def metrics(self) -> dict[str, Any]:
        return {
            "monitoring": {
                "reference": f"{self.reference_rows:,} rows of the last training window",
                "columns": list(self.columns),
                "thresholds": asdict(self.thresholds),
                "windows": [dict(w) for w in self.windows],
                "alerts": [a.to_dict() for a in self.alerts],
                "retrain": self.retrain,
                "retrain_reason": self.retrain_reason,
            }
        }


def _windows(data: TrainingData) -> dict[int, np.ndarray]:
    """Rows of each monitored window: every validation and test day, or the test rows."""
    if data.days is None:
        return {0: data.split["test"]}
    days = data.days
    after = set(days[data.split["validation"]]) | set(days[data.split["test"]])
    return {int(d): np.flatnonzero(days == d) for d in sorted(after)}


def compute_monitoring(
    data: TrainingData, model: ClickEstimator, baseline_nce: float, seed: int
) -> Monitoring:
    """Compare every window after training with the last training window."""
    X, y, tr = data.X, data.y, data.split["train"]
    if data.days is not None:  # the reference is the most recent training day
        train_days = data.days[tr]
        tr = tr[train_days == train_days.max()]
    draw = rng(seed, "ad-click/monitoring/reference")
    ref = X.iloc[np.sort(draw.choice(tr, size=min(len(tr), REFERENCE_ROWS), replace=False))]
    ref_pred = predict(model, ref)
    columns = monitored_columns(X)
    thresholds = mon.DriftThresholds()
    daily = pd.DataFrame(
        [
            mon.daily_monitoring_row(
                d,
                ref,
                X.iloc[idx],
                columns,
                reference_p=ref_pred,
                p=predict(model, X.iloc[idx]),
                y=y[idx],
            )
            for d, idx in _windows(data).items()
        ]
    )
    alerts = mon.drift_alerts(daily, thresholds, baseline_nce=baseline_nce)
    psi_cols = [c for c in daily.columns if c.startswith("psi_")]
    windows = []
    for rec in daily.to_dict("records"):
        worst = max(psi_cols, key=lambda c: rec[c]) if psi_cols else None
        windows.append(
            {
                "window": f"day {int(rec['day'])}" if data.days is not None else "test",
                "max_feature": worst.removeprefix("psi_") if worst else None,
                "max_feature_psi": rec[worst] if worst else None,
                "prediction_psi": rec["prediction_psi"],
                "calibration": rec["calibration"],
                "nce": rec["nce"],
                "features": {c.removeprefix("psi_"): rec[c] for c in psi_cols},
            }
        )
    retrain, why = mon.retrain_trigger(alerts)
    return Monitoring(len(ref), columns, thresholds, windows, alerts, retrain, why)


def report_monitoring(bp: Blueprint, result: Monitoring) -> None:
    """The blueprint's monitoring section: drift per window, alerts, the retrain decision."""
    thresholds, windows, alerts = result.thresholds, result.windows, result.alerts
    bp.section("Monitoring")
    bp.text(
        "Each day after training is compared with the last training day: the population "
        "stability index (PSI) of the dense features that should be stable (rates and context; "
        "cumulative counts and ages grow by construction) and of the served model's "
        "predictions, and calibration (observed / expected clicks). PSI above "
        f"{thresholds.psi_alert:g} or calibration off by more than "
        f"{thresholds.calibration_tolerance:.0%} raises an alert; alerts trigger a retrain."
    )
    bp.table(
        ["window", "most drifted feature (PSI)", "prediction PSI", "calibration", "NCE"],
        [
            [
                w["window"],
                f"{w['max_feature']} ({w['max_feature_psi']:.3f})"
                if w["max_feature"]
                else "no dense features",
                w["prediction_psi"],
                w["calibration"],
                w["nce"],
            ]
            for w in windows
        ],
    )
    if alerts:
        more = len(alerts) - ALERTS_SHOWN
        lines = [f"- {a.message}" for a in alerts[:ALERTS_SHOWN]]
        bp.text("\n".join(lines + ([f"- … and {more} more in metrics.json"] if more > 0 else [])))
    bp.text(f"**Retrain triggered: {'yes' if result.retrain else 'no'}.** {result.retrain_reason}")
    if len(windows) > 1 and any(w["max_feature"] for w in windows):
        fig, ax = figure(6.4, 3.2)
        labels = [w["window"] for w in windows]
        ax.plot(
            labels, [w["max_feature_psi"] for w in windows], marker="o", label="max feature PSI"
        )
        ax.plot(labels, [w["prediction_psi"] for w in windows], marker="o", label="prediction PSI")
        ax.axhline(thresholds.psi_alert, color="r", ls="--", lw=1, label="alert threshold")
        ax.set(ylabel="PSI", title="Drift against the last training day")
        ax.legend(fontsize=8)
        bp.figure(fig, "drift", "Feature and prediction drift per day.")
