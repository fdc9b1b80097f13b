"""Step 5 for video search, offline: every retriever, each fusion and the final ranking on
the test days' queries, judged against the world's graded relevance (the oracle), with the
slices the chapter cares about.

Metrics (:mod:`mlsd.metrics`, one definition for every system): nDCG@10 with graded gains
(grades 0-3 as gains, log2 discount), and, with "relevant" meaning grade >= 2 (the video
covers at least one concept of the intent in its primary topic), MRR, MAP@100 and
recall@100. Slices: tail queries (intents outside the head tenth), queries with a typo, and
**poor text**: relevance restricted to the videos whose text is generic or misleading, over
the queries that have such a relevant video (the videos only the visual half can find).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from mlsd.metrics import average_precision_at_k, ndcg_at_k, recall_at_k, reciprocal_rank
from mlsd.report import Blueprint

DEPTH = 100
MIN_GRADE = 2
HEADLINE = ("ndcg@10", "mrr", "map@100", "recall@100")


def ir_metrics(
    rankings: Sequence[np.ndarray],
    grades: Sequence[Mapping[int, int]],
    min_grade: int = MIN_GRADE,
    k: int = DEPTH,
) -> dict[str, float]:
    """Mean nDCG@10 (graded), MRR, MAP@k and recall@k (grade >= ``min_grade`` relevant) over
    the queries with a relevant item; ``nan`` where none has one."""
    nd, rr, ap, rc = [], [], [], []
    for ranked, g in zip(rankings, grades, strict=True):
        rec = [int(x) for x in ranked[:k]]
        rel = {i for i, v in g.items() if v >= min_grade}
        gains = {i: float(v) for i, v in g.items() if v > 0}
        if gains:
            nd.append(ndcg_at_k(rec, gains, 10) if rec else 0.0)
        if rel:
            rr.append(reciprocal_rank(rec, rel, k) if rec else 0.0)
            ap.append(average_precision_at_k(rec, rel, k) if rec else 0.0)
            rc.append(recall_at_k(rec, rel, k) if rec else 0.0)

    def mean(x: list[float]) -> float:
        return float(np.mean(x)) if x else math.nan

    return {
        "ndcg@10": mean(nd),
        "mrr": mean(rr),
        f"map@{k}": mean(ap),
        f"recall@{k}": mean(rc),
        "queries": float(len(nd)),
    }


def oracle_rankings(grades: Sequence[Mapping[int, int]]) -> list[np.ndarray]:
    """The ideal ranking of each query: its videos by grade."""
    return [np.array(sorted(g, key=lambda i: -g[i]), np.int64) for g in grades]


@dataclass(frozen=True)
class OfflineEvaluation:
    scores: dict[str, dict[str, float]]  # method (and "oracle") -> metric -> value
    slices: dict[str, dict[str, dict[str, float]]]  # slice -> method -> metric -> value
    queries: int
    duplicates_in_top10: dict[str, float]  # method -> mean duplicate pairs in the top 10
    unsafe_in_top10: dict[str, float]

    def metrics(self) -> dict[str, Any]:
        models: dict[str, dict[str, Any]] = {
            m: {"offline": s, "slices": {}} for m, s in self.scores.items() if m != "oracle"
        }
        for sl, by in self.slices.items():
            for m, figures in by.items():
                if m in models:
                    models[m]["slices"][sl] = figures
        return {
            "models": models,
            "oracle": {"offline": self.scores.get("oracle")},
            "evaluation": {
                "queries": self.queries,
                "duplicates_in_top10": self.duplicates_in_top10,
                "unsafe_in_top10": self.unsafe_in_top10,
            },
        }


def restrict(grades: Sequence[Mapping[int, int]], rows: set[int]) -> list[dict[int, int]]:
    return [{i: v for i, v in g.items() if i in rows} for g in grades]


def compute_offline(
    rankings: Mapping[str, list[np.ndarray]],
    grades: list[dict[int, int]],
    masks: Mapping[str, np.ndarray],
    poor_rows: set[int],
    duplicate_of: np.ndarray,
    unsafe: np.ndarray,
) -> OfflineEvaluation:
    """Every method's metrics, overall and per slice (``masks``: slice -> query mask)."""
    all_r = {**rankings, "oracle": oracle_rankings(grades)}
    scores = {m: ir_metrics(r, grades) for m, r in all_r.items()}
    slices: dict[str, dict[str, dict[str, float]]] = {}
    for name, mask in masks.items():
        idx = np.flatnonzero(mask)
        slices[name] = {
            m: ir_metrics([r[i] for i in idx], [grades[i] for i in idx]) for m, r in all_r.items()
        }
    poor = restrict(grades, poor_rows)
    slices["poor_text"] = {m: ir_metrics(r, poor) for m, r in rankings.items()}
    dups, bad = {}, {}
    for m, rs in rankings.items():
        d, u = [], []
        for r in rs:
            top = np.asarray(r[:10], np.int64)
            src = np.where(duplicate_of[top] >= 0, duplicate_of[top], top)
            d.append(len(top) - len(np.unique(src)))
            u.append(int(unsafe[top].sum()))
        dups[m], bad[m] = float(np.mean(d)), float(np.mean(u))
    return OfflineEvaluation(scores, slices, len(grades), dups, bad)


LABELS = {
    "bm25": "BM25 (text search)",
    "semantic": "semantic text (MiniLM)",
    "visual": "visual (dual encoder)",
    "rrf_text": "RRF: BM25 + semantic",
    "rrf_all": "RRF: all three",
    "fusion": "learned fusion (LambdaRank)",
    "final": "final: fusion + re-ranking",
    "oracle": "oracle (ideal ranking)",
}


def report_offline(bp: Blueprint, r: OfflineEvaluation) -> None:
    bp.text(
        f"{r.queries} distinct test queries, judged against every video of the catalogue by "
        "the world's graded relevance (nDCG with grades 0-3 as gains; MRR, MAP@100 and "
        "recall@100 count grade >= 2 as relevant). The oracle ranks by the true grade."
    )
    bp.table(
        ["ranker", *HEADLINE, "unsafe in top 10", "duplicates in top 10"],
        [
            [
                LABELS.get(m, m),
                *(round(s[h], 4) for h in HEADLINE),
                r.unsafe_in_top10.get(m, "-"),
                r.duplicates_in_top10.get(m, "-"),
            ]
            for m, s in r.scores.items()
        ],
    )
    bp.text(
        "Slices: nDCG@10 and recall@100 on tail queries, on queries with a typo, and on the "
        "videos with poor or misleading text (relevance restricted to them)."
    )
    names = list(r.slices)
    methods = [m for m in r.scores if m != "oracle"]
    bp.table(
        ["ranker", *(f"{s} nDCG@10 / recall@100" for s in names)],
        [
            [
                LABELS.get(m, m),
                *(
                    f"{r.slices[s][m]['ndcg@10']:.4f} / {r.slices[s][m]['recall@100']:.4f}"
                    for s in names
                ),
            ]
            for m in methods
        ],
    )
