"""Step 7 for video recommendation: drift of inputs, embeddings and predictions, quality decay
against the world's oracle, alerts and the retrain trigger (book ch. 6 grows every day: new
users, new videos, drifting tastes).

The reference is the training window as the served model saw it: the users active on the last
logged day, served by the fitted recommender over the training catalogue. Then the world moves
on one simulated day at a time, the models stay as trained (no retraining, no feature pipeline:
the point-in-time indexes end with the log), and each day compares with the reference:

* **inputs**: PSI and KS of the ranking features of the served lists (user history, rates,
  affinities, content similarity), and the share of the day's users the model never saw;
* **embeddings**: the user tower's embeddings of the day's active users and the video tower's of
  the day's catalogue (:func:`mlsd.monitoring_signals.embedding_drift`: PSI on the reference's
  principal axes, how far the mean moved in units of the reference's spread);
* **predictions**: PSI of the ranker's click probabilities of the served top 10;
* **quality**, from the world's oracle: the share of the best achievable expected watch minutes
  that the served top 10 get (``oracle_share``) and nDCG@10, on a fresh sample of users each
  day, against the same measured on the day after training (the offline evaluation's day).

PSI >= 0.25 is an alert (:class:`mlsd.monitoring.DriftThresholds`); ``oracle_share`` more than
10 % below its baseline (and beyond two standard errors) is a metric-decay alert, which retrains
at once (:func:`mlsd.monitoring.retrain_trigger`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd

from mlsd import metrics as mm
from mlsd import monitoring as mon
from mlsd import monitoring_signals as signals
from mlsd.report import Blueprint
from mlsd.rng import rng
from mlsd.systems.video_rec.evaluation import eval_users
from mlsd.systems.video_rec.features import Demographics, ranking_frame
from mlsd.systems.video_rec.serving import Recommender
from mlsd.systems.video_rec.world import VideoRecWorld

log = logging.getLogger(__name__)

K = 10
MONITORED = (
    "d_user_clicks",
    "d_user_ctr",
    "d_cat_affinity",
    "d_creator_affinity",
    "d_content_sim",
    "d_video_clicks",
    "d_video_ctr",
    "d_log_duration",
)
QUALITY_DROP = 0.10  # relative drop of oracle_share below its baseline that alerts
MAX_USERS = 500  # users sampled per window for inputs, embeddings and predictions
MAX_VIDEOS = 20_000  # videos sampled per window for the video embeddings
ALERTS_SHOWN = 12


@dataclass(frozen=True)
class Window:
    """What the served stack looked like in one window: its ranking inputs and predictions for
    the served top ``K``, and the user and video embeddings."""

    X: pd.DataFrame
    p: np.ndarray
    user_emb: np.ndarray
    video_emb: np.ndarray
    users: int
    cold_share: float  # users the model has no logged history for


def window(rec: Recommender, users: np.ndarray, seed: int, name: str) -> Window:
    """Serve ``users`` with ``rec``; the features and click probabilities of the served lists."""
    users = np.asarray(users, dtype=np.int64)
    r = rec.recommend_users(users, K)
    lengths = [len(i) for i in r.ids]
    rows = np.repeat(users, lengths)
    ids = np.concatenate(r.ids) if len(users) else np.zeros(0, np.int64)
    X = ranking_frame(
        rec.cat, rec.us, rec.vs, Demographics.of(rec.users, rows), rows, ids, rec.day, 0
    )
    p = np.concatenate(r.p_click) if len(users) else np.zeros(0)
    videos = np.flatnonzero(rec.cat.upload_day <= rec.day)
    if len(videos) > MAX_VIDEOS:
        pick = rng(seed, f"video-rec/monitoring/videos/{name}")
        videos = np.sort(pick.choice(videos, MAX_VIDEOS, replace=False))
    history = rec.us.history(users, rec.day, 1)
    return Window(
        X,
        p,
        rec.user_embeddings(users),
        rec.tower.video_embeddings(rec.cat, videos),
        len(users),
        float(np.mean(history[:, 0] < 0)) if len(users) else float("nan"),
    )


def sample(ids: np.ndarray, n: int, seed: int, name: str) -> np.ndarray:
    if len(ids) <= n:
        return np.sort(ids)
    return np.sort(rng(seed, f"video-rec/monitoring/users/{name}").choice(ids, n, replace=False))


def reference_window(rec: Recommender, log_df: pd.DataFrame, seed: int) -> Window:
    """The training window: users active on the last logged day, served by the fitted model."""
    last = log_df["day"].to_numpy()
    users = np.unique(log_df["user_id"].to_numpy()[last == last.max()])
    return window(rec, sample(users, MAX_USERS, seed, "reference"), seed, "reference")


def quality(rec: Recommender, world: VideoRecWorld, n_users: int, seed: int) -> dict[str, float]:
    """Served top ``K`` against the world's oracle today: the share of the oracle's expected
    watch minutes (and its standard error), nDCG@10 on the sampled held-out truth."""
    gen = rng(seed, f"video-rec/monitoring/quality/{world.day}")
    users = eval_users(world, n_users, gen)
    rel, oracle = world.relevance_sample(users, gen)
    r = rec.recommend_users(users, K)
    finite = np.where(np.isfinite(oracle), oracle, 0.0)
    served = np.array([finite[i, ids].sum() for i, ids in enumerate(r.ids)])
    best = -np.sort(-finite, axis=1)[:, :K].sum(axis=1)
    ratio = float(served.mean() / max(best.mean(), 1e-12))
    # delta method for a ratio of means
    se = float(np.std(served - ratio * best, ddof=1) / np.sqrt(len(users)) / best.mean())
    recs = {int(u): [int(v) for v in ids] for u, ids in zip(users, r.ids, strict=True)}
    return {
        "oracle_share": ratio,
        "oracle_share_se": se,
        "true_minutes@10": float(served.mean()),
        "oracle_minutes@10": float(best.mean()),
        "ndcg@10": mm.mean_over_users(mm.ndcg_at_k, recs, rel, K),
    }


def drift_row(day: int, ref: Window, cur: Window) -> dict[str, float]:
    """One day's drift numbers against the reference window."""
    drift = mon.feature_drift(ref.X, cur.X, MONITORED)
    row: dict[str, float] = {"day": float(day), "users": float(cur.users)}
    row.update({f"psi_{f}": float(v) for f, v in zip(drift["feature"], drift["psi"], strict=True)})
    row["max_ks"] = float(drift["ks"].max())
    row["cold_user_share"] = cur.cold_share
    user = signals.embedding_drift(ref.user_emb, cur.user_emb)
    video = signals.embedding_drift(ref.video_emb, cur.video_emb)
    row["psi_user_embedding"] = user["psi"]
    row["user_embedding_shift"] = user["mean_shift"]
    row["psi_video_embedding"] = video["psi"]
    row["video_embedding_shift"] = video["mean_shift"]
    row["prediction_psi"] = mon.psi(ref.p, cur.p)
    row["prediction_ks"] = mon.ks_statistic(ref.p, cur.p)
    return row


