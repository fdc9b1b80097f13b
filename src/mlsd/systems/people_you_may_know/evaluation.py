"""Step 5 for people you may know: offline evaluation by time, next to the world's oracle.

Every model scores the test pairs (the candidates of the test users at day ``t``); each user's
candidates are ranked by score and compared with the friendships they actually formed in
``[t, t + Δ)``. Per user: recall@k (over *all* their new friendships, so the candidate
generator's misses count against every model), precision@k, AP@k (normalised by
``min(k, |relevant|)``, :func:`mlsd.metrics.average_precision_at_k`) and nDCG@k, averaged over
users; ROC-AUC and PR-AUC of the pair scores. The oracle ranks the same candidates by the
world's true daily friendship rate (:meth:`PymkWorld.oracle_rate`). Slices: new users (joined in
the last Δ days: the cold start) and low-degree users (at most 3 friends).

The served model is chosen on the validation users (held out of training, never the test:
:func:`choose`); every learned model is compared with Adamic–Adar on the same test users, a
paired t-test per user (:func:`versus_adamic_adar`). A graph without time takes its ROC-AUC
from the standard protocol's set (removed edges against as many sampled non-edges).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score, roc_auc_score

from mlsd.comparisons import compare_paired
from mlsd.report import Blueprint
from mlsd.systems.people_you_may_know.features_split import PairSet, SplitData
from mlsd.systems.people_you_may_know.model import BASELINE, HEURISTICS, TrainedModels, score

KS = (10, 50)
#: Evaluated but never served: node2vec refits its embeddings on every graph it scores, so the
#: online path would refit them for each new user's request.
NOT_SERVED = ("node2vec_lightgbm",)
LOW_DEGREE = 3
ORACLE = "oracle"


def per_user_ranking(
    users: np.ndarray,
    relevant: np.ndarray,
    u: np.ndarray,
    s: np.ndarray,
    y: np.ndarray,
    ks: tuple[int, ...] = KS,
) -> dict[str, np.ndarray]:
    """Per user of ``users`` (sorted, each with ``relevant`` > 0 new friendships): recall@k,
    hit@k, precision@k, AP@k and nDCG@k of the candidate lists ``(u, score s, label y)``; ties
    keep list order."""
    out: dict[str, np.ndarray] = {}
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
        out[f"recall@{k}"] = hits / rel
        out[f"hit@{k}"] = (hits > 0).astype(np.float64)
        out[f"precision@{k}"] = hits / k
        out[f"map@{k}"] = ap
        out[f"ndcg@{k}"] = dcg / idcg
    return out


def ranking_metrics(
    users: np.ndarray,
    relevant: np.ndarray,
    u: np.ndarray,
    s: np.ndarray,
    y: np.ndarray,
    ks: tuple[int, ...] = KS,
) -> dict[str, float]:
    """Mean recall@k, hit@k, precision@k, map@k and ndcg@k over ``users`` (see
    :func:`per_user_ranking`)."""
    if len(users) == 0:
        return {
            f"{m}@{k}": float("nan")
            for k in ks
            for m in ("recall", "hit", "precision", "map", "ndcg")
        }
    return {k: float(np.mean(v)) for k, v in per_user_ranking(users, relevant, u, s, y, ks).items()}


def _evaluate(ps: PairSet, s: np.ndarray, slices: dict[str, np.ndarray]) -> dict[str, Any]:
    rel = ps.relevant_counts()
    u = ps.pairs["u"].to_numpy()
    out: dict[str, Any] = ranking_metrics(ps.users, rel, u, s, ps.y)
    out |= _auc(ps, s)
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
    validation: dict[str, float]  # the choice's metric of each servable model on validation
    choice_metric: str
    versus: dict[str, dict[str, Any]]  # learned model -> paired comparison with Adamic–Adar
    test_scores: dict[str, np.ndarray] = field(repr=False, default_factory=dict)

    def metrics(self) -> dict[str, Any]:
        return {
            "models": self.scores,
            "oracle": self.oracle,
            "chosen_model": self.chosen,
            "evaluation": {
                "slice_users": self.slice_users,
                "ks": list(KS),
                "chosen_on": f"validation {self.choice_metric}",
                "validation": self.validation,
                "versus_adamic_adar": self.versus,
            },
        }


def _scores(ps: PairSet, model: Any) -> np.ndarray:
    return score(model, ps.X, (ps.snap, ps.pairs["u"].to_numpy(), ps.pairs["v"].to_numpy()))


def choose(split: SplitData, models: TrainedModels) -> tuple[str, dict[str, float], str]:
    """The served model: the servable model with the best validation recall@10 (ROC-AUC for a
    graph without time, whose training pairs are edges and random non-edges, not lists);
    never chosen on the test. A metric that cannot be computed counts as -1."""
    ps = split.valid
    metric = "recall@10" if split.protocol == "time" else "roc_auc"
    out: dict[str, float] = {}
    for name, model in models.models.items():
        if name in NOT_SERVED:
            continue
        if not len(ps.users):
            m: dict[str, Any] = {}
        elif metric == "roc_auc":  # pairs, not lists: not every user has a new friendship
            m = _auc(ps, _scores(ps, model))
        else:
            m = _evaluate(ps, _scores(ps, model), {})
        value = float(m.get(metric, float("nan")))
        out[name] = value if np.isfinite(value) else -1.0
    chosen = max(out, key=lambda n: out[n])  # ties: the first in the models' order
    return chosen, out, metric


def versus_adamic_adar(ps: PairSet, raw: dict[str, np.ndarray]) -> dict[str, dict[str, Any]]:
    """Each learned model against Adamic–Adar on the same test users: recall@10 and map@10,
    paired per user (:func:`mlsd.comparisons.compare_paired`)."""
    rel = ps.relevant_counts()
    u = ps.pairs["u"].to_numpy()
    if len(ps.users) < 2 or "adamic_adar" not in raw:
        return {}
    base = per_user_ranking(ps.users, rel, u, raw["adamic_adar"], ps.y, (10,))
    out = {}
    for name, s in raw.items():
        if name in HEURISTICS or name == ORACLE:
            continue
        mine = per_user_ranking(ps.users, rel, u, s, ps.y, (10,))
        out[name] = {
            m: compare_paired(base[m], mine[m], metric=m).to_dict() for m in ("recall@10", "map@10")
        }
    return out


def compute_offline(split: SplitData, models: TrainedModels) -> OfflineEvaluation:
    ps = split.test
    snap = ps.snap
    join = snap.users["join_day"].to_numpy()
    slices = {"low_degree": snap.deg[ps.users] <= LOW_DEGREE}
    if split.protocol == "time":  # a static graph has no new users
        slices = {"new_users": join[ps.users] >= snap.day - split.data.window, **slices}
    chosen, validation, metric = choose(split, models)
    scores: dict[str, dict[str, Any]] = {}
    raw: dict[str, np.ndarray] = {}
    for name, model in models.models.items():
        raw[name] = _scores(ps, model)
        scores[name] = _evaluate(ps, raw[name], slices)
        if split.auc is not None:  # the standard protocol's ROC-AUC set
            scores[name] |= _auc(split.auc, _scores(split.auc, model))
    oracle = None
    world = split.data.world
    if world is not None:
        u, v = ps.pairs["u"].to_numpy(), ps.pairs["v"].to_numpy()
        raw[ORACLE] = world.oracle_rate(snap.adj, snap.present, u, v)
        oracle = _evaluate(ps, raw[ORACLE], slices)
    return OfflineEvaluation(
        scores,
        oracle,
        chosen,
        {k: int(m.sum()) for k, m in slices.items()},
        validation,
        metric,
        versus_adamic_adar(ps, raw),
        raw,
    )


def _auc(ps: PairSet, s: np.ndarray) -> dict[str, float]:
    if not 0 < ps.y.sum() < len(ps.y):
        return {}
    return {
        "roc_auc": float(roc_auc_score(ps.y, s)),
        "pr_auc": float(average_precision_score(ps.y, s)),
    }


COLUMNS = (
    "recall@10",
    "hit@10",
    "precision@10",
    "map@10",
    "ndcg@10",
    "recall@50",
    "precision@50",
    "map@50",
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
        + f"Served: **{result.chosen}**, the best validation {result.choice_metric} "
        "(validation: a fifth of the training snapshot's users, held out of training; "
        + ", ".join(f"{n} {v:.4f}" for n, v in result.validation.items())
        + "; node2vec + LightGBM is not a candidate: it refits its embeddings on every graph "
        f"it scores, so the online path would refit them per request); baseline: {BASELINE}."
    )
    bp.table(["model", "kind", *COLUMNS], headline_rows(result))
    if result.versus:
        bp.text(
            "**Against Adamic–Adar**, on the same test users (paired t-test over users; "
            "difference = model − Adamic–Adar, 95% CI):"
        )
        bp.table(
            ["model", "recall@10", "diff (95% CI)", "map@10", "diff (95% CI)"],
            [
                [
                    name,
                    *(
                        x
                        for m in ("recall@10", "map@10")
                        for x in (
                            f"{c[m]['treatment']:.4f} vs {c[m]['control']:.4f}",
                            f"{c[m]['diff']:+.4f} [{c[m]['ci_low']:+.4f}, {c[m]['ci_high']:+.4f}]",
                        )
                    ),
                ]
                for name, c in result.versus.items()
            ],
        )
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
