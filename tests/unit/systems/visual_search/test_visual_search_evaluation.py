"""Offline retrieval metrics and the simulated users of the online test."""

from __future__ import annotations

import numpy as np
import pytest

from mlsd.systems.visual_search.evaluation import RetrievalSet, retrieval_metrics
from mlsd.systems.visual_search.online import simulate_sessions


def retrieval_set() -> RetrievalSet:
    img = np.zeros((1, 4, 4, 3), np.uint8)
    index_groups = np.array([0, 0, 1, 1, 2, 2])
    index_cats = np.array([0, 0, 0, 0, 1, 1])
    return RetrievalSet(
        img,
        np.zeros(1),
        np.repeat(img, 6, 0),
        index_groups,
        np.repeat(img, 2, 0),
        np.array([0, 2]),
        index_cats,
        np.array([0, 1]),
    )


def test_perfect_ranking_scores_one() -> None:
    rs = retrieval_set()
    top = np.array([[0, 1, 2, 3, 4, 5], [4, 5, 0, 1, 2, 3]])
    m = retrieval_metrics(top, rs, k=6)
    assert m["map"] == pytest.approx(1.0) and m["mrr"] == 1.0 and m["recall"] == 1.0
    assert m["ndcg"] == pytest.approx(1.0) and m["hit1"] == 1.0


def test_worse_ranking_scores_lower_and_partial_relevance_counts() -> None:
    rs = retrieval_set()
    best = retrieval_metrics(np.array([[0, 1, 2, 3, 4, 5], [4, 5, 0, 1, 2, 3]]), rs, k=3)
    # query 0: same category (ids 2, 3) before the product: partial credit in nDCG only
    partial = retrieval_metrics(np.array([[2, 3, 0, 1, 4, 5], [0, 1, 2, 3, 4, 5]]), rs, k=3)
    other = retrieval_metrics(np.array([[4, 5, 0, 1, 2, 3], [0, 1, 2, 3, 4, 5]]), rs, k=3)
    assert partial["map"] < best["map"] and partial["mrr"] == pytest.approx(1 / 3 / 2)
    assert partial["ndcg"] > other["ndcg"]
    assert partial["precision"] == pytest.approx((1 / 3) / 2)


def test_sessions_click_relevant_results_with_position_bias() -> None:
    n, k = 4000, 10
    q = np.zeros(n, dtype=int)
    rng = np.random.default_rng(0)
    relevant_first = simulate_sessions(np.zeros((n, k), int), np.zeros((n, k), int), q, q, rng)
    groups = np.ones((n, k), int)
    groups[:, 7] = 0  # the product only at rank 8
    late = simulate_sessions(groups, np.ones((n, k), int), q, q, np.random.default_rng(0))
    assert relevant_first.clicked.mean() > 0.55 > late.clicked.mean()
    assert np.nanmean(relevant_first.first_click_s) < np.nanmean(late.first_click_s)
    assert np.isnan(late.first_click_s[~late.clicked]).all()
    assert (relevant_first.first_click_rank[relevant_first.clicked] >= 1).all()
