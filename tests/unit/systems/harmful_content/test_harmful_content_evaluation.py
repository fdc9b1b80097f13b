"""Offline evaluation: recall at a precision, thresholds chosen on validation."""

from __future__ import annotations

import math

import numpy as np

from mlsd.systems.harmful_content.evaluation import (
    at_thresholds,
    choose_thresholds,
    class_metrics,
    recall_at_precision,
    threshold_for_precision,
)


def test_recall_at_precision() -> None:
    y = np.array([1, 1, 0, 1, 0, 0])
    p = np.array([0.9, 0.8, 0.7, 0.6, 0.2, 0.1])
    assert recall_at_precision(y, p, 0.95) == 2 / 3
    assert recall_at_precision(y, p, 0.7) == 1.0
    assert math.isnan(recall_at_precision(np.zeros(3), np.ones(3) / 2))


def test_threshold_for_precision() -> None:
    y = np.array([1, 1, 0, 1, 0, 0])
    p = np.array([0.9, 0.8, 0.7, 0.6, 0.2, 0.1])
    assert threshold_for_precision(y, p, 0.95) == 0.8
    assert threshold_for_precision(y, p, 0.7) == 0.6
    assert threshold_for_precision(np.array([1, 1]), np.array([0.9, 0.1]), 0.99) == 0.1
    assert math.isinf(threshold_for_precision(np.array([0, 1]), np.array([0.9, 0.1]), 0.99))
    assert math.isinf(threshold_for_precision(np.zeros(4), np.ones(4), 0.5))


def test_bands_are_nested_and_measured_on_test() -> None:
    r = np.random.default_rng(0)
    Y = (r.random((2000, 2)) < 0.05).astype(np.int64)
    P = np.clip(Y * 0.6 + r.random((2000, 2)) * 0.5, 0, 1)
    th = choose_thresholds(Y, P, ("a", "b"))
    assert (th.demote <= th.review).all() and (th.review <= th.remove).all()
    res = at_thresholds(Y, P, th)
    assert res["a"]["remove_precision"] >= 0.95
    assert res["a"]["review_recall"] >= res["a"]["remove_recall"]


def test_class_metrics_average_over_classes() -> None:
    Y = np.array([[1, 0], [0, 1], [0, 0], [1, 0]])
    P = np.array([[0.9, 0.1], [0.2, 0.8], [0.1, 0.3], [0.7, 0.2]])
    m = class_metrics(Y, P, ("a", "b"))
    assert m["mean_pr_auc"] == 1.0 and m["per_class"]["a"]["positives"] == 2
    assert m["any_harm_roc_auc"] == 1.0
