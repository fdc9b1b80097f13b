"""Step 5, offline: rank every test session's candidates on later days, next to the oracle.

On each test day the world takes a sample of the day's sessions and labels **every** open event
for that user (would they register if it were shown at the top? a draw from the true
probability), not only the ten the logging policy showed: so the models are compared on the
lists they would produce, the oracle ranks by the true probability, and event filtering's recall
cost (positives the filter drops) is measured. Metrics per session (a user's list), averaged over
sessions with at least one positive that passes the filter: nDCG@10, MAP@10, MRR, precision and
recall at 5 and 10. Slices: users without friends, and events in their first day.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from mlsd.report import Blueprint
from mlsd.rng import rng
from mlsd.systems.event_rec.features import (
    DEFAULT_RADIUS_KM,
    DEFAULT_WINDOW_H,
    FEATURE_GROUPS,
    Platform,
    in_filter,
    pair_frame,
)
from mlsd.systems.event_rec.model import MODELS, fit_model, make_model, score
from mlsd.systems.event_rec.world import EventRecWorld, Log
from mlsd.systems.event_rec.world_config import DAY_S

log = logging.getLogger(__name__)

KS = (5, 10)
RADII_KM = (3.0, 5.0, DEFAULT_RADIUS_KM, 12.0, math.inf)


@dataclass
class EvalSet:
    """Test sessions with every open event labelled by the world."""

    X: pd.DataFrame
    session: np.ndarray
    user: np.ndarray
    event: np.ndarray
    p_true: np.ndarray
    y: np.ndarray
    kept: np.ndarray  # passes event filtering (radius, window)
    km: np.ndarray
    hours: np.ndarray
    no_friends: np.ndarray  # the user has no friends
    new_event: np.ndarray  # the event is in its first 24 hours
    day: np.ndarray


def build_eval_set(
    world: EventRecWorld, platform: Platform, log_: Log, test_days: list[int], seed: int
) -> EvalSet:
    cfg = world.config
    per_day = max(1, cfg.eval_sessions // max(len(test_days), 1))
    r = rng(seed, "event-rec/eval-labels")
    parts: list[dict[str, Any]] = []
    offset = 0
    hood_e = platform.event_hood()
    for d in test_days:
        state = world.state(d * DAY_S, log_.registrations, log_.invites)
        sess = log_.sessions[log_.sessions["day"] == d]
        take = np.sort(rng(seed, f"event-rec/eval-sessions/{d}").permutation(len(sess))[:per_day])
        sess = sess.iloc[take].reset_index(drop=True)
        cand = world.candidates(state, sess)
        u = cand["user_id"].to_numpy(np.int64)
        e = cand["event_id"].to_numpy(np.int64)
        ts = cand["ts"].to_numpy(np.int64)
        X = pair_frame(platform, state, u, e, ts, event_hood=hood_e)
        p = world.p_register(state, u, e, ts)
        parts.append(
            {
                "X": X,
                "session": cand["session"].to_numpy() + offset,
                "user": u,
                "event": e,
                "p_true": p,
                "y": (r.random(len(p)) < p).astype(np.int64),
                "kept": in_filter(platform, u, e, ts),
                "km": X["d_dist_km"].to_numpy(),
                "hours": X["d_hours_until"].to_numpy(),
                "no_friends": state.n_friends[u] == 0,
                "new_event": X["d_event_age_h"].to_numpy() < 24.0,
                "day": np.full(len(u), d, np.int64),
            }
        )
        offset += len(sess)

    def cat(key: str) -> np.ndarray:
        return np.concatenate([p[key] for p in parts])

    return EvalSet(
        X=pd.concat([p["X"] for p in parts], ignore_index=True),
        session=cat("session"),
        user=cat("user"),
        event=cat("event"),
        p_true=cat("p_true"),
        y=cat("y"),
        kept=cat("kept"),
        km=cat("km"),
        hours=cat("hours"),
        no_friends=cat("no_friends"),
        new_event=cat("new_event"),
        day=cat("day"),
    )


def ranking_metrics(
    session: np.ndarray, y: np.ndarray, s: np.ndarray, mask: np.ndarray | None = None
) -> dict[str, float]:
    """Per-session ranking metrics of scores ``s``, averaged over sessions with a positive (and,
    with ``mask``, over those sessions only)."""
    g = per_session(session, y, s, mask)
    if len(g) == 0:
        return {"sessions": 0}
    out = {
        "ndcg@10": float(g["ndcg@10"].mean()),
        "map@10": float(g["map@10"].mean()),
        "mrr": float(g["rr"].mean()),
        "sessions": len(g),
    }
    for k in KS:
        out[f"precision@{k}"] = float(np.mean(g[f"top{k}"] / k))
        out[f"recall@{k}"] = float(np.mean(g[f"top{k}"] / g["npos"]))
    return out


def per_session(
    session: np.ndarray, y: np.ndarray, s: np.ndarray, mask: np.ndarray | None = None
) -> pd.DataFrame:
    """One row per session with a positive: ``npos``, ``ndcg@10``, ``map@10``, ``rr``, hits."""
    df = pd.DataFrame({"session": session, "y": y, "s": s})
    df = df.sort_values(["session", "s"], ascending=[True, False], kind="stable")
    df["rank"] = df.groupby("session").cumcount() + 1
    npos = df.groupby("session")["y"].transform("sum").to_numpy()
    rank = df["rank"].to_numpy()
    yy = df["y"].to_numpy()
    df["dcg"] = np.where(rank <= 10, yy / np.log2(rank + 1), 0.0)
    df["hits"] = df.groupby("session")["y"].cumsum()
    df["ap"] = np.where((rank <= 10) & (yy == 1), df["hits"] / rank, 0.0)
    df["rr"] = np.where((yy == 1) & (df["hits"] == 1), 1.0 / rank, 0.0)
    for k in KS:
        df[f"top{k}"] = np.where(rank <= k, yy, 0)
    g = df.groupby("session").agg(
        npos=("y", "sum"),
        dcg=("dcg", "sum"),
        ap=("ap", "sum"),
        rr=("rr", "sum"),
        **{f"top{k}": (f"top{k}", "sum") for k in KS},
    )
    del npos
    g = g[g["npos"] > 0]
    if mask is not None:
        g = g[g.index.isin(np.unique(session[mask]))]
    ideal_cum = np.cumsum(1.0 / np.log2(np.arange(2, 12)))
    idcg = ideal_cum[np.minimum(g["npos"].to_numpy(), 10) - 1] if len(g) else 0.0
    g["ndcg@10"] = g["dcg"] / idcg
    g["map@10"] = g["ap"] / np.minimum(g["npos"], 10)
    return g


def paired_difference(a: pd.DataFrame, b: pd.DataFrame, metric: str) -> dict[str, float]:
    """Mean per-session difference ``a - b`` of ``metric`` with a 95% normal CI (the sessions
    are the same, so the comparison is paired)."""
    d = (a[metric] - b[metric].reindex(a.index)).to_numpy()
    se = float(d.std(ddof=1) / np.sqrt(len(d))) if len(d) > 1 else math.nan
    mean = float(d.mean()) if len(d) else math.nan
    return {"diff": mean, "ci_low": mean - 1.96 * se, "ci_high": mean + 1.96 * se}


def new_event_recall(session: np.ndarray, y: np.ndarray, s: np.ndarray, new: np.ndarray) -> float:
    """Share of the positives that are events in their first day which land in the top 10."""
    df = pd.DataFrame({"session": session, "y": y, "s": s, "new": new})
    df = df.sort_values(["session", "s"], ascending=[True, False], kind="stable")
    df["rank"] = df.groupby("session").cumcount() + 1
    pos = df[(df["y"] == 1) & df["new"]]
    return float((pos["rank"] <= 10).mean()) if len(pos) else math.nan


@dataclass(frozen=True)
class OfflineEvaluation:
    scores: dict[str, dict[str, float]]  # model (and "oracle") -> metrics on filtered candidates
    slices: dict[str, dict[str, float]]  # model -> slice metrics
    filtering: list[dict[str, float | None]]  # per radius: positives kept, candidates
    ablation: dict[str, dict[str, float]]  # group dropped -> lambdarank metrics
    paired: dict[str, dict[str, dict[str, float]]]  # "a vs b" -> metric -> diff and 95% CI
    eval_rows: int
    eval_sessions: int
    best: str

    def metrics(self) -> dict[str, Any]:
        models = {
            n: {"offline": m, "slices": self.slices.get(n, {})}
            for n, m in self.scores.items()
            if n != "oracle"
        }
        return {
            "models": models,
            "oracle": {"offline": self.scores["oracle"], "slices": self.slices["oracle"]},
            "evaluation": {
                "rows": self.eval_rows,
                "sessions": self.eval_sessions,
                "filtering": self.filtering,
                "ablation": self.ablation,
                "paired": self.paired,
                "best_model": self.best,
            },
        }


def filter_recall(ev: EvalSet) -> list[dict[str, float | None]]:
    n_sessions = len(np.unique(ev.session))
    total = max(int(ev.y.sum()), 1)
    rows: list[dict[str, float | None]] = []
    for radius in RADII_KM:
        keep = (ev.km <= radius) & (ev.hours <= DEFAULT_WINDOW_H)
        rows.append(
            {
                "radius_km": radius if math.isfinite(radius) else None,
                "window_h": DEFAULT_WINDOW_H,
                "recall_of_positives": float(ev.y[keep].sum() / total),
                "candidates_per_session": float(keep.sum() / max(n_sessions, 1)),
            }
        )
    return rows


def compute_offline(
    models: dict[str, Any],
    ev: EvalSet,
    train_X: pd.DataFrame,
    train_y: np.ndarray,
    train_group: np.ndarray,
    seed: int,
    n_estimators: int,
    progress: Any = None,
) -> OfflineEvaluation:
    k = ev.kept
    sess, y = ev.session[k], ev.y[k]
    Xk = ev.X[k].reset_index(drop=True)
    scores: dict[str, dict[str, float]] = {}
    slices: dict[str, dict[str, float]] = {}

    def evaluate(name: str, s: np.ndarray) -> None:
        scores[name] = ranking_metrics(sess, y, s)
        nf = ranking_metrics(sess, y, s, mask=ev.no_friends[k])
        slices[name] = {
            "no_friends_ndcg@10": nf.get("ndcg@10", math.nan),
            "no_friends_sessions": nf.get("sessions", 0),
            "new_events_recall@10": new_event_recall(sess, y, s, ev.new_event[k]),
        }

    sessions = {}
    for name in MODELS:
        s = score(models[name], Xk)
        evaluate(name, s)
        sessions[name] = per_session(sess, y, s)
    evaluate("oracle", ev.p_true[k])
    best = max(MODELS, key=lambda n: scores[n]["ndcg@10"])
    paired = {
        f"{best} vs {other}": {
            m: paired_difference(sessions[best], sessions[other], m) for m in ("ndcg@10", "map@10")
        }
        for other in MODELS
        if other != best
    }
    ablation: dict[str, dict[str, float]] = {}
    full = scores["lightgbm_lambdarank"]
    ablation["(none)"] = {"ndcg@10": full["ndcg@10"], "map@10": full["map@10"]}
    for i, (group, cols) in enumerate(FEATURE_GROUPS.items()):
        keep_cols = [c for c in train_X.columns if c not in cols]
        m = fit_model(
            make_model("lightgbm_lambdarank", seed, n_estimators),
            train_X[keep_cols],
            train_y,
            train_group,
        )
        r = ranking_metrics(sess, y, score(m, Xk[keep_cols]))
        ablation[group] = {
            "ndcg@10": r["ndcg@10"],
            "map@10": r["map@10"],
            "ndcg_drop": full["ndcg@10"] - r["ndcg@10"],
            "map_drop": full["map@10"] - r["map@10"],
        }
        if progress is not None:
            progress("ablation", i + 1, len(FEATURE_GROUPS))
    return OfflineEvaluation(
        scores,
        slices,
        filter_recall(ev),
        ablation,
        paired,
        len(ev.y),
        len(np.unique(ev.session)),
        best,
    )


HEAD = ("ndcg@10", "map@10", "mrr", "precision@5", "precision@10", "recall@5", "recall@10")


def headline_rows(result: OfflineEvaluation) -> list[list[Any]]:
    return [[n, *(result.scores[n][c] for c in HEAD)] for n in (*MODELS, "oracle")]


def report_offline(bp: Blueprint, result: OfflineEvaluation) -> None:
    bp.text(
        f"On the test days the world labels every open event of {result.eval_sessions:,} sessions "
        f"({result.eval_rows:,} user-event pairs): would the user register if it were shown "
        "first? Event filtering keeps those within "
        f"{DEFAULT_RADIUS_KM:g} km of home starting within {DEFAULT_WINDOW_H // 24} days; each "
        "model ranks what passes; metrics per session, over sessions with a positive. The oracle "
        "ranks by the world's true probability."
    )
    bp.table(["model", *HEAD], headline_rows(result), caption="Offline ranking metrics, test days")
    bp.text(
        f"**Paired differences** of the best model, {result.best}, against the others (the "
        "same sessions; mean per-session difference and 95% CI):"
    )
    bp.table(
        ["comparison", "nDCG@10 diff", "95% CI", "MAP@10 diff", "95% CI"],
        [
            [
                name,
                d["ndcg@10"]["diff"],
                f"[{d['ndcg@10']['ci_low']:.4f}, {d['ndcg@10']['ci_high']:.4f}]",
                d["map@10"]["diff"],
                f"[{d['map@10']['ci_low']:.4f}, {d['map@10']['ci_high']:.4f}]",
            ]
            for name, d in result.paired.items()
        ],
    )
    bp.text("**Event filtering and its recall cost** (share of all positives that pass):")
    bp.table(
        ["radius km", "window h", "recall of positives", "candidates per session"],
        [
            [
                f["radius_km"] if f["radius_km"] is not None else "any",
                f["window_h"],
                f["recall_of_positives"],
                f["candidates_per_session"],
            ]
            for f in result.filtering
        ],
    )
    _filter_figure(bp, result)
    bp.text(
        "**Slices**: users with no friends (nDCG@10), and events in their first day (recall@10):"
    )
    bp.table(
        ["model", "no-friends nDCG@10", "sessions", "new-event recall@10"],
        [
            [n, s["no_friends_ndcg@10"], s["no_friends_sessions"], s["new_events_recall@10"]]
            for n, s in result.slices.items()
        ],
    )
    bp.text(
        "**Feature-group ablation**: LambdaRank retrained without each group; the drop is what "
        "the group contributes."
    )
    bp.table(
        ["group dropped", "nDCG@10", "MAP@10", "nDCG drop", "MAP drop"],
        [
            [g, a["ndcg@10"], a["map@10"], a.get("ndcg_drop", 0.0), a.get("map_drop", 0.0)]
            for g, a in result.ablation.items()
        ],
    )


def _filter_figure(bp: Blueprint, result: OfflineEvaluation) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = result.filtering
    xs = [float(f["candidates_per_session"] or 0.0) for f in rows]
    ys = [float(f["recall_of_positives"] or 0.0) for f in rows]
    fig, ax = plt.subplots(figsize=(5, 3))
    ax.plot(xs, ys, marker="o")
    for f, x, y in zip(rows, xs, ys, strict=True):
        ax.annotate(
            "any" if f["radius_km"] is None else f"{f['radius_km']:g} km", (x, y), fontsize=8
        )
    ax.set_xlabel("candidates per request (ranking cost)")
    ax.set_ylabel("share of positives kept")
    bp.figure(fig, "filter_recall", "Event filtering: recall of positives against ranking cost")
