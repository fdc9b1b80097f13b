"""Offline evaluation of every stage next to the world's oracle (book ch. 6, "Evaluation").

The held-out truth comes from the world on the day after the log ends: for a sample of users,
the videos each would watch if shown every unwatched video at the top slot (a Bernoulli draw of
the true click probability), graded by the minutes they would watch. The oracle ranks by the true
expected watch minutes: the best achievable list. New videos of that day and new users (no
history) are the cold-start slices.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from mlsd import metrics as mm
from mlsd.runner import RunContext
from mlsd.systems.video_rec.pipeline import Recommender
from mlsd.systems.video_rec.world import VideoRecWorld

log = logging.getLogger(__name__)

K = 10
MODE_LABELS = {
    "popular": "popular (baseline)",
    "cowatch": "co-watch (baseline)",
    "two_tower": "two-tower retrieval only",
    "ranked": "two-tower + sources + ranking",
    "full": "full stack (+ re-ranking)",
}


def eval_users(world: VideoRecWorld, n: int, rng: np.random.Generator) -> np.ndarray:
    """Up to ``n`` users: all of today's new users (cold start) up to a quarter, then others."""
    signup = world.users["signup_day"].to_numpy()
    new = np.flatnonzero(signup == world.day)
    old = np.flatnonzero(signup < world.day)
    new = rng.choice(new, min(len(new), n // 4), replace=False)
    old = rng.choice(old, min(len(old), n - len(new)), replace=False)
    return np.sort(np.concatenate([new, old]))


def ranking_metrics(
    recs: dict[int, list[int]],
    rel: dict[int, dict[int, float]],
    oracle_value: dict[int, float],
    categories: dict[int, str],
    n_items: int,
) -> dict[str, float]:
    relevant = {u: set(r) for u, r in rel.items()}
    return {
        "precision@10": mm.mean_over_users(mm.precision_at_k, recs, relevant, K),
        "map@10": mm.mean_over_users(mm.average_precision_at_k, recs, relevant, K),
        "ndcg@10": mm.mean_over_users(mm.ndcg_at_k, recs, rel, K),
        "recall@10": mm.mean_over_users(mm.recall_at_k, recs, relevant, K),
        "diversity": mm.intra_list_diversity(recs, categories),
        "coverage": mm.catalog_coverage(recs, n_items),
        "true_minutes@10": float(np.mean([oracle_value[u] for u in recs])),
    }


def evaluate_offline(
    ctx: RunContext,
    rec: Recommender,
    world: VideoRecWorld,
    users: np.ndarray,
    rel: dict[int, dict[int, float]],
    oracle: np.ndarray,
) -> dict[str, Any]:
    """Retrieval recall per source, ranking metrics per stage, cold-start slices."""
    cats = dict(enumerate(rec.cat.videos["category"].tolist()))
    n_items = len(world.eligible_videos())
    row = {int(u): i for i, u in enumerate(users)}

    def true_minutes(recs: dict[int, list[int]]) -> dict[int, float]:
        return {u: float(np.sum(oracle[row[u], ids])) for u, ids in recs.items()}

    out: dict[str, Any] = {
        "users": len(users),
        "relevant_per_user": float(np.mean([len(r) for r in rel.values()])),
    }
    # -- retrieval: recall@100 / @500 of each source ------------------------------------
    relevant = {u: set(r) for u, r in rel.items()}
    src = rec.sources(rec.us, users, _demo(rec, users), True, 500, 500, 500)
    retrieval: dict[str, dict[str, float]] = {}
    for name, lists in src.items():
        recs = {int(u): [int(v) for v in lst] for u, lst in zip(users, lists, strict=True)}
        retrieval[name] = {
            f"recall@{k}": mm.mean_over_users(mm.recall_at_k, recs, relevant, k) for k in (100, 500)
        }
    merged = rec.sources(
        rec.us, users, _demo(rec, users), True, rec.n_tower, rec.n_popular, rec.n_cowatch
    )
    sizes, hits = [], []
    for i, u in enumerate(users):
        cand = set().union(*(set(lists[i].tolist()) for lists in merged.values()))
        sizes.append(len(cand))
        if relevant[int(u)]:
            hits.append(len(cand & relevant[int(u)]) / len(relevant[int(u)]))
    retrieval["merged"] = {"candidates": float(np.mean(sizes)), "recall@all": float(np.mean(hits))}
    oracle_lists = {int(u): np.argsort(-oracle[i])[:500].tolist() for i, u in enumerate(users)}
    retrieval["oracle"] = {
        f"recall@{k}": mm.mean_over_users(mm.recall_at_k, oracle_lists, relevant, k)
        for k in (100, 500)
    }
    out["retrieval"] = retrieval
    # -- ranking: each stage and baseline, and the oracle --------------------------------
    stages: dict[str, dict[str, float]] = {}
    lists_by_mode: dict[str, dict[int, list[int]]] = {}
    for mode in MODE_LABELS:
        r = rec.recommend_users(users, K, mode)
        recs = {int(u): [int(v) for v in ids] for u, ids in zip(users, r.ids, strict=True)}
        lists_by_mode[mode] = recs
        stages[mode] = ranking_metrics(recs, rel, true_minutes(recs), cats, n_items)
        stages[mode]["ms_per_user"] = sum(r.timings_ms.values()) / len(users)
    top = {u: lst[:K] for u, lst in oracle_lists.items()}
    stages["oracle"] = ranking_metrics(top, rel, true_minutes(top), cats, n_items)
    out["stages"] = stages
    # -- cold start ----------------------------------------------------------------------
    new_users = {int(u) for u in users if world.users["signup_day"].iat[int(u)] == world.day}
    slices: dict[str, dict[str, float]] = {}
    for name, members in (
        ("new users", new_users),
        ("returning users", {int(u) for u in users} - new_users),
    ):
        if not members:
            continue
        sub_rel = {u: rel[u] for u in members}
        for mode in ("popular", "two_tower", "full"):
            recs = {u: lists_by_mode[mode][u] for u in members}
            slices[f"{name} / {MODE_LABELS[mode]}"] = {
                "users": len(members),
                "ndcg@10": mm.mean_over_users(mm.ndcg_at_k, recs, sub_rel, K),
                "precision@10": mm.mean_over_users(
                    mm.precision_at_k, recs, {u: set(r) for u, r in sub_rel.items()}, K
                ),
            }
    new_videos = set(np.flatnonzero(rec.cat.upload_day == world.day).tolist())
    new_rel = {u: {v for v in r if v in new_videos} for u, r in rel.items()}
    cold_videos = {}
    for name in ("two_tower", "popular"):
        if name in src:
            recs = {
                int(u): [int(v) for v in lst[:100]] for u, lst in zip(users, src[name], strict=True)
            }
            cold_videos[name] = mm.mean_over_users(mm.recall_at_k, recs, new_rel, 100)
    out["cold_start"] = {
        "users": slices,
        "new_video_recall@100": cold_videos,
        "new_videos": len(new_videos),
    }
    return out


def _demo(rec: Recommender, users: np.ndarray) -> Any:
    from mlsd.systems.video_rec.features import Demographics

    return Demographics.of(rec.users, users)
