"""Two-arm metric comparisons: z-test, Welch, delta-method ratios, sample size."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from mlsd import comparisons as cmp


def test_compare_proportions_detects_real_lift_and_not_a_null_one() -> None:
    rng = np.random.default_rng(11)
    n = 40_000
    c = int((rng.random(n) < 0.050).sum())
    t_null = int((rng.random(n) < 0.050).sum())
    t_real = int((rng.random(n) < 0.060).sum())
    null = cmp.compare_proportions(c, n, t_null, n, metric="ctr")
    real = cmp.compare_proportions(c, n, t_real, n, metric="ctr")
    assert not null.significant
    assert null.ci_low < 0 < null.ci_high
    assert real.significant and real.improved
    assert real.ci_low > 0
    assert real.relative_lift == pytest.approx(t_real / c - 1)
    assert real.relative_ci_low < real.relative_lift < real.relative_ci_high
    d = real.to_dict()
    assert d["metric"] == "ctr" and d["significant"] is True


def test_compare_proportions_matches_textbook_z() -> None:
    res = cmp.compare_proportions(500, 10_000, 560, 10_000)
    pooled = 1060 / 20_000
    z = 0.006 / math.sqrt(pooled * (1 - pooled) * 2 / 10_000)
    assert res.p_value == pytest.approx(2 * stats.norm.sf(z))
    with pytest.raises(ValueError, match="treatment"):
        cmp.compare_proportions(1, 10, 11, 10)


def test_compare_means_matches_scipy_welch() -> None:
    rng = np.random.default_rng(3)
    c = rng.exponential(1.0, 3_000)
    t = rng.exponential(1.1, 2_000)
    res = cmp.compare_means(c, t, metric="revenue_per_user")
    ref = stats.ttest_ind(t, c, equal_var=False)
    assert res.p_value == pytest.approx(ref.pvalue)
    assert res.diff == pytest.approx(t.mean() - c.mean())
    assert res.ci_low < res.diff < res.ci_high


def test_required_sample_size() -> None:
    n = cmp.required_sample_size(0.10, 0.10)
    assert n == 14_751
    # power check with the normal approximation at that n
    p1, p2 = 0.10, 0.11
    se = math.sqrt((p1 * (1 - p1) + p2 * (1 - p2)) / n)
    assert stats.norm.sf(1.959964 - (p2 - p1) / se) == pytest.approx(0.8, abs=0.01)
    assert cmp.required_sample_size(0.10, 0.05) > n
    with pytest.raises(ValueError):
        cmp.required_sample_size(0.10, 0.0)


def test_compare_ratios_matches_a_bootstrap_and_detects_a_real_lift() -> None:
    from mlsd.comparisons import compare_ratios

    rng = np.random.default_rng(7)
    imps_c, imps_t = rng.integers(1, 30, 4000), rng.integers(1, 30, 4000)
    rev_c = rng.binomial(imps_c, 0.02) * 1.5
    rev_t = rng.binomial(imps_t, 0.025) * 1.5
    res = compare_ratios(rev_c, imps_c, rev_t, imps_t, metric="revenue per impression")
    assert res.control == pytest.approx(rev_c.sum() / imps_c.sum())
    assert res.p_value < 0.001 and res.ci_low > 0
    # the delta-method standard error agrees with a user-level bootstrap of the ratio
    boot = []
    for _ in range(400):
        i = rng.integers(0, 4000, 4000)
        boot.append(rev_c[i].sum() / imps_c[i].sum())
    se_delta = (res.ci_high - res.ci_low) / (2 * 1.96)
    se_boot_c = float(np.std(boot))
    assert se_delta / np.sqrt(2) == pytest.approx(se_boot_c, rel=0.25)
    null = compare_ratios(rev_c[:2000], imps_c[:2000], rev_c[2000:], imps_c[2000:])
    assert null.p_value > 0.01


def test_compare_paired_uses_the_pairing() -> None:
    rng = np.random.default_rng(3)
    base = rng.normal(0.3, 0.2, 500)  # per-user values of one ranker; big user-to-user spread
    better = base + rng.normal(0.02, 0.02, 500)  # the same users, a small consistent gain
    res = cmp.compare_paired(base, better, metric="recall@10")
    assert res.test == "paired t-test" and res.n_control == res.n_treatment == 500
    assert res.diff == pytest.approx(float((better - base).mean()))
    assert res.ci_low > 0 and res.p_value < 1e-6
    # the same values as two independent arms: the user spread hides the gain
    assert cmp.compare_means(base, better).ci_low < 0 < res.ci_low
    lo, hi = res.relative_ci_low, res.relative_ci_high
    assert lo < res.relative_lift < hi and lo > 0
    null = cmp.compare_paired(base, base + rng.normal(0, 0.02, 500))
    assert null.ci_low < 0 < null.ci_high
    with pytest.raises(ValueError):
        cmp.compare_paired(base, better[:10])
