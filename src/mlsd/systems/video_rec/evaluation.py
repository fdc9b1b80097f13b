"""Step 5 for video recommendation, offline: every stage next to the world's oracle (book ch. 6).

The held-out truth comes from the world on the day after the log ends: for a sample of users,
the videos each would watch if shown every unwatched video at the top slot (a Bernoulli draw of
the true click probability), graded by the minutes they would watch. The oracle ranks by the true
expected watch minutes: the best achievable list. New videos of that day and new users (no
history) are the cold-start slices. The online half of step 5 (the A/B test and interleaving)
is in ``evaluation_online``; the MovieLens protocol in ``evaluation_movielens``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np

from mlsd import metrics as mm
from mlsd.report import Blueprint
from mlsd.rng import rng
from mlsd.systems.video_rec.features import Demographics
from mlsd.systems.video_rec.serving import Recommender
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
STAGE_KEYS = (
    "precision@10",
    "map@10",
    "ndcg@10",
    "recall@10",
    "diversity",
    "coverage",
    "true_minutes@10",
)


def eval_users(world: VideoRecWorld, n: int, gen: np.random.Generator) -> np.ndarray:
    """Up to ``n`` users: all of today's new users (cold start) up to a quarter, then others."""
    signup = world.users["signup_day"].to_numpy()
    new = np.flatnonzero(signup == world.day)
    old = np.flatnonzero(signup < world.day)
    new = gen.choice(new, min(len(new), n // 4), replace=False)
    old = gen.choice(old, min(len(old), n - len(new)), replace=False)
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


@dataclass(frozen=True)
class OfflineResult:
    """Retrieval recall per source, ranking metrics per stage, cold-start slices, oracle."""

    day: int
    users: int
    relevant_per_user: float
    retrieval: dict[str, dict[str, float]]  # source -> recall@100, recall@500
    merged: dict[str, float]  # the merged candidate set: candidates, recall@all
    stages: dict[str, dict[str, float]]  # mode -> ranking metrics
    oracle: dict[str, float]  # the oracle's recall@100/500 and ranking metrics
    cold_start: dict[str, Any]

    def metrics(self) -> dict[str, Any]:
        models: dict[str, dict[str, float]] = {n: dict(r) for n, r in self.retrieval.items()}
        models["merged"] = dict(self.merged)
        for mode, figures in self.stages.items():
            models.setdefault(mode, {}).update(figures)
        return {
            "models": models,
            "oracle": dict(self.oracle),
            "offline": {
                "day": self.day,
                "users": self.users,
                "relevant_per_user": self.relevant_per_user,
                "cold_start": self.cold_start,
            },
        }


def compute_offline(
    rec: Recommender, world: VideoRecWorld, n_users: int, seed: int
) -> OfflineResult:
    """Sample users and their held-out truth today; measure every source and stage."""
    gen = rng(seed, "video-rec/offline-eval")
    users = eval_users(world, n_users, gen)
    rel, oracle = world.relevance_sample(users, gen)
    cats = dict(enumerate(rec.cat.videos["category"].tolist()))
    n_items = len(world.eligible_videos())
    row = {int(u): i for i, u in enumerate(users)}

    def true_minutes(recs: dict[int, list[int]]) -> dict[int, float]:
        return {u: float(np.sum(oracle[row[u], ids])) for u, ids in recs.items()}

    # -- retrieval: recall@100 / @500 of each source ------------------------------------
    relevant = {u: set(r) for u, r in rel.items()}
    demo = Demographics.of(rec.users, users)
    src = rec.sources(rec.us, users, demo, True, 500, 500, 500)
    retrieval: dict[str, dict[str, float]] = {}
    for name, lists in src.items():
        recs = {int(u): [int(v) for v in lst] for u, lst in zip(users, lists, strict=True)}
        retrieval[name] = {
            f"recall@{k}": mm.mean_over_users(mm.recall_at_k, recs, relevant, k) for k in (100, 500)
        }
    merged = rec.sources(rec.us, users, demo, True, rec.n_tower, rec.n_popular, rec.n_cowatch)
    sizes, hits = [], []
    for i, u in enumerate(users):
        cand = set().union(*(set(lists[i].tolist()) for lists in merged.values()))
        sizes.append(len(cand))
        if relevant[int(u)]:
            hits.append(len(cand & relevant[int(u)]) / len(relevant[int(u)]))
    oracle_lists = {int(u): np.argsort(-oracle[i])[:500].tolist() for i, u in enumerate(users)}
    oracle_recall = {
        f"recall@{k}": mm.mean_over_users(mm.recall_at_k, oracle_lists, relevant, k)
        for k in (100, 500)
    }
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
    oracle_stage = ranking_metrics(top, rel, true_minutes(top), cats, n_items)
    return OfflineResult(
        day=world.day,
        users=len(users),
        relevant_per_user=float(np.mean([len(r) for r in rel.values()])),
        retrieval=retrieval,
        merged={"candidates": float(np.mean(sizes)), "recall@all": float(np.mean(hits))},
        stages=stages,
        oracle={**oracle_recall, **oracle_stage},
        cold_start=_cold_start(rec, world, users, rel, src, lists_by_mode),
    )


def _cold_start(
    rec: Recommender,
    world: VideoRecWorld,
    users: np.ndarray,
    rel: dict[int, dict[int, float]],
    src: dict[str, list[np.ndarray]],
    lists_by_mode: dict[str, dict[int, list[int]]],
) -> dict[str, Any]:
    """New users (no history) and returning users per stage; recall of today's new videos."""
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
    return {"users": slices, "new_video_recall@100": cold_videos, "new_videos": len(new_videos)}


def report_offline(bp: Blueprint, result: OfflineResult) -> None:
    bp.section("Offline evaluation")
    bp.text(
        f"Evaluated on day {result.day}, the day after the log, for {result.users} users (a "
        "quarter of them new today, without history). The held-out truth is what each user "
        "would watch if shown every unwatched video at the top slot (a draw of the world's true "
        f"click probabilities; {result.relevant_per_user:.1f} videos per user), graded by the "
        "minutes watched. The oracle ranks by the true expected watch minutes."
    )
    rows = [
        [name, r.get("recall@100"), r.get("recall@500")] for name, r in result.retrieval.items()
    ]
    rows.append(["oracle", result.oracle["recall@100"], result.oracle["recall@500"]])
    m = result.merged
    bp.table(
        ["candidate source", "recall@100", "recall@500"],
        rows,
        caption=f"Retrieval. The merged candidate set ({m['candidates']:.0f} videos per "
        f"user) recalls {m['recall@all']:.3f} of the relevant videos.",
    )
    stages = {**result.stages, "oracle": result.oracle}
    bp.table(
        ["stage", *STAGE_KEYS],
        [[MODE_LABELS.get(n, n)] + [r[k] for k in STAGE_KEYS] for n, r in stages.items()],
        caption="Each stage and baseline next to the oracle. true_minutes@10 = the world's "
        "expected watch minutes of the 10 recommended videos.",
    )
    cs = result.cold_start
    bp.table(
        ["cold-start slice", "users", "nDCG@10", "precision@10"],
        [[n, r["users"], r["ndcg@10"], r["precision@10"]] for n, r in cs["users"].items()],
    )
    bp.text(
        f"New videos ({cs['new_videos']} uploaded today, no interactions): recall@100 of the "
        "relevant new videos is "
        + ", ".join(f"{k} {v:.3f}" for k, v in cs["new_video_recall@100"].items())
        + ". The content tower (title embedding, category, duration) is what retrieves them."
    )


# ---- summary -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class SummaryResult:
    """The run's headline numbers, from the offline, serving and online results."""

    ndcg_full: float
    ndcg_popular: float
    ndcg_cowatch: float
    ndcg_oracle: float
    large_catalogue_videos: int
    large_catalogue_p99_ms: float
    online_decision: str

    def metrics(self) -> dict[str, Any]:
        return {
            "summary": {
                "ndcg@10_full": self.ndcg_full,
                "ndcg@10_popular": self.ndcg_popular,
                "ndcg@10_cowatch": self.ndcg_cowatch,
                "ndcg@10_oracle": self.ndcg_oracle,
                "large_catalogue_p99_ms": self.large_catalogue_p99_ms,
            }
        }


def compute_summary(
    offline: OfflineResult, large_videos: int, large_p99_ms: float, decision: str
) -> SummaryResult:
    st = offline.stages
    return SummaryResult(
        st["full"]["ndcg@10"],
        st["popular"]["ndcg@10"],
        st["cowatch"]["ndcg@10"],
        offline.oracle["ndcg@10"],
        large_videos,
        large_p99_ms,
        decision,
    )


def report_summary(bp: Blueprint, result: SummaryResult) -> None:
    bp.section("Summary")
    bp.text(
        f"- nDCG@10: full stack {result.ndcg_full:.4f}, popular {result.ndcg_popular:.4f}, "
        f"co-watch {result.ndcg_cowatch:.4f}, oracle {result.ndcg_oracle:.4f}.\n"
        f"- Large catalogue ({result.large_catalogue_videos:,} videos) p99 "
        f"{result.large_catalogue_p99_ms:.1f} ms per request.\n"
        f"- Online: {result.online_decision}."
    )
