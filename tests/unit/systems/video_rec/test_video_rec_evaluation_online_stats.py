"""The online statistics: users needed and for power, the paired credit test, the share of
variance that is a trait of the user."""

from __future__ import annotations

import numpy as np
import pytest

from mlsd.systems.video_rec import evaluation_online_stats as online


def test_paired_credit_test_edges() -> None:
    with pytest.raises(ValueError, match=">= 2 users"):
        online.paired_credit_test(np.ones(1), np.zeros(1))
    assert online.paired_credit_test(np.ones(5), np.ones(5))["p_value"] == 1.0
    assert online.paired_credit_test(np.full(5, 2.0), np.ones(5))["p_value"] == 0.0
    r = online.paired_credit_test(np.array([3.0, 1.0, 4.0, 1.0]), np.zeros(4))
    assert r["mean_diff"] == pytest.approx(2.25) and 0 < r["p_value"] < 0.1


def test_users_needed_requires_staying_significant() -> None:
    assert online.users_needed([(20, 0.01), (40, 0.2), (80, 0.01), (160, 0.001)]) == 80
    assert online.users_needed([(20, 0.01), (40, 0.2)]) is None


def test_between_user_share_sees_user_traits_and_not_noise() -> None:
    rng = np.random.default_rng(0)
    arm = rng.random(2000) < 0.5
    trait = rng.normal(size=(2000, 1)) * 2.0
    noise_only = rng.normal(size=(2000, 2))
    with_trait = trait + rng.normal(size=(2000, 2))
    assert online.between_user_share(noise_only, arm) < 0.05
    assert online.between_user_share(with_trait, arm) == pytest.approx(0.8, abs=0.05)
    assert np.isnan(online.between_user_share(noise_only[:, :1], arm))


def test_users_for_power_matches_the_textbook_formula() -> None:
    rng = np.random.default_rng(0)
    c, t = (rng.normal(size=4000) for _ in range(2))
    c, t = (c - c.mean()) / c.std(ddof=1), (t - t.mean()) / t.std(ddof=1) + 0.1  # exact moments
    # two arms, SD 1, effect 0.1: 2 * 2 * 7.85 / 0.01 ~ 3,140 users in all
    assert online.users_for_power("ab", c, t) == pytest.approx(3140, rel=0.01)
    assert online.users_for_power("paired", t) == pytest.approx(785, rel=0.01)
    prefs = np.array([1] * 60 + [-1] * 40 + [0] * 100)
    assert online.users_for_power("sign", prefs) > online.users_for_power("sign", prefs[:100])
    assert online.users_for_power("paired", np.zeros(5)) == float("inf")
    with pytest.raises(ValueError, match="unknown kind"):
        online.users_for_power("bogus", c)
