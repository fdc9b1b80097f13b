"""The offline metrics: graded nDCG, MRR, MAP and recall against hand-made rankings."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mlsd.systems.video_search.evaluation import compute_offline, ir_metrics, oracle_rankings

GRADES = [{1: 3, 2: 2, 3: 1}, {5: 2}]


def test_the_oracle_is_perfect_and_a_reversed_list_is_not() -> None:
    perfect = ir_metrics(oracle_rankings(GRADES), GRADES)
    assert perfect["ndcg@10"] == pytest.approx(1.0) and perfect["map@100"] == pytest.approx(1.0)
    worse = ir_metrics([np.array([9, 3, 2, 1]), np.array([7, 5])], GRADES)
    assert worse["ndcg@10"] < 1.0
    assert worse["mrr"] == pytest.approx((1 / 3 + 1 / 2) / 2)
    assert worse["recall@100"] == pytest.approx(1.0)


def test_queries_without_relevant_videos_count_in_no_mean() -> None:
    m = ir_metrics([np.array([1])], [{}])
    assert math.isnan(m["ndcg@10"]) and m["queries"] == 0


def test_slices_and_the_poor_text_restriction() -> None:
    ranks = {"a": [np.array([1, 2, 3]), np.array([5])], "b": [np.array([3, 2, 1]), np.array([])]}
    r = compute_offline(
        ranks,
        GRADES,
        {"tail": np.array([True, False])},
        {3},
        np.full(10, -1),
        np.zeros(10, bool),
    )
    assert r.scores["a"]["ndcg@10"] > r.scores["b"]["ndcg@10"]
    assert r.slices["tail"]["a"]["queries"] == 1
    # restricted to video 3 (grade 1): nothing is relevant at grade >= 2, nDCG still counts it
    assert r.slices["poor_text"]["b"]["ndcg@10"] == pytest.approx(1.0)
    assert r.metrics()["models"]["a"]["slices"]["tail"]["queries"] == 1
