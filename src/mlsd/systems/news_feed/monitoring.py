"""Step 7: reaction-rate and prediction drift per head; alerts and the retrain trigger.

The reference is the first half of the training days' impressions; every later logged day is
compared with it, per reaction head of the served model: the observed reaction rate, the mean
prediction, their ratio (calibration: observed / expected) and the PSI of the head's predictions;
and the PSI of a few features. The platform's history grows day by day (more impressions per
user, more reactions per author), so some feature drift is expected; the retrain trigger says
whether it persists or reaches the predictions.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from mlsd.monitoring import Alert, drift_alerts, feature_drift, psi, retrain_trigger
from mlsd.report import Blueprint
from mlsd.systems.news_feed.model import any_engagement, predict_heads
from mlsd.systems.news_feed.world_config import BINARY_HEADS

#: rates and ages; the cumulative counts (a user's impressions so far) grow with the platform's
#: age by construction, so their drift says nothing
MONITORED = (
    "d_post_age_h",
    "d_post_ctr",
    "d_user_ctr",
    "d_author_ctr",
    "d_pair_ctr",
    "d_friend_days",
)
#: calibration of a head is judged on days with this many expected reactions: its standard error
#: is then 5%, so the ±10% tolerance is two standard errors (below it, alerts would be noise)
MIN_EXPECTED = 400.0


@dataclass(frozen=True)
class Monitoring:
    daily: pd.DataFrame  # day, per head: rate, predicted, calibration, psi; psi_<feature>
    alerts: tuple[Alert, ...]
    retrain: bool
    reason: str
    reference_days: tuple[int, ...]
    heads: tuple[str, ...]

    def metrics(self) -> dict[str, Any]:
        return {
            "monitoring": {
                "reference_days": list(self.reference_days),
                "heads": list(self.heads),
                "daily": self.daily.to_dict("records"),
                "alerts": [a.to_dict() for a in self.alerts],
                "retrain": self.retrain,
                "reason": self.reason,
            }
        }


def head_predictions(
    model: Any, X: pd.DataFrame, Y: np.ndarray
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """head -> (prediction, label) of the served model, as logged (the slot included)."""
    heads = predict_heads(model, X)
    if heads is None:
        return {"any_engagement": (np.asarray(model.predict_proba(X)[:, 1]), any_engagement(Y))}
    return {h: (heads[:, j], Y[:, j]) for j, h in enumerate(BINARY_HEADS)}


def compute_monitoring(
    X: pd.DataFrame, Y: np.ndarray, day: np.ndarray, model: Any, train_days: tuple[int, ...]
) -> Monitoring:
    ref_days = tuple(train_days[: max(1, len(train_days) // 2)])
    ref = np.isin(day, ref_days)
    preds = head_predictions(model, X, Y)
    rows = []
    alerts: list[Alert] = []
    for d in sorted(x for x in set(day.tolist()) if x > max(ref_days)):
        cur = day == d
        row: dict[str, float] = {"day": float(d)}
        for h, (p, y) in preds.items():
            row[f"{h}_rate"] = float(y[cur].mean())
            row[f"{h}_predicted"] = float(p[cur].mean())
            expected = float(p[cur].sum())
            row[f"{h}_calibration"] = (
                float(y[cur].sum() / expected) if expected >= MIN_EXPECTED else float("nan")
            )
            row[f"{h}_prediction_psi"] = psi(p[ref], p[cur])
        drift = feature_drift(X[ref], X[cur], MONITORED)
        for f, v in zip(drift["feature"], drift["psi"], strict=True):
            row[f"psi_{f}"] = float(v)
        rows.append(row)
    daily = pd.DataFrame(rows)
    if len(daily):
        feats = daily[["day", *(c for c in daily.columns if c.startswith("psi_"))]]
        alerts += drift_alerts(feats)
        for h in preds:
            frame = daily[["day", f"{h}_prediction_psi", f"{h}_calibration"]].set_axis(
                ["day", "prediction_psi", "calibration"], axis=1
            )
            for a in drift_alerts(frame):
                alerts.append(Alert(a.day, a.kind, h, a.value, a.threshold, f"{h}: {a.message}"))
    retrain, reason = retrain_trigger(alerts)
    return Monitoring(daily, tuple(alerts), retrain, reason, ref_days, tuple(preds))


def report_monitoring(bp: Blueprint, result: Monitoring) -> None:
    bp.text(
        f"Reference: days {list(result.reference_days)}. Per day and per head of the served "
        "model: the observed reaction rate, the mean prediction, calibration (observed / "
        "expected, alert outside 1 ± 0.1; left out below "
        f"{MIN_EXPECTED:.0f} expected reactions a day, where it is noise) and the PSI of the "
        "predictions (alert at 0.25); and the PSI of the monitored features (rates and ages: "
        "the cumulative counts grow with the platform's age by construction)."
    )
    cols = ["day"]
    for h in result.heads:
        cols += [f"{h}_rate", f"{h}_calibration", f"{h}_prediction_psi"]
    if len(result.daily):
        bp.table(cols, result.daily[cols].to_numpy().tolist(), caption="Per head, per day")
        fcols = ["day", *(c for c in result.daily.columns if c.startswith("psi_"))]
        bp.table(fcols, result.daily[fcols].to_numpy().tolist(), caption="Feature PSI per day")
    if result.alerts:
        bp.text("\n".join(f"- {a.message}" for a in result.alerts[:12]))
    bp.text(f"**Retrain trigger:** {result.reason}.")
