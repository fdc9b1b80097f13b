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

from mlsd.engine import Engine, LocalEngine, score_rows
from mlsd.report import Blueprint
from mlsd.rng import rng
from mlsd.systems.event_rec.evaluation_metrics import (
    new_event_recall,
    paired_difference,
    per_session,
    ranking_metrics,
)
from mlsd.systems.event_rec.features import (
    DEFAULT_RADIUS_KM,
    DEFAULT_WINDOW_H,
    FEATURE_GROUPS,
    Platform,
    Rows,
    in_filter,
    pair_frame,
)
from mlsd.systems.event_rec.model import LIGHTGBM, MODELS, fit_rows, make_model, score
from mlsd.systems.event_rec.world import EventRecWorld, Log
from mlsd.systems.event_rec.world_config import DAY_S

log = logging.getLogger(__name__)

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
    world: EventRecWorld,
    platform: Platform,
    log_: Log,
    days: list[int],
    seed: int,
    purpose: str = "test",
) -> EvalSet:
    """The world's labels of every open event for a sample of each day's sessions; ``purpose``
    ("validation" or "test") names the random streams, so the two sets draw independently."""
    cfg = world.config
    per_day = max(1, cfg.eval_sessions // max(cfg.test_days, 1))
    r = rng(seed, f"event-rec/eval-labels/{purpose}")
    parts: list[dict[str, Any]] = []
    offset = 0
    hood_e = platform.event_hood()
    for d in days:
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


@dataclass(frozen=True)
class OfflineEvaluation:
    scores: dict[str, dict[str, float]]  # model (and "oracle") -> metrics on filtered candidates
    slices: dict[str, dict[str, float]]  # model -> slice metrics
    filtering: list[dict[str, float | None]]  # per radius: positives kept, candidates
    ablation: dict[str, dict[str, float]]  # group dropped -> metrics on the validation days
    paired: dict[str, dict[str, dict[str, float]]]  # "a vs b" -> metric -> diff and 95% CI
    eval_rows: int
    eval_sessions: int
    best: str  # the served model, chosen on the validation days (not here)
    ablation_model: str = "lightgbm_lambdarank"

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
                "ablation_model": self.ablation_model,
                "ablation_on": "validation",
                "paired": self.paired,
                "chosen_model": self.best,
                "chosen_on": "validation",
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


def compute_ablation(
    train: Rows,
    val_ev: EvalSet,
    model: str,
    params: dict[str, Any],
    seed: int,
    progress: Any = None,
) -> dict[str, dict[str, float]]:
    """``model`` (with its chosen ``params``) retrained on the training rows without each
    feature group, scored on the validation candidates: the drop is the group's contribution."""
    k = val_ev.kept
    sess, y = val_ev.session[k], val_ev.y[k]
    Xk = val_ev.X[k].reset_index(drop=True)

    def run(drop: tuple[str, ...]) -> dict[str, float]:
        cols = [c for c in train.X.columns if c not in drop]
        rows = Rows(train.X[cols], train.y, train.grade, train.group)
        m = fit_rows(make_model(model, seed, params=params), rows)
        return ranking_metrics(sess, y, score(m, Xk[cols]))

    full = run(())
    out = {"(none)": {"ndcg@10": full["ndcg@10"], "map@10": full["map@10"]}}
    for i, (group, cols) in enumerate(FEATURE_GROUPS.items()):
        r = run(cols)
        out[group] = {
            "ndcg@10": r["ndcg@10"],
            "map@10": r["map@10"],
            "ndcg_drop": full["ndcg@10"] - r["ndcg@10"],
            "map_drop": full["map@10"] - r["map@10"],
        }
        if progress is not None:
            progress("ablation", i + 1, len(FEATURE_GROUPS))
    return out


def compute_offline(
    models: dict[str, Any],
    chosen: str,
    ev: EvalSet,
    ablation: dict[str, dict[str, float]],
    ablation_model: str = "lightgbm_lambdarank",
    engine: Engine | None = None,
) -> OfflineEvaluation:
    """Score every (already chosen and refit) model once on the test days; ``chosen`` was
    picked on the validation days, and ``ablation`` was measured there too. The scoring is a
    batch job on ``engine`` (blocks of rows in parallel on Ray)."""
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
        s = score_rows(engine or LocalEngine(), score, models[name], Xk)
        evaluate(name, s)
        sessions[name] = per_session(sess, y, s)
    evaluate("oracle", ev.p_true[k])
    pairs = [(chosen, other) for other in MODELS if other != chosen]
    if chosen not in LIGHTGBM:
        pairs.append(LIGHTGBM[::-1])
    paired = {
        f"{a} vs {b}": {
            m: paired_difference(sessions[a], sessions[b], m) for m in ("ndcg@10", "map@10")
        }
        for a, b in pairs
    }
    return OfflineEvaluation(
        scores,
        slices,
        filter_recall(ev),
        ablation,
        paired,
        len(ev.y),
        len(np.unique(ev.session)),
        chosen,
        ablation_model,
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
        f"**Paired differences** of the served model, {result.best} (chosen on the validation "
        "days), against the others, and of LambdaRank against pointwise LightGBM (the same "
        "test sessions; mean per-session difference and 95% CI):"
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
        f"**Feature-group ablation** (validation days): {result.ablation_model} with its chosen "
        "settings, retrained on the training days without each group; the drop in validation "
        "nDCG@10 is what the group contributes."
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
