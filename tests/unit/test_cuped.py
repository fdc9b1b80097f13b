"""CUPED for ratio metrics: unbiased, narrower with a correlated covariate, no worse without."""

from __future__ import annotations

import numpy as np
import pytest

from mlsd.comparisons import compare_ratios
from mlsd.cuped import compare_ratios_cuped


def _arm(r: np.random.Generator, n: int, effect: float) -> tuple[np.ndarray, ...]:
    """Per unit: views, a 'harmful share' that varies a lot across units, the pre-period
    numerator (same share, its own views) and an unrelated covariate."""
    share = r.beta(0.5, 20, n)
    views = r.gamma(2.0, 50.0, n)
    pre_views = r.gamma(2.0, 50.0, n)
    return (
        share * views * (1 + effect),
        views,
        share * pre_views,
        pre_views,
        r.gamma(2.0, 5.0, n),
    )


def test_a_correlated_covariate_narrows_the_test_and_keeps_the_estimate() -> None:
    r = np.random.default_rng(0)
    c, t = _arm(r, 4000, 0.0), _arm(r, 4000, -0.1)
    plain = compare_ratios(c[0], c[1], t[0], t[1], higher_is_better=False)
    res = compare_ratios_cuped((c[0], c[1]), (t[0], t[1]), (c[2], c[3]), (t[2], t[3]))
    cup = res.comparison
    assert res.variance_ratio < 0.7 and res.theta > 0
    assert cup.ci_high - cup.ci_low < 0.85 * (plain.ci_high - plain.ci_low)
    assert cup.relative_lift == pytest.approx(-0.1, abs=0.03)
    assert cup.significant and cup.test.startswith("CUPED")


def test_an_unrelated_covariate_changes_little_and_nulls_stay_calibrated() -> None:
    r = np.random.default_rng(1)
    rejections = 0
    for _ in range(200):
        c, t = _arm(r, 300, 0.0), _arm(r, 300, 0.0)
        res = compare_ratios_cuped((c[0], c[1]), (t[0], t[1]), (c[2], c[3]), (t[2], t[3]))
        rejections += res.comparison.significant
    assert rejections / 200 < 0.1  # alpha 0.05 (+ Monte-Carlo noise)
    c, t = _arm(r, 3000, 0.0), _arm(r, 3000, 0.0)
    ones = np.ones(3000)
    res = compare_ratios_cuped((c[0], c[1]), (t[0], t[1]), (c[4], ones), (t[4], ones))
    assert 0.97 < res.variance_ratio <= 1.0


def test_bad_shapes_are_refused() -> None:
    a = np.ones(5)
    with pytest.raises(ValueError, match="one value per unit"):
        compare_ratios_cuped((a, a), (a, a), (a[:4], a[:4]), (a, a))
    with pytest.raises(ValueError, match="finite"):
        compare_ratios_cuped((a * np.nan, a), (a, a), (a, a), (a, a))
