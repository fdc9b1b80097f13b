"""Ranking metrics per session, and the offline evaluation's filter recall."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mlsd.systems.event_rec.evaluation import ranking_metrics


def test_a_perfect_ranking_scores_one_and_a_reversed_one_less() -> None:
    session = np.array([0, 0, 0, 0, 1, 1, 1])
    y = np.array([1, 0, 1, 0, 0, 0, 1])
    perfect = ranking_metrics(session, y, y + 0.0)
    assert perfect["ndcg@10"] == pytest.approx(1.0)
    assert perfect["map@10"] == pytest.approx(1.0) and perfect["mrr"] == pytest.approx(1.0)
    worst = ranking_metrics(session, y, -y + 0.0)
    assert worst["ndcg@10"] < 1.0 and worst["mrr"] == pytest.approx((1 / 3 + 1 / 3) / 2)
    assert perfect["sessions"] == 2


def test_hand_computed_ndcg_and_ap() -> None:
    session = np.zeros(3, np.int64)
    y = np.array([0, 1, 1])
    s = np.array([3.0, 2.0, 1.0])  # ranks: 0 1 1
    m = ranking_metrics(session, y, s)
    idcg = 1 + 1 / math.log2(3)
    assert m["ndcg@10"] == pytest.approx((1 / math.log2(3) + 1 / 2) / idcg)
    assert m["map@10"] == pytest.approx((1 / 2 + 2 / 3) / 2)
    assert m["precision@5"] == pytest.approx(2 / 5) and m["recall@5"] == pytest.approx(1.0)


def test_sessions_without_positives_do_not_count() -> None:
    m = ranking_metrics(np.array([0, 0]), np.array([0, 0]), np.array([1.0, 0.0]))
    assert m == {"sessions": 0}