@dataclass(frozen=True)
class Monitoring:
    """Step 7: the per-day table, its baseline, the alerts and the retrain decision."""

    reference: dict[str, Any]
    baseline: dict[str, float]
    daily: pd.DataFrame
    alerts: list[mon.Alert]
    retrain: bool
    reason: str
    thresholds: mon.DriftThresholds

    def metrics(self) -> dict[str, Any]:
        return {
            "monitoring": {
                "reference": self.reference,
                "baseline": self.baseline,
                "thresholds": {**asdict(self.thresholds), "quality_drop": QUALITY_DROP},
                "days": [
                    {**r, "day": int(r["day"]), "users": int(r["users"])}
                    for r in self.daily.to_dict("records")
                ],
                "alerts": [a.to_dict() for a in self.alerts],
                "retrain": self.retrain,
                "retrain_reason": self.reason,
            }
        }


def compute_monitoring(
    fitted: Recommender,
    log_df: pd.DataFrame,
    world: VideoRecWorld,
    advance: Callable[[], Recommender],
    baseline: dict[str, float],
    days: int,
    n_eval_users: int,
    seed: int,
) -> Monitoring:
    """``days`` simulated days after the world's current one, each against the training window;
    ``advance()`` moves the world one day on and returns the recommender serving it;
    ``baseline`` is :func:`quality` on the day after training (with its ``day``)."""
    ref = reference_window(fitted, log_df, seed)
    rows = []
    for _ in range(days):
        rec = advance()
        day = world.day
        active = world.active_users(rng(seed, f"video-rec/monitoring/active/{day}"))
        cur = window(rec, sample(active, MAX_USERS, seed, str(day)), seed, str(day))
        rows.append({**drift_row(day, ref, cur), **quality(rec, world, n_eval_users, seed)})
        log.info("video-rec monitoring: day %d done", day)
    daily = pd.DataFrame(rows)
    thresholds = mon.DriftThresholds()
    psi_cols = ["day", *(c for c in daily.columns if c.startswith("psi_")), "prediction_psi"]
    alerts = mon.drift_alerts(daily[psi_cols], thresholds)
    alerts += signals.metric_decay_alerts(
        daily,
        "oracle_share",
        baseline["oracle_share"],
        QUALITY_DROP,
        se_column="oracle_share_se",
        baseline_se=baseline["oracle_share_se"],
    )
    alerts.sort(key=lambda a: (a.day, a.kind, a.subject))
    retrain, reason = mon.retrain_trigger(alerts)
    reference = {
        "window": f"users active on the last logged day (day {int(log_df['day'].max())})",
        "users": ref.users,
        "videos": len(ref.video_emb),
        "cold_user_share": ref.cold_share,
    }
    return Monitoring(reference, baseline, daily, alerts, retrain, reason, thresholds)


