"""The enforcement loop: removal stops views, demotion slows them, reviewers have a capacity."""

from __future__ import annotations

import numpy as np

from mlsd.systems.harmful_content.evaluation import Thresholds
from mlsd.systems.harmful_content.evaluation_online import (
    DECISION_H,
    enforce,
    hour_of_reports,
    views_until,
)


def _th(remove: float, review: float, demote: float) -> Thresholds:
    return Thresholds(("a",), np.array([remove]), np.array([review]), np.array([demote]))


def test_views_grow_and_demotion_slows_them() -> None:
    V = np.full(3, 1000.0)
    h = np.array([0.5, 10.0, 100.0])
    normal = views_until(V, h, np.zeros(3, bool))
    demoted = views_until(V, h, np.ones(3, bool))
    assert (np.diff(normal) > 0).all() and normal[-1] < 1000
    assert demoted[0] == normal[0] and (demoted[1:] < normal[1:]).all()


def test_reports_reach_a_count_at_the_right_hour() -> None:
    V, rate = np.array([1000.0, 10.0]), np.array([0.01, 0.01])
    h = hour_of_reports(V, rate, 3.0, np.zeros(2, bool))
    assert np.isinf(h[1])  # 10 views never give 3 reports
    np.testing.assert_allclose(
        rate[0] * views_until(V[:1], h[:1], np.zeros(1, bool)), 3.0, rtol=1e-3
    )


def test_a_perfect_classifier_removes_harm_proactively() -> None:
    n = 200
    harmful = np.arange(n) % 10 == 0
    V = np.full(n, 500.0)
    rate = np.where(harmful, 0.02, 0.0005)
    day = np.arange(n) // 50
    perfect = enforce(V, rate, harmful, day, harmful[:, None].astype(float), _th(0.5, 0.4, 0.3))
    blind = enforce(V, rate, harmful, day, np.zeros((n, 1)), _th(0.5, 0.4, 0.3))
    assert (perfect.removed_h[harmful] == DECISION_H).all() and perfect.proactive[harmful].all()
    assert (perfect.views[harmful].sum()) < 0.2 * blind.views[harmful].sum()
    assert blind.actions["allow"] == n and not blind.proactive.any()
    assert blind.reviews > 0  # the reactive path still reviews reported posts


def test_review_capacity_is_respected_and_the_rest_demoted() -> None:
    n = 100
    harmful = np.zeros(n, bool)
    scores = np.full((n, 1), 0.45)  # every post in the review band
    out = enforce(
        np.full(n, 100.0), np.full(n, 0.0), harmful, np.zeros(n, int), scores, _th(0.9, 0.4, 0.3)
    )
    assert out.reviews == 1  # 1% of 100 posts
    assert out.actions["demote"] == n - 1
