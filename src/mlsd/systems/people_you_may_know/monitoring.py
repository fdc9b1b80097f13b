"""Step 7 for people you may know: degree and feature drift as the graph grows.

The reference is the training snapshot's candidate pairs (day ``t - Δ``). For each later day up
to the serving day, the graph as of that day is rebuilt, a seeded sample of present users gets
its candidates and features, and the day's row holds the PSI of each monitored feature, of the
degree distribution of all present users and of the served model's scores
(:func:`mlsd.monitoring.daily_monitoring_row`). :func:`mlsd.monitoring.drift_alerts` turns the
table into alerts and :func:`mlsd.monitoring.retrain_trigger` decides on retraining. Labels are
not monitored: a friendship is known only days later.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from mlsd.monitoring import Alert, daily_monitoring_row, drift_alerts, psi, retrain_trigger
from mlsd.report import Blueprint
from mlsd.rng import rng
from mlsd.systems.people_you_may_know.datasets import GraphData
from mlsd.systems.people_you_may_know.features import Snapshot, candidates, pair_features
from mlsd.systems.people_you_may_know.model import score

MONITORED = ("d_mutual", "d_adamic_adar", "d_deg_u", "d_deg_v", "d_recent_u", "d_pref_attach")
SAMPLE_USERS = 1000


@dataclass(frozen=True)
class Monitoring:
    daily: pd.DataFrame
    alerts: list[Alert]
    retrain: bool
    reason: str

    def metrics(self) -> dict[str, Any]:
        return {
            "monitoring": {
                "daily": self.daily.to_dict("records"),
                "alerts": [a.to_dict() for a in self.alerts],
                "retrain": self.retrain,
                "retrain_reason": self.reason,
            }
        }


def _day_frame(
    data: GraphData, day: int, seed: int, model: Any
) -> tuple[Snapshot, pd.DataFrame, np.ndarray]:
    snap = Snapshot.at(data.users, data.edges, day)
    present = np.flatnonzero(snap.present)
    r = rng(seed, f"pymk/monitoring/{day}")
    q = np.sort(r.choice(present, min(SAMPLE_USERS, len(present)), replace=False))
    pairs = candidates(snap, q, seed)
    u, v = pairs["u"].to_numpy(), pairs["v"].to_numpy()
    X = pair_features(snap, u, v)
    return snap, X, score(model, X, (snap, u, v))


def compute_monitoring(data: GraphData, start: int, model: Any, seed: int) -> Monitoring:
    ref_snap, ref, ref_p = _day_frame(data, start, seed, model)
    ref_deg = ref_snap.deg[ref_snap.present]
    rows = []
    for day in range(start + 1, data.n_days + 1):
        snap, cur, p = _day_frame(data, day, seed, model)
        row = daily_monitoring_row(day, ref, cur, list(MONITORED), reference_p=ref_p, p=p)
        row["psi_degree"] = psi(ref_deg, snap.deg[snap.present])
        row["users"] = float(snap.present.sum())
        row["friendships"] = float(snap.adj.nnz // 2)
        rows.append(row)
    daily = pd.DataFrame(rows)
    alerts = drift_alerts(daily.drop(columns=["users", "friendships"]))
    retrain, reason = retrain_trigger(alerts)
    return Monitoring(daily, alerts, retrain, reason)


def report_monitoring(bp: Blueprint, mon: Monitoring) -> None:
    bp.section("Monitoring")
    bp.text(
        "PSI of the candidate pairs' features, of the degree distribution and of the served "
        "model's scores, each day against the training snapshot. A growing graph drifts by "
        "nature (degrees rise): the retrain trigger decides when it matters."
    )
    cols = [
        "day",
        "users",
        "friendships",
        "psi_degree",
        "prediction_psi",
        *(f"psi_{c}" for c in MONITORED[:3]),
    ]
    rows = [
        [int(r["day"]), int(r["users"]), int(r["friendships"]), *(r[c] for c in cols[3:])]
        for r in mon.daily[cols].to_dict("records")
    ]
    bp.table(cols, rows)
    bp.text(
        f"{len(mon.alerts)} alerts; retrain {'**triggered**' if mon.retrain else 'not triggered'}: "
        f"{mon.reason}"
    )