def report_monitoring(bp: Blueprint, result: Monitoring) -> None:
    """The blueprint's step 7: drift per day, quality against the oracle, alerts, retrain."""
    bp.section("Monitoring")
    th, base = result.thresholds, result.baseline
    bp.text(
        "The world moves on day by day (new users and videos, drifting tastes) while the "
        "served models and their point-in-time features stay as trained. Each day is compared "
        f"with the training window ({result.reference['window']}, {result.reference['users']} "
        "users served by the fitted stack): PSI and KS of the ranking features of the served "
        "lists, PSI of the user and video embeddings on the reference's principal axes and "
        "how far their mean moved (in units of the reference's spread), PSI of the predicted "
        "click probabilities of the served top 10. Quality comes from the world's oracle: the "
        "share of the best achievable expected watch minutes the served top 10 get (oracle "
        f"share), against {base['oracle_share']:.3f} on day {int(base['day'])}, the day of the "
        "offline evaluation (same measure, its own user sample). PSI >= "
        f"{th.psi_alert:g} alerts; an oracle share more than {QUALITY_DROP:.0%} below the "
        "baseline (beyond two standard errors) is a metric-decay alert."
    )
    d = result.daily
    psi_cols = [c for c in d.columns if c.startswith("psi_d_")]
    rows = []
    for rec in d.to_dict("records"):
        worst = max(psi_cols, key=lambda c: rec[c])
        rows.append(
            [
                int(rec["day"]),
                rec["cold_user_share"],
                f"{worst.removeprefix('psi_')} ({rec[worst]:.3f})",
                rec["psi_user_embedding"],
                rec["psi_video_embedding"],
                rec["video_embedding_shift"],
                rec["prediction_psi"],
                rec["ndcg@10"],
                rec["oracle_share"],
            ]
        )
    bp.table(
        [
            "day",
            "cold users",
            "most drifted feature (PSI)",
            "user emb. PSI",
            "video emb. PSI",
            "video emb. shift",
            "prediction PSI",
            "nDCG@10",
            "oracle share",
        ],
        rows,
    )
    if result.alerts:
        more = len(result.alerts) - ALERTS_SHOWN
        lines = [f"- {a.message}" for a in result.alerts[:ALERTS_SHOWN]]
        bp.text("\n".join(lines + ([f"- … and {more} more in metrics.json"] if more > 0 else [])))
    bp.text(f"**Retrain triggered: {'yes' if result.retrain else 'no'}.** {result.reason}")
