"""Step 7: feature and prediction drift as the seasons turn; alerts and the retrain trigger.

The reference is the first half of the training days' impressions; every later logged day is
compared with it (PSI and KS per feature, PSI of the served model's scores; calibration and
NCE when the served model gives probabilities). The world's categories go in and out of season
and the platform's history grows, so some drift is expected: the retrain trigger says whether it
persists.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from mlsd.models import ClickEstimator
from mlsd.monitoring import Alert, daily_monitoring_row, drift_alerts, retrain_trigger
from mlsd.report import Blueprint
from mlsd.systems.event_rec.model import score

MONITORED = (
    "d_dist_km",
    "d_hours_until",
    "d_price",
    "d_event_regs",
    "d_friends_registered",
    "d_user_regs",
    "d_cat_history_share",
    "d_desc_match",
)


@dataclass(frozen=True)
class Monitoring:
    daily: pd.DataFrame
    alerts: tuple[Alert, ...]
    retrain: bool
    reason: str
    reference_days: tuple[int, ...]

    def metrics(self) -> dict[str, Any]:
        return {
            "monitoring": {
                "reference_days": list(self.reference_days),
                "daily": self.daily.to_dict("records"),
                "alerts": [a.to_dict() for a in self.alerts],
                "retrain": self.retrain,
                "reason": self.reason,
            }
        }


def compute_monitoring(
    X: pd.DataFrame, y: np.ndarray, day: np.ndarray, model: Any, train_days: tuple[int, ...]
) -> Monitoring:
    ref_days = tuple(train_days[: max(1, len(train_days) // 2)])
    ref = np.isin(day, ref_days)
    probs = isinstance(model, ClickEstimator)
    # as logged (the slot included), so that calibration compares like with like
    s = np.asarray(model.predict_proba(X)[:, 1]) if probs else score(model, X)
    rows = []
    for d in sorted(set(day.tolist()) - set(ref_days)):
        cur = day == d
        rows.append(
            daily_monitoring_row(
                int(d),
                X[ref],
                X[cur],
                MONITORED,
                reference_p=s[ref],
                p=s[cur],
                y=y[cur] if probs else None,
            )
        )
    daily = pd.DataFrame(rows)
    baseline = None
    if probs and "nce" in daily:
        baseline = float(daily["nce"].iloc[0])
    alerts = drift_alerts(daily, baseline_nce=baseline)
    retrain, reason = retrain_trigger(alerts)
    return Monitoring(daily, tuple(alerts), retrain, reason, ref_days)


def report_monitoring(bp: Blueprint, result: Monitoring) -> None:
    bp.text(
        f"Reference: days {list(result.reference_days)}. PSI per day of the monitored features "
        "and of the served model's scores (warn at 0.1, alert at 0.25)."
    )
    cols = ["day", *(c for c in result.daily.columns if c != "day")]
    bp.table(cols, result.daily[cols].to_numpy().tolist())
    if result.alerts:
        bp.text("\n".join(f"- {a.message}" for a in result.alerts[:12]))
    bp.text(f"**Retrain trigger:** {result.reason}.")
