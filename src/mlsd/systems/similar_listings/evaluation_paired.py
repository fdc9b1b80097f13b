"""Step 5 for similar listings: the chosen model against each baseline on the same test cases.

Every model is scored on the same cases, so the differences are paired: per test session (the
unit; a session's cases share its user and its booked listing) the chosen model's booked rank,
booked HR@K and next-click HR@K minus the baseline's, with a paired t confidence interval
(:func:`mlsd.comparisons.compare_paired`). A difference whose interval excludes 0 is one the
test days could not have produced by chance.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mlsd.comparisons import compare_paired
from mlsd.report import Blueprint
from mlsd.systems.similar_listings.model_similarity import ListingSimilarity, rank_of, region_top_k

#: the baselines the chosen model is compared with, paired
PAIRED_BASELINES = ("cooccurrence", "region_popular")


def _per_unit(values: np.ndarray, unit: np.ndarray) -> np.ndarray:
    _, inv = np.unique(unit, return_inverse=True)
    out: np.ndarray = np.bincount(inv, values) / np.bincount(inv)
    return out


def paired_comparison(
    model: ListingSimilarity,
    reference: ListingSimilarity,
    booked: tuple[np.ndarray, np.ndarray, np.ndarray],
    nxt: tuple[np.ndarray, np.ndarray, np.ndarray],
    region: np.ndarray,
    k: int,
    alpha: float = 0.05,
) -> dict[str, dict[str, Any]]:
    """``model`` (treatment) against ``reference`` (control) on the booked cases ``(query,
    target, session)`` and the next-click cases ``(query, target, session)``: each metric
    averaged per session, then a paired t-test over sessions. Metrics without two sessions
    are left out."""
    out: dict[str, dict[str, Any]] = {}
    bq, bt, bs = booked
    if len(np.unique(bs)) >= 2:
        ra = rank_of(model, bq, bt, region)
        rb = rank_of(reference, bq, bt, region)
        for name, a, b in (("booked_rank", ra, rb), (f"booked_hr@{k}", ra <= k, rb <= k)):
            out[name] = compare_paired(
                _per_unit(b.astype(np.float64), bs),
                _per_unit(a.astype(np.float64), bs),
                alpha,
                metric=name,
                higher_is_better=name != "booked_rank",
            ).to_dict()
    nq, nt, ns = nxt
    if len(np.unique(ns)) >= 2:
        ha = (region_top_k(model, nq, region, k) == nt[:, None]).any(1)
        hb = (region_top_k(reference, nq, region, k) == nt[:, None]).any(1)
        name = f"next_hr@{k}"
        out[name] = compare_paired(
            _per_unit(hb.astype(np.float64), ns),
            _per_unit(ha.astype(np.float64), ns),
            alpha,
            metric=name,
        ).to_dict()
    return out


def report_paired(bp: Blueprint, chosen: str, paired: dict[str, dict[str, dict[str, Any]]]) -> None:
    """One row per (baseline, metric): both means, the difference and its 95% CI."""
    rows = [
        [
            base,
            metric,
            c["control"],
            c["treatment"],
            c["diff"],
            f"[{c['ci_low']:+.4g}, {c['ci_high']:+.4g}]",
            c["p_value"],
            c["n_control"],
            "better"
            if c["significant"] and (c["diff"] > 0) == c["higher_is_better"]
            else ("worse" if c["significant"] else "no difference"),
        ]
        for base, metrics in paired.items()
        for metric, c in metrics.items()
    ]
    if rows:
        bp.table(
            ["baseline", "metric", "baseline", chosen, "diff", "95% CI", "p", "sessions", ""],
            rows,
            caption=(
                f"{chosen} against each baseline on the same test cases, paired per test "
                "session (paired t-test over sessions; booked rank: lower is better)."
            ),
        )


__all__ = ["PAIRED_BASELINES", "paired_comparison", "report_paired"]
