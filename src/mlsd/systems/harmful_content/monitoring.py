"""Step 7: drift as a new harm vocabulary spreads in the last days.

The reference is the training days. Every later day (validation, test, drift) gets a row of
:func:`mlsd.monitoring.daily_monitoring_row`: the PSI of the text features (the share of a post's
words the training vocabulary never saw, and the first two principal components of the text
embeddings), of the first-hour reports, and of the served model's top class score; and, once the
day's labels are in (a week later), the NCE of the any-harm score and the recall of the review
band over a trailing window of :data:`WINDOW_DAYS` days (a day holds only ~20 harmful posts at
the small scale). :func:`mlsd.monitoring.drift_alerts` turns the table into alerts (metric
decay: NCE above the validation days' by :data:`NCE_INCREASE`) and
:func:`mlsd.monitoring.retrain_trigger` decides.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.decomposition import PCA

from mlsd.metrics import normalized_cross_entropy
from mlsd.monitoring import (
    Alert,
    DriftThresholds,
    daily_monitoring_row,
    drift_alerts,
    retrain_trigger,
)
from mlsd.report import Blueprint
from mlsd.systems.harmful_content.evaluation import Thresholds
from mlsd.systems.harmful_content.features import Prepared
from mlsd.systems.harmful_content.model import Lineup, Reps
from mlsd.systems.harmful_content.model_text import tokens
from mlsd.systems.harmful_content.world import HarmWorld

MONITORED = ("oov_rate", "text_pc1", "text_pc2", "log_reports_1h")
WINDOW_DAYS = 3
NCE_INCREASE = 0.25  # over the validation days' NCE


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


def _frame(reps: Reps, vocab: set[str], pca: PCA) -> pd.DataFrame:
    oov = []
    for t in reps.texts:
        words = tokens(t)
        oov.append(sum(w not in vocab for w in words) / max(len(words), 1))
    pcs = pca.transform(reps.text_emb)
    return pd.DataFrame(
        {
            "oov_rate": oov,
            "text_pc1": pcs[:, 0],
            "text_pc2": pcs[:, 1],
            "log_reports_1h": reps.meta[:, 7] if reps.meta.shape[1] > 7 else 0.0,
        }
    )


def compute_monitoring(
    world: HarmWorld,
    p: Prepared,
    lineup: Lineup,
    chosen: str,
    reps: dict[str, Reps],
    th: Thresholds,
) -> Monitoring:
    train = reps["train"]
    vocab = {w for t in train.texts for w in tokens(t)}
    pca = PCA(n_components=2, random_state=0).fit(train.text_emb)
    ref = _frame(train, vocab, pca)
    ref_p = lineup.score(chosen, train).max(axis=1)
    day = world.posts["day"].to_numpy()
    later = np.concatenate([p.val, p.test, p.drift])
    parts = np.concatenate(
        [np.full(len(p.val), 0), np.full(len(p.test), 1), np.full(len(p.drift), 2)]
    )
    offsets = np.concatenate(
        [np.arange(len(p.val)), np.arange(len(p.test)), np.arange(len(p.drift))]
    )
    names = ("val", "test", "drift")
    rows = []
    top = np.zeros(len(later))
    flagged_all = np.zeros(len(later), bool)
    for part_id, name in enumerate(names):  # score every later post once
        sel = np.flatnonzero(parts == part_id)
        if len(sel):
            P = lineup.score(chosen, reps[name].take(offsets[sel]))
            top[sel] = np.clip(P.max(axis=1), 1e-6, 1 - 1e-6)
            flagged_all[sel] = (th.review[None, :] <= P).any(axis=1)
    harm = p.Y[later].max(axis=1)
    days_later = day[later]
    val_rows = parts == 0
    baseline = (
        normalized_cross_entropy(harm[val_rows], top[val_rows]) if harm[val_rows].any() else None
    )
    for d in np.unique(days_later):
        sel = days_later == d
        part = names[int(parts[sel][0])]
        sub = reps[part].take(offsets[sel])
        # labels arrive a week late and a day holds ~20 harmful posts: the label-based numbers
        # pool a trailing window of WINDOW_DAYS days
        win = (days_later > d - WINDOW_DAYS) & (days_later <= d)
        row = daily_monitoring_row(
            int(d), ref, _frame(sub, vocab, pca), list(MONITORED), reference_p=ref_p, p=top[sel]
        )
        if harm[win].any():
            row["nce"] = normalized_cross_entropy(harm[win], top[win])
        row["review_band_recall"] = float(
            (flagged_all[win] & (harm[win] == 1)).sum() / max(harm[win].sum(), 1)
        )
        row["harmful_posts"] = float(harm[sel].sum())
        row["new_vocabulary_posts"] = float(
            (world.posts["kind"].to_numpy()[later[sel]] == "drift").sum()
        )
        rows.append(row)
    daily = pd.DataFrame(rows)
    alerts = drift_alerts(daily, DriftThresholds(nce_increase=NCE_INCREASE), baseline)
    retrain, reason = retrain_trigger(alerts)
    return Monitoring(daily, alerts, retrain, reason)


def report_monitoring(bp: Blueprint, m: Monitoring) -> None:
    bp.text(
        "Each day after training against the training days: PSI of the text features (share "
        "of unseen words, two principal components of the MiniLM embeddings), of first-hour "
        "reports and of the served model's top score; with the week-late labels, the NCE of "
        "the any-harm score and the review band's recall. In the last days a new harm "
        "vocabulary spreads (posts using it counted per day)."
    )
    cols = [
        "day",
        "psi_oov_rate",
        "psi_text_pc1",
        "prediction_psi",
        "nce",
        "review_band_recall",
        "harmful_posts",
        "new_vocabulary_posts",
    ]
    present = [c for c in cols if c in m.daily.columns]
    bp.table(present, m.daily[present].to_numpy().tolist())
    bp.text(f"{len(m.alerts)} alerts. **{m.reason}**")
    if m.alerts:
        bp.table(
            ["day", "kind", "subject", "message"],
            [[a.day, a.kind, a.subject, a.message] for a in m.alerts[:12]],
        )
