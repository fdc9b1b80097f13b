"""Offline metrics: checked against scikit-learn and against small hand-computed cases."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score
from sklearn.metrics import log_loss as sk_log_loss

from mlsd import metrics as m


@pytest.fixture
def sample() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(7)
    p_true = rng.beta(1, 20, size=2_000)
    y = (rng.random(2_000) < p_true).astype(np.int64)
    return y, p_true


def test_log_loss_and_auc_match_sklearn(sample: tuple[np.ndarray, np.ndarray]) -> None:
    y, p = sample
    assert m.log_loss(y, p) == pytest.approx(sk_log_loss(y, p), rel=1e-9)
    assert m.roc_auc(y, p) == pytest.approx(roc_auc_score(y, p))
    assert m.pr_auc(y, p) == pytest.approx(average_precision_score(y, p))


def test_nce_is_one_for_the_base_rate_and_below_for_an_informative_model(
    sample: tuple[np.ndarray, np.ndarray],
) -> None:
    y, p = sample
    constant = np.full(y.shape, y.mean())
    assert m.normalized_cross_entropy(y, constant) == pytest.approx(1.0)
    assert m.normalized_cross_entropy(y, p) < 1.0
    # an explicit base rate changes the denominator only
    b = 0.1
    h = -(b * math.log(b) + (1 - b) * math.log(1 - b))
    assert m.normalized_cross_entropy(y, p, base_rate=b) == pytest.approx(m.log_loss(y, p) / h)


def test_single_class_gives_nan_not_a_crash() -> None:
    y = np.zeros(5, dtype=np.int64)
    p = np.array([0.1, 0.2, 0.3, 0.4, 0.5])
    assert math.isnan(m.roc_auc(y, p))
    assert math.isnan(m.pr_auc(y, p))
    assert math.isnan(m.normalized_cross_entropy(y, p))
    out = m.classification_metrics(y, p)
    assert set(out) == {"logloss", "nce", "roc_auc", "pr_auc", "calibration", "ece"}
    assert out["calibration"] == 0.0


def test_bad_input_names_the_problem() -> None:
    with pytest.raises(ValueError, match=r"y\[1\] = 2"):
        m.log_loss(np.array([0, 2]), np.array([0.1, 0.2]))
    with pytest.raises(ValueError, match=r"p\[0\]"):
        m.log_loss(np.array([0, 1]), np.array([1.5, 0.2]))
    with pytest.raises(ValueError, match="3 values"):
        m.log_loss(np.array([0, 1, 1]), np.array([0.1, 0.2]))


def test_calibration_ratio_and_ece() -> None:
    y = np.array([1, 0, 0, 0, 1, 0, 0, 0])
    p = np.full(8, 0.125)  # expects 1 click, saw 2
    assert m.calibration_ratio(y, p) == pytest.approx(2.0)
    # two equal-mass bins of 4: each mean p = 0.125, observed 0.25 -> ECE 0.125
    assert m.expected_calibration_error(y, p, n_bins=2) == pytest.approx(0.125)
    curve = m.reliability_curve(y, p, n_bins=2)
    assert list(curve.columns) == ["bin", "mean_predicted", "observed_rate", "count"]
    assert curve["count"].tolist() == [4, 4]


def test_calibrated_model_has_small_ece_and_ratio_near_one() -> None:
    rng = np.random.default_rng(0)
    p = rng.uniform(0.05, 0.5, 50_000)
    y = (rng.random(p.size) < p).astype(np.int64)
    assert m.calibration_ratio(y, p) == pytest.approx(1.0, abs=0.03)
    assert m.expected_calibration_error(y, p) < 0.01
    assert m.expected_calibration_error(y, np.clip(p * 1.5, 0, 1)) > 0.05
    curve = m.reliability_curve(y, p, n_bins=10)
    assert curve["mean_predicted"].is_monotonic_increasing
    assert curve["count"].sum() == p.size


def test_share_of_achievable_gain() -> None:
    assert m.share_of_achievable_gain(0.5, 0.4, 0.3) == pytest.approx(0.5)
    assert m.share_of_achievable_gain(0.5, 0.3, 0.3) == pytest.approx(1.0)
    assert math.isnan(m.share_of_achievable_gain(0.5, 0.4, 0.5))


# ---------------------------------------------------------------------------- ranking


def test_precision_recall_hit_rate_hand_computed() -> None:
    recs = [1, 2, 3, 4, 5]
    relevant = {2, 5, 9}
    assert m.precision_at_k(recs, relevant, 5) == pytest.approx(2 / 5)
    assert m.precision_at_k(recs, relevant, 2) == pytest.approx(1 / 2)
    assert m.recall_at_k(recs, relevant, 5) == pytest.approx(2 / 3)
    assert m.hit_rate_at_k(recs, relevant, 1) == 0.0
    assert m.hit_rate_at_k(recs, relevant, 2) == 1.0
    assert math.isnan(m.recall_at_k(recs, set(), 5))


def test_average_precision_divides_by_min_k_relevant() -> None:
    # hits at ranks 2 and 5: (1/2 + 2/5) / min(5, 3)
    assert m.average_precision_at_k([1, 2, 3, 4, 5], {2, 5, 9}, 5) == pytest.approx(0.9 / 3)
    # more relevant items than k: a perfect top-2 still scores 1
    assert m.average_precision_at_k([7, 8, 1], {7, 8, 9, 10}, 2) == pytest.approx(1.0)


def test_ndcg_graded_hand_computed() -> None:
    relevance = {1: 3.0, 2: 2.0, 3: 0.0, 4: 1.0}
    # recommended 4, 1, 3 at k=3: DCG = 1/log2(2) + 3/log2(3) + 0
    dcg = 1.0 + 3.0 / math.log2(3)
    idcg = 3.0 + 2.0 / math.log2(3) + 1.0 / 2.0
    assert m.ndcg_at_k([4, 1, 3], relevance, 3) == pytest.approx(dcg / idcg)
    assert m.ndcg_at_k([1, 2, 4], relevance, 3) == pytest.approx(1.0)
    exp_dcg = 1.0 + 7.0 / math.log2(3)
    exp_idcg = 7.0 + 3.0 / math.log2(3) + 1.0 / 2.0
    assert m.ndcg_at_k([4, 1, 3], relevance, 3, gain="exponential") == pytest.approx(
        exp_dcg / exp_idcg
    )
    assert math.isnan(m.ndcg_at_k([1], {1: 0.0}, 1))


def test_reciprocal_rank_and_mean_over_users() -> None:
    assert m.reciprocal_rank([5, 6, 7], {7}, 3) == pytest.approx(1 / 3)
    assert m.reciprocal_rank([5, 6, 7], {7}, 2) == 0.0
    recs = {"u1": [1, 2], "u2": [3, 4]}
    truth = {"u1": {1}, "u2": {4}, "u3": {9}, "u4": set()}  # u3 has no recs, u4 no truth
    mrr = m.mean_over_users(m.reciprocal_rank, recs, truth, 2)
    assert mrr == pytest.approx((1.0 + 0.5 + 0.0) / 3)
    assert math.isnan(m.mean_over_users(m.precision_at_k, recs, {"u1": set()}, 2))


def test_duplicates_and_bad_k_are_rejected() -> None:
    with pytest.raises(ValueError, match="duplicate"):
        m.precision_at_k([1, 1, 2], {1}, 3)
    with pytest.raises(ValueError, match="k must be"):
        m.precision_at_k([1], {1}, 0)


def test_coverage_and_diversity() -> None:
    recs = {0: [1, 2, 3], 1: [3, 4, 5], 2: [9]}
    assert m.catalog_coverage(recs, 10) == pytest.approx(0.6)
    cat = {1: "a", 2: "a", 3: "b", 4: "b", 5: "b", 9: "c"}
    # user 0: pairs (1,2) same, (1,3),(2,3) differ -> 2/3; user 1: all same -> 0; user 2 skipped
    assert m.intra_list_diversity(recs, cat) == pytest.approx((2 / 3 + 0.0) / 2)
    with pytest.raises(KeyError, match="item 3"):
        m.intra_list_diversity({0: [1, 3]}, {1: "a"})


def test_latency_summary() -> None:
    out = m.latency_summary(np.arange(1, 101, dtype=np.float64))
    assert out["n"] == 100
    assert out["max"] == 100.0
    assert out["mean"] == pytest.approx(50.5)
    assert out["p50"] == pytest.approx(50.5)
    assert out["p99"] == pytest.approx(99.01)
    with pytest.raises(ValueError):
        m.latency_summary([])
