"""Offline evaluation: nDCG against graded gains, the oracle's ceiling."""

from __future__ import annotations

import numpy as np

from mlsd.systems.news_feed.evaluation import ndcg_per_session, top_k_means


def test_ndcg_is_one_for_the_ideal_order_and_less_reversed() -> None:
    session = np.repeat([0, 1], 5)
    gain = np.r_[np.arange(5.0), np.arange(5.0)]
    assert np.allclose(ndcg_per_session(session, gain, gain, k=3), 1.0)
    worse = ndcg_per_session(session, gain, -gain, k=3)
    assert (worse < 1.0).all()


def test_negative_gains_count_zero_and_empty_sessions_are_left_out() -> None:
    session = np.array([0, 0, 1, 1])
    gain = np.array([-5.0, 2.0, -1.0, -2.0])
    out = ndcg_per_session(session, gain, np.array([1.0, 0.0, 1.0, 0.0]), k=2)
    assert list(out.index) == [0] and 0 < out.iloc[0] < 1


def test_top_k_means() -> None:
    out = top_k_means(
        np.zeros(4, int), np.array([4.0, 3, 2, 1]), {"v": np.array([1.0, 2, 3, 4])}, k=2
    )
    assert out["v"] == 1.5
