"""Step 5 for similar listings, offline: the chapter's metric and the next click (book ch. 9).

The test set is the sessions of the last days, which no model trained on. Two kinds of cases:

* **Booked-listing rank** (the chapter's metric): for each of the first ``FIRST_CLICKS`` clicks
  of a session that ended in a booking, the rank of the eventually-booked listing among the
  listings of the region ordered by similarity to the clicked one (1 is best; the average is
  reported, lower is better), and whether it is in the top ``K`` (hit rate).
* **Next click**: for each click, is the session's next (different) listing among the ``K``
  most similar ones: hit rate@K, MRR@K and nDCG@K (one relevant listing).

Every model is scored the same way, next to the oracle (the world's true similarity, which
knows the listings' latent styles; behaviour is noisy, so it is the best similarity, not a
perfect score). The cold-start slice is the cases whose query listing had no training clicks
(new listings and never-clicked ones): there every embedding model answers with the cold-start
vector.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from itertools import pairwise
from typing import Any

import numpy as np
from scipy import stats

from mlsd.engine import Engine, LocalEngine
from mlsd.report import Blueprint
from mlsd.rng import rng
from mlsd.systems.similar_listings.evaluation_paired import (
    PAIRED_BASELINES,
    paired_comparison,
    report_paired,
)
from mlsd.systems.similar_listings.features import Sessions
from mlsd.systems.similar_listings.model import ListingSimilarity, rank_of, region_top_k
from mlsd.systems.similar_listings.model_lineup import BASELINES, SKIPGRAM_FULL

K = 10
FIRST_CLICKS = 2
MAX_CASES = 20_000
ORACLE = "oracle"


@dataclass(frozen=True)
class Cases:
    """Query listing -> target listing, for the booked rank and the next click."""

    booked_query: np.ndarray
    booked_target: np.ndarray
    next_query: np.ndarray
    next_target: np.ndarray
    booked_session: np.ndarray | None = None  # the session of each booked case (the unit)
    next_session: np.ndarray | None = None  # the session of each next-click case


def build_cases(test: Sessions, seed: int, max_cases: int = MAX_CASES) -> Cases:
    """The booked-rank and next-click cases of the test sessions (each capped at ``max_cases``
    by a seeded sample)."""
    bq, bt, bs, nq, nt, ns = [], [], [], [], [], []
    for s in range(len(test)):
        clicks, booked = test.clicks(s), int(test.booked[s])
        if booked >= 0:
            for c in clicks[:FIRST_CLICKS]:
                if c != booked:
                    bq.append(c)
                    bt.append(booked)
                    bs.append(s)
        for a, b in pairwise(clicks):
            if a != b:
                nq.append(a)
                nt.append(b)
                ns.append(s)
    r = rng(seed, "similar-listings/evaluation/cases")

    def cap(q: list[int], t: list[int], u: list[int]) -> tuple[np.ndarray, ...]:
        qa, ta, ua = (np.asarray(x, np.int64) for x in (q, t, u))
        if len(qa) > max_cases:
            keep = np.sort(r.choice(len(qa), max_cases, replace=False))
            qa, ta, ua = qa[keep], ta[keep], ua[keep]
        return qa, ta, ua

    b_q, b_t, b_s = cap(bq, bt, bs)
    n_q, n_t, n_s = cap(nq, nt, ns)
    return Cases(b_q, b_t, n_q, n_t, b_s, n_s)


def paired_rank_difference(
    model: ListingSimilarity,
    reference: ListingSimilarity,
    cases: Cases,
    region: np.ndarray,
    alpha: float = 0.05,
) -> dict[str, float]:
    """``model``'s booked rank minus ``reference``'s on the same cases (negative: ``model``
    ranks the booked listing higher), averaged per session (the unit: a session's cases share
    its booked listing), with a t confidence interval over sessions and its p-value."""
    a = rank_of(model, cases.booked_query, cases.booked_target, region)
    b = rank_of(reference, cases.booked_query, cases.booked_target, region)
    unit = cases.booked_session if cases.booked_session is not None else np.arange(len(a))
    _, inv = np.unique(unit, return_inverse=True)
    per = np.bincount(inv, a - b) / np.bincount(inv)
    n = len(per)
    mean = float(per.mean()) if n else float("nan")
    se = float(per.std(ddof=1) / np.sqrt(n)) if n > 1 else float("nan")
    q = float(stats.t.ppf(1 - alpha / 2, max(n - 1, 1)))
    p = float(2 * stats.t.sf(abs(mean) / se, n - 1)) if n > 1 and se > 0 else float("nan")
    return {
        "diff": mean,
        "ci_low": mean - q * se,
        "ci_high": mean + q * se,
        "p_value": p,
        "sessions": n,
    }


def score_model(
    model: ListingSimilarity, cases: Cases, region: np.ndarray, cold: np.ndarray
) -> dict[str, Any]:
    """The figures of one model: booked rank and hit rate, next-click HR / MRR / nDCG, and the
    cold-start slice of each."""
    out: dict[str, Any] = {}
    ranks = rank_of(model, cases.booked_query, cases.booked_target, region)
    top = region_top_k(model, cases.next_query, region, K)
    hit = top == cases.next_target[:, None]
    pos = np.where(hit.any(1), hit.argmax(1) + 1, 0)
    rr = np.where(pos > 0, 1.0 / np.maximum(pos, 1), 0.0)
    ndcg = np.where(pos > 0, 1.0 / np.log2(np.maximum(pos, 1) + 1.0), 0.0)
    out["booked_rank"] = _mean(ranks)
    out[f"booked_hr@{K}"] = _mean(ranks <= K)
    out[f"next_hr@{K}"] = _mean(hit.any(1))
    out[f"next_mrr@{K}"] = _mean(rr)
    out[f"next_ndcg@{K}"] = _mean(ndcg)
    bc, nc = cold[cases.booked_query], cold[cases.next_query]
    out["cold_start"] = {
        "booked_cases": int(bc.sum()),
        "booked_rank": _mean(ranks[bc]),
        "next_cases": int(nc.sum()),
        f"next_hr@{K}": _mean(hit.any(1)[nc]),
    }
    return out


def score_shard(
    shared: tuple[Cases, np.ndarray, np.ndarray], model: ListingSimilarity
) -> dict[str, Any]:
    """One shard of the offline evaluation: :func:`score_model` of one model."""
    cases, region, cold = shared
    return score_model(model, cases, region, cold)


def _mean(x: np.ndarray) -> float | None:
    return float(np.mean(x)) if len(x) else None


#: The online tests' control arm, chosen in advance (not by test-day scores).
AB_CONTROL = "cooccurrence"


@dataclass(frozen=True)
class OfflineResult:
    """Step 5: every model's figures and the oracle's, and the model chosen to serve."""

    scores: dict[str, dict[str, Any]]
    oracle: dict[str, Any] | None
    chosen_model: str
    booked_cases: int
    next_cases: int
    mean_region_size: float
    vs_baseline: dict[str, Any] | None = None  # chosen - best baseline, booked rank, paired
    paired: dict[str, dict[str, dict[str, Any]]] | None = None  # baseline -> metric -> test

    def metrics(self) -> dict[str, Any]:
        return {
            "models": self.scores,
            "oracle": self.oracle,
            "chosen_model": self.chosen_model,
            "evaluation": {
                "k": K,
                "first_clicks": FIRST_CLICKS,
                "booked_cases": self.booked_cases,
                "next_cases": self.next_cases,
                "mean_region_size": round(self.mean_region_size, 1),
                "chosen_vs_best_baseline_booked_rank": self.vs_baseline,
                "chosen_vs_baselines_paired": self.paired,
            },
        }

    @property
    def control(self) -> str:
        """The A/B test's and the canary's control, fixed before any test day is read:
        co-occurrence (the platform's item-to-item baseline) when it is in the line-up."""
        if AB_CONTROL in self.scores:
            return AB_CONTROL
        return next(b for b in BASELINES if b in self.scores)

    @property
    def best_baseline(self) -> str:
        return min(
            (b for b in BASELINES if b in self.scores),
            key=lambda b: self.scores[b]["booked_rank"] or np.inf,
        )


def evaluate(
    models: dict[str, ListingSimilarity],
    oracle: ListingSimilarity | None,
    test: Sessions,
    region: np.ndarray,
    trained: np.ndarray,
    seed: int,
    engine: Engine | None = None,
) -> OfflineResult:
    """Score every model (and the oracle) on the test sessions, one model per shard on
    ``engine``; the chosen model is the skip-gram with both refinements when it is in the
    line-up."""
    cases = build_cases(test, seed)
    cold = ~trained
    shared = (cases, region, cold)
    scored = (engine or LocalEngine()).map(score_shard, list(models.values()), shared=shared)
    scores = dict(zip(models, scored, strict=True))
    oracle_scores = score_model(oracle, cases, region, cold) if oracle is not None else None
    chosen = SKIPGRAM_FULL if SKIPGRAM_FULL in models else next(iter(models))
    sizes = np.bincount(region)
    result = OfflineResult(
        scores,
        oracle_scores,
        chosen,
        len(cases.booked_query),
        len(cases.next_query),
        float(sizes[sizes > 0].mean()) if len(sizes) else 0.0,
    )
    if cases.booked_session is not None and cases.next_session is not None:
        paired = {
            b: paired_comparison(
                models[chosen],
                models[b],
                (cases.booked_query, cases.booked_target, cases.booked_session),
                (cases.next_query, cases.next_target, cases.next_session),
                region,
                K,
            )
            for b in PAIRED_BASELINES
            if b in models and b != chosen
        }
        result = replace(result, paired=paired)
    base = result.best_baseline if any(b in scores for b in BASELINES) else None
    if base is None or base == chosen or len(cases.booked_query) < 2:
        return result
    diff = paired_rank_difference(models[chosen], models[base], cases, region)
    return replace(result, vs_baseline={"baseline": base, **diff})


HEADER = ("model", "booked rank ↓", f"booked HR@{K}", f"next HR@{K}", f"MRR@{K}", f"nDCG@{K}")


def _row(name: str, s: dict[str, Any]) -> list[Any]:
    return [
        name,
        s["booked_rank"],
        s[f"booked_hr@{K}"],
        s[f"next_hr@{K}"],
        s[f"next_mrr@{K}"],
        s[f"next_ndcg@{K}"],
    ]


def headline_rows(result: OfflineResult) -> list[list[Any]]:
    rows = [_row(n, s) for n, s in result.scores.items()]
    if result.oracle is not None:
        rows.append(_row(ORACLE, result.oracle))
    return rows


def report_offline(bp: Blueprint, result: OfflineResult) -> None:
    bp.section("Offline evaluation")
    bp.text(
        f"Test sessions: the last days, unseen in training. {result.booked_cases:,} "
        f"booked-rank cases (the first {FIRST_CLICKS} clicks of every booking session, the "
        f"booked listing as the target) and {result.next_cases:,} next-click cases. A region "
        f"holds {result.mean_region_size:.0f} listings on average, so a random order puts the "
        f"booked listing at rank {result.mean_region_size / 2:.0f}. The oracle ranks by the "
        "world's true similarity (latent style and price band)."
    )
    bp.table(list(HEADER), headline_rows(result))
    vs = result.vs_baseline
    if vs is not None:
        bp.text(
            f"Paired, per booking session ({vs['sessions']:,}): {result.chosen_model}'s booked "
            f"rank minus {vs['baseline']}'s is {vs['diff']:+.2f} (95% CI "
            f"[{vs['ci_low']:+.2f}, {vs['ci_high']:+.2f}], p = {vs['p_value']:.3g}; negative: "
            "the skip-gram ranks the booked listing higher)."
        )
    if result.paired:
        report_paired(bp, result.chosen_model, result.paired)
    cold_rows = [
        [
            n,
            s["cold_start"]["booked_cases"],
            s["cold_start"]["booked_rank"],
            s["cold_start"]["next_cases"],
            s["cold_start"][f"next_hr@{K}"],
        ]
        for n, s in result.scores.items()
    ]
    bp.table(
        ["model", "booked cases", "booked rank ↓", "next cases", f"next HR@{K}"],
        cold_rows,
        caption="Cold-start slice: the query listing had no training clicks (new listings).",
    )
