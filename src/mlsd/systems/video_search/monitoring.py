"""Step 7 for video search: is the query stream drifting away from what the models learned?

From the day after the logs, the world's users start searching an emerging topic whose words
neither the BM25 vocabulary nor the dual encoder's training pairs have seen. Each monitoring
day, on that day's searches against the index as the run built it:

* **new vocabulary**: the share of query tokens that are not in the BM25 vocabulary;
* **zero-result rate**: the share of searches for which text search finds nothing;
* PSI of the query length and of the top BM25 score against the training days' searches.

PSI >= 0.25 is a feature-drift alert (:mod:`mlsd.monitoring`); a zero-result rate above twice
the training days' (and above 2%) is a metric-decay alert, which retrains (re-indexes and
retrains the encoders) at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd

from mlsd.monitoring import Alert, drift_alerts, psi, retrain_trigger
from mlsd.report import Blueprint
from mlsd.systems.video_search.serving import VideoSearcher
from mlsd.systems.video_search.world import Log, VideoSearchWorld

MONITOR_SEARCHES = 1000
ZERO_RESULT_FLOOR = 0.02


@dataclass(frozen=True)
class Monitoring:
    daily: list[dict[str, float]]
    baseline: dict[str, float]
    alerts: list[Alert]
    retrain: bool
    reason: str

    def metrics(self) -> dict[str, Any]:
        return {
            "monitoring": {
                "daily": self.daily,
                "baseline": self.baseline,
                "alerts": [a.to_dict() for a in self.alerts],
                "retrain": self.retrain,
                "reason": self.reason,
            }
        }


def query_stats(s: VideoSearcher, texts: list[str]) -> pd.DataFrame:
    rows = []
    for t in texts:
        ids, n = s.text.token_ids(t)
        top = s.text.scores(t).max() if ids else 0.0
        rows.append((n, 1.0 - len(ids) / n if n else 0.0, float(top), top <= 0))
    return pd.DataFrame(rows, columns=["query_len", "oov_share", "top_bm25", "zero"])


def compute_monitoring(world: VideoSearchWorld, lg: Log, s: VideoSearcher) -> Monitoring:
    cfg = world.config
    train = lg.searches[lg.searches["day"] < cfg.train_days]
    ref = query_stats(s, train["text"].head(4 * MONITOR_SEARCHES).tolist())
    base_zero = float(ref["zero"].mean())
    daily = []
    for d in range(cfg.n_days, cfg.n_days + cfg.monitor_days):
        q = world.queries(d, MONITOR_SEARCHES, "monitor")
        cur = query_stats(s, q["text"].tolist())
        emerging = world.intents["emerging"].to_numpy()[q["intent_id"].to_numpy()]
        daily.append(
            {
                "day": d,
                "searches": len(q),
                "emerging_share": float(emerging.mean()),
                "oov_share": float(cur["oov_share"].mean()),
                "zero_result_rate": float(cur["zero"].mean()),
                "psi_query_len": psi(ref["query_len"], cur["query_len"]),
                "psi_top_bm25": psi(ref["top_bm25"], cur["top_bm25"]),
            }
        )
    table = pd.DataFrame(daily)
    alerts = drift_alerts(table[["day", "psi_query_len", "psi_top_bm25"]])
    limit = max(2 * base_zero, ZERO_RESULT_FLOOR)
    for row in daily:
        z = row["zero_result_rate"]
        if z > limit:
            msg = f"day {row['day']}: zero-result rate {z:.1%} > {limit:.1%}"
            alerts.append(Alert(int(row["day"]), "metric_decay", "zero_result_rate", z, limit, msg))
    retrain, reason = retrain_trigger(alerts)
    baseline = {
        "zero_result_rate": base_zero,
        "oov_share": float(ref["oov_share"].mean()),
        "query_len": float(ref["query_len"].mean()),
    }
    return Monitoring(daily, baseline, alerts, retrain, reason)


def report_monitoring(bp: Blueprint, r: Monitoring) -> None:
    bp.text(
        "From the day after the logs users begin to search an emerging topic. Each day's "
        f"{MONITOR_SEARCHES:,} searches against the index as the run built it: new vocabulary "
        "(query tokens unknown to BM25), zero-result rate of text search, and PSI of the query "
        f"length and top BM25 score against the training days (zero-result rate there "
        f"{r.baseline['zero_result_rate']:.2%}, unknown tokens {r.baseline['oov_share']:.2%})."
    )
    cols = [
        "day",
        "emerging_share",
        "oov_share",
        "zero_result_rate",
        "psi_query_len",
        "psi_top_bm25",
    ]
    bp.table(cols, [[round(float(d[c]), 4) for c in cols] for d in r.daily])
    bp.text(
        f"{len(r.alerts)} alerts"
        + (": " + "; ".join(a.message for a in r.alerts[:4]) if r.alerts else "")
        + f". **{r.reason}**."
    )
