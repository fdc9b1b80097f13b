"""Step 7: drift as a new harm vocabulary spreads in the last days.

The reference is the training days. Every later day (validation, test, drift) gets a row of
:func:`mlsd.monitoring.daily_monitoring_row`: the PSI of the text features (the share of a post's
words the training vocabulary never saw, and the first two principal components of the text
embeddings), of the first-hour reports, and of the served model's top class score; and, once the
day's labels are in (a week later), the NCE of the any-harm score and the recall of the review
band over a trailing window of :data:`WINDOW_DAYS` days (a day holds only ~20 harmful posts at
the small scale). New harm vocabulary is rare (a handful of posts a day at first), so the PSI of
a whole day's features barely moves; the count of posts holding a word the training days never
saw is watched instead, against a Poisson control limit from the validation days' rate
(:func:`mlsd.monitoring_signals.count_alerts`). Every threshold comes from the noise of the
days before any drift: NCE alerts when it rises above the :data:`NCE_QUANTILE` quantile of
the NCE of bootstrap windows of validation posts. :func:`mlsd.monitoring.drift_alerts` and
:func:`~mlsd.monitoring_signals.count_alerts` turn the table into alerts and
:func:`mlsd.monitoring.retrain_trigger` decides.
"""

from __future__ import annotations

from dataclasses import dataclass, field
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
from mlsd.monitoring_signals import count_alerts
from mlsd.report import Blueprint
from mlsd.systems.harmful_content.evaluation import Thresholds
from mlsd.systems.harmful_content.features import Prepared
from mlsd.systems.harmful_content.model import Lineup, Reps
from mlsd.systems.harmful_content.model_text import tokens
from mlsd.systems.harmful_content.world import HarmWorld

MONITORED = ("oov_rate", "text_pc1", "text_pc2", "log_reports_1h")
WINDOW_DAYS = 3
NCE_QUANTILE = 0.999  # of the bootstrap NCE of validation windows: the metric-decay threshold
NCE_BOOTSTRAPS = 400
COUNT_ALPHA = 1e-3  # per day, for the unseen-word count


def nce_noise_threshold(
    harm: np.ndarray, p: np.ndarray, window: int, seed: int = 0
) -> tuple[float, float]:
    """``(baseline NCE, relative increase)``: the NCE of the validation posts and how far above
    it :data:`NCE_QUANTILE` of the NCEs of ``window``-post bootstrap samples of them reach (what
    a pre-drift window's NCE does by chance)."""
    base = normalized_cross_entropy(harm, p)
    r = np.random.default_rng(seed)
    draws = []
    for _ in range(NCE_BOOTSTRAPS):
        idx = r.integers(0, len(harm), window)
        if harm[idx].any() and not harm[idx].all():
            draws.append(normalized_cross_entropy(harm[idx], p[idx]))
    top = float(np.quantile(draws, NCE_QUANTILE)) if draws else base * 1.25
    return base, max(top / base - 1.0, 0.0)


@dataclass(frozen=True)
class Monitoring:
    daily: pd.DataFrame
    alerts: list[Alert]
    retrain: bool
    reason: str
    thresholds: dict[str, float | None] = field(default_factory=dict)

    def metrics(self) -> dict[str, Any]:
        return {
            "monitoring": {
                "daily": self.daily.to_dict("records"),
                "alerts": [a.to_dict() for a in self.alerts],
                "retrain": self.retrain,
                "retrain_reason": self.reason,
                "thresholds": self.thresholds,
            }
        }


def _unseen(texts: list[str], vocab: set[str]) -> np.ndarray:
    """``(n,)`` bool: the text holds a word the training days never saw."""
    return np.array([any(w not in vocab for w in tokens(t)) for t in texts], bool)


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
    unseen = _unseen(
        [reps[names[int(k)]].texts[int(o)] for k, o in zip(parts, offsets, strict=True)], vocab
    )
    n_val_days = max(len(np.unique(day[p.val])), 1)
    baseline, nce_increase = (
        nce_noise_threshold(
            harm[val_rows], top[val_rows], WINDOW_DAYS * int(val_rows.sum()) // n_val_days
        )
        if harm[val_rows].any()
        else (None, 0.25)
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
        row["posts"] = float(sel.sum())
        row["unseen_word_posts"] = float(unseen[sel].sum())
        row["harmful_posts"] = float(harm[sel].sum())
        row["new_vocabulary_posts"] = float(
            (world.posts["kind"].to_numpy()[later[sel]] == "drift").sum()
        )
        rows.append(row)
    daily = pd.DataFrame(rows)
    alerts = drift_alerts(daily, DriftThresholds(nce_increase=nce_increase), baseline)
    alerts += count_alerts(
        daily,
        "unseen_word_posts",
        "posts",
        float(unseen[val_rows].sum()),
        float(val_rows.sum()),
        COUNT_ALPHA,
    )
    alerts.sort(key=lambda a: a.day)
    retrain, reason = retrain_trigger(alerts)
    thresholds = {
        "nce_baseline": baseline,
        "nce_alert_above": None if baseline is None else baseline * (1 + nce_increase),
        "unseen_word_rate_reference": float(unseen[val_rows].mean()) if val_rows.any() else 0.0,
        "count_alpha": COUNT_ALPHA,
    }
    return Monitoring(daily, alerts, retrain, reason, thresholds)


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
        "unseen_word_posts",
        "harmful_posts",
        "new_vocabulary_posts",
    ]
    present = [c for c in cols if c in m.daily.columns]
    bp.table(present, m.daily[present].to_numpy().tolist())
    th = m.thresholds
    if th.get("nce_alert_above") is not None:
        bp.text(
            f"Thresholds from the days before any drift: NCE alerts above "
            f"{th['nce_alert_above']:.3f} (validation {th['nce_baseline']:.3f}; the "
            f"{NCE_QUANTILE:.1%} quantile of bootstrap windows of validation posts), the count "
            f"of posts with an unseen word above the Poisson limit of the validation rate "
            f"({th['unseen_word_rate_reference']:.4f} per post; P < {COUNT_ALPHA:g} a day)."
        )
    bp.text(f"{len(m.alerts)} alerts. **{m.reason}**")
    if m.alerts:
        bp.table(
            ["day", "kind", "subject", "message"],
            [[a.day, a.kind, a.subject, a.message] for a in m.alerts[:12]],
        )
