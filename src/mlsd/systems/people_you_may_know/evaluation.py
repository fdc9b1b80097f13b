"""Step 5 for people you may know: offline evaluation by time, next to the world's oracle.

Every model scores the test pairs (the candidates of the test users at day ``t``); each user's
candidates are ranked by score and compared with the friendships they actually formed in
``[t, t + Δ)``. Per user: recall@k (over *all* their new friendships, so the candidate
generator's misses count against every model), precision@k, AP@k (normalised by
``min(k, |relevant|)``, :func:`mlsd.metrics.average_precision_at_k`) and nDCG@k, averaged over
users; ROC-AUC and PR-AUC of the pair scores. The oracle ranks the same candidates by the
world's true daily friendship rate (:meth:`PymkWorld.oracle_rate`). Slices: new users (joined in
the last Δ days: the cold start) and low-degree users (at most 3 friends).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score, roc_auc_score

from mlsd.report import Blueprint
from mlsd.systems.people_you_may_know.features_split import PairSet, SplitData
from mlsd.systems.people_you_may_know.model import BASELINE, HEURISTICS, TrainedModels, score

KS = (10, 50)
#: Evaluated but never served: node2vec refits its embeddings on every graph it scores, so the
#: online path would refit them for each new user's request.
NOT_SERVED = ("node2vec_lightgbm",)
LOW_DEGREE = 3
ORACLE = "oracle"


def ranking_metrics(
    users: np.ndarray,
    relevant: np.ndarray,
    u: np.ndarray,
    s: np.ndarray,
    y: np.ndarray,
    ks: tuple[int, ...] = KS,
) -> dict[str, float]:
    """Mean recall@k, precision@k, map@k and ndcg@k over ``users`` (each with ``relevant`` > 0
    new friendships) of the candidate lists ``(u, score s, label y)``; ties keep list order."""
    out: dict[str, float] = {}
    if len(users) == 0:
        return {
            f"{m}@{k}": float("nan")
            for k in ks
            for m in ("recall", "hit", "precision", "map", "ndcg")
        }
    idx = np.searchsorted(users, u)
    order = np.lexsort((np.arange(len(u)), -s, idx))
    idx, y = idx[order], y[order].astype(np.float64)
    starts = np.searchsorted(idx, np.arange(len(users)))
    rank = np.arange(len(idx)) - starts[idx] + 1
    cum = np.cumsum(y)
    before = np.concatenate([[0.0], cum])[starts][idx]  # hits of earlier users
    hits_so_far = cum - before
    rel = relevant.astype(np.float64)
    for k in ks:
        top = rank <= k
        hits = np.bincount(idx[top], weights=y[top], minlength=len(users))
        ap = np.bincount(
            idx[top], weights=(y * hits_so_far / rank)[top], minlength=len(users)
        ) / np.minimum(rel, k)
        dcg = np.bincount(idx[top], weights=(y / np.log2(rank + 1))[top], minlength=len(users))
        disc = np.concatenate([[0.0], np.cumsum(1.0 / np.log2(np.arange(2, k + 2)))])
        idcg = disc[np.minimum(rel, k).astype(np.int64)]
        out[f"recall@{k}"] = float(np.mean(hits / rel))
        out[f"hit@{k}"] = float(np.mean(hits > 0))
        out[f"precision@{k}"] = float(np.mean(hits / k))
        out[f"map@{k}"] = float(np.mean(ap))
        out[f"ndcg@{k}"] = float(np.mean(dcg / idcg))
    return out


def _evaluate(ps: PairSet, s: np.ndarray, slices: dict[str, np.ndarray]) -> dict[str, Any]:
    rel = ps.relevant_counts()
    u = ps.pairs["u"].to_numpy()
    out: dict[str, Any] = ranking_metrics(ps.users, rel, u, s, ps.y)
    if 0 < ps.y.sum() < len(ps.y):
        out["roc_auc"] = float(roc_auc_score(ps.y, s))
        out["pr_auc"] = float(average_precision_score(ps.y, s))
    for name, mask in slices.items():
        keep = np.isin(u, ps.users[mask])
        m = ranking_metrics(ps.users[mask], rel[mask], u[keep], s[keep], ps.y[keep], (10,))
        out[f"{name}_recall@10"] = m["recall@10"]
        out[f"{name}_map@10"] = m["map@10"]
    return out


@dataclass(frozen=True)
class OfflineEvaluation:
    scores: dict[str, dict[str, Any]]
    oracle: dict[str, Any] | None
    chosen: str
    slice_users: dict[str, int]
    test_scores: dict[str, np.ndarray] = field(repr=False, default_factory=dict)

    def metrics(self) -> dict[str, Any]:
        return {
            "models": self.scores,
            "oracle": self.oracle,
            "chosen_model": self.chosen,
            "evaluation": {"slice_users": self.slice_users, "ks": list(KS)},
        }


def compute_offline(split: SplitData, models: TrainedModels) -> OfflineEvaluation:
    ps = split.test
    snap = ps.snap
    join = snap.users["join_day"].to_numpy()
    slices = {"low_degree": snap.deg[ps.users] <= LOW_DEGREE}
    if split.protocol == "time":  # a static graph has no new users
        slices = {"new_users": join[ps.users] >= snap.day - split.data.window, **slices}
    scores: dict[str, dict[str, Any]] = {}
    raw: dict[str, np.ndarray] = {}
    for name, model in models.models.items():
        uv = (ps.snap, ps.pairs["u"].to_numpy(), ps.pairs["v"].to_numpy())
        raw[name] = score(model, ps.X, uv)
        scores[name] = _evaluate(ps, raw[name], slices)
    oracle = None
    world = split.data.world
    if world is not None:
        u, v = ps.pairs["u"].to_numpy(), ps.pairs["v"].to_numpy()
        raw[ORACLE] = world.oracle_rate(snap.adj, snap.present, u, v)
        oracle = _evaluate(ps, raw[ORACLE], slices)
    servable = [n for n in scores if n not in NOT_SERVED]
    chosen = max(servable, key=lambda n: (scores[n]["recall@10"], scores[n]["map@10"]))
    return OfflineEvaluation(
        scores, oracle, chosen, {k: int(m.sum()) for k, m in slices.items()}, raw
    )


COLUMNS = (
    "recall@10",
    "hit@10",
    "precision@10",
    "map@10",
    "ndcg@10",
    "recall@50",
    "roc_auc",
    "pr_auc",
)


def headline_rows(result: OfflineEvaluation) -> list[list[Any]]:
    rows = []
    for name, m in result.scores.items():
        kind = "heuristic" if name in HEURISTICS else "learned"
        rows.append([name, kind, *(m.get(c) for c in COLUMNS)])
    if result.oracle is not None:
        rows.append([ORACLE, "world's truth", *(result.oracle.get(c) for c in COLUMNS)])
    return rows


def report_offline(bp: Blueprint, result: OfflineEvaluation) -> None:
    bp.section("Offline evaluation")
    bp.text(
        "Each test user's candidates ranked by each model against the friendships the user "
        "formed in the label window (recall counts the candidate generator's misses too). "
        + (
            "The oracle ranks the same candidates by the world's true friendship rate. "
            if result.oracle is not None
            else ""
        )
        + f"Served: **{result.chosen}** (best recall@10; node2vec + LightGBM is not a "
        "candidate: it refits its embeddings on every graph it scores, so the online path "
        f"would refit them per request); baseline: {BASELINE}."
    )
    bp.table(["model", "kind", *COLUMNS], headline_rows(result))
    rows = []
    for name, m in [*result.scores.items(), *([(ORACLE, result.oracle)] if result.oracle else [])]:
        rows.append(
            [
                name,
                m.get("new_users_recall@10"),
                m.get("new_users_map@10"),
                m.get("low_degree_recall@10"),
                m.get("low_degree_map@10"),
            ]
        )
    bp.text(
        "**Slices.** New users (joined in the last label window: "
        f"{result.slice_users.get('new_users', 0):,} test users) and low-degree users "
        f"(≤ {LOW_DEGREE} friends: "
        f"{result.slice_users['low_degree']:,})."
    )
    bp.table(
        [
            "model",
            "new users recall@10",
            "new users map@10",
            "low degree recall@10",
            "low degree map@10",
        ],
        rows,
    )


def as_frame(result: OfflineEvaluation) -> pd.DataFrame:
    return pd.DataFrame(headline_rows(result), columns=["model", "kind", *COLUMNS])
