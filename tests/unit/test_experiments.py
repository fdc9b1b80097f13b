"""Online A/B test statistics: assignment, tests, SRM, the launch decision, interleaving."""

from __future__ import annotations

import hashlib
import math

import numpy as np
import pytest
from scipy import stats

from mlsd import experiments as ex

_M = (1 << 64) - 1


def _reference_bucket(uid: int, salt: str) -> float:
    """A scalar pure-Python splitmix64 to pin the vectorised implementation."""
    key = int.from_bytes(hashlib.blake2b(salt.encode(), digest_size=8).digest(), "little")
    z = ((uid & _M) ^ key) + 0x9E3779B97F4A7C15 & _M
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _M
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _M
    z ^= z >> 31
    return (z >> 11) / float(1 << 53)


def test_assign_arms_is_stable_balanced_and_salted() -> None:
    ids = np.arange(20_000, dtype=np.int64)
    a = ex.assign_arms(ids, "exp-1")
    assert a.dtype == np.bool_
    assert np.array_equal(a, ex.assign_arms(ids.copy(), "exp-1"))
    assert abs(a.mean() - 0.5) < 0.015
    # a unit's arm does not depend on who else is in the batch
    assert np.array_equal(a[::7], ex.assign_arms(ids[::7], "exp-1"))
    # a different salt gives an independent split
    b = ex.assign_arms(ids, "exp-2")
    assert abs((a == b).mean() - 0.5) < 0.02
    assert abs(ex.assign_arms(ids, "exp-1", treatment_share=0.1).mean() - 0.1) < 0.01


def test_assign_arms_matches_a_scalar_reference() -> None:
    ids = np.array([0, 1, 42, -5, 2**62], dtype=np.int64)
    u = ex.hash_unit(ids, "salt")
    expected = [_reference_bucket(int(i), "salt") for i in ids]
    assert u.tolist() == pytest.approx(expected, abs=0)


def test_assign_arms_accepts_string_ids() -> None:
    ids = np.array([f"user-{i}" for i in range(4_000)])
    a = ex.assign_arms(ids, "s")
    assert np.array_equal(a, ex.assign_arms(list(ids), "s"))
    assert abs(a.mean() - 0.5) < 0.04


def test_compare_proportions_detects_real_lift_and_not_a_null_one() -> None:
    rng = np.random.default_rng(11)
    n = 40_000
    c = int((rng.random(n) < 0.050).sum())
    t_null = int((rng.random(n) < 0.050).sum())
    t_real = int((rng.random(n) < 0.060).sum())
    null = ex.compare_proportions(c, n, t_null, n, metric="ctr")
    real = ex.compare_proportions(c, n, t_real, n, metric="ctr")
    assert not null.significant
    assert null.ci_low < 0 < null.ci_high
    assert real.significant and real.improved
    assert real.ci_low > 0
    assert real.relative_lift == pytest.approx(t_real / c - 1)
    assert real.relative_ci_low < real.relative_lift < real.relative_ci_high
    d = real.to_dict()
    assert d["metric"] == "ctr" and d["significant"] is True


def test_compare_proportions_matches_textbook_z() -> None:
    res = ex.compare_proportions(500, 10_000, 560, 10_000)
    pooled = 1060 / 20_000
    z = 0.006 / math.sqrt(pooled * (1 - pooled) * 2 / 10_000)
    assert res.p_value == pytest.approx(2 * stats.norm.sf(z))
    with pytest.raises(ValueError, match="treatment"):
        ex.compare_proportions(1, 10, 11, 10)


def test_compare_means_matches_scipy_welch() -> None:
    rng = np.random.default_rng(3)
    c = rng.exponential(1.0, 3_000)
    t = rng.exponential(1.1, 2_000)
    res = ex.compare_means(c, t, metric="revenue_per_user")
    ref = stats.ttest_ind(t, c, equal_var=False)
    assert res.p_value == pytest.approx(ref.pvalue)
    assert res.diff == pytest.approx(t.mean() - c.mean())
    assert res.ci_low < res.diff < res.ci_high


def test_aggregate_per_unit_sums_per_user() -> None:
    units, totals = ex.aggregate_per_unit(np.array([3, 1, 3, 2]), np.array([1.0, 2.0, 0.5, 0.0]))
    assert units.tolist() == [1, 2, 3]
    assert totals.tolist() == [2.0, 0.0, 1.5]


def test_srm_flags_5200_vs_4800_but_not_5030_vs_4970() -> None:
    # chi2 = 2 * 200^2 / 5000 = 16, p = 6.3e-5 < 0.001
    bad = ex.srm_check(4800, 5200)
    assert bad.chi2 == pytest.approx(16.0)
    assert bad.p_value == pytest.approx(stats.chi2.sf(16.0, 1))
    assert bad.mismatch
    assert not ex.srm_check(5030, 4970).mismatch
    # the designed share matters: 9000 / 1000 is right for a 10% treatment
    assert not ex.srm_check(9000, 1000, expected_treatment_share=0.1).mismatch


def _cmp(diff: float, p_value: float, higher_is_better: bool = True) -> ex.MetricComparison:
    return ex.MetricComparison(
        "m",
        1.0,
        1.0 + diff,
        diff,
        diff - 0.1,
        diff + 0.1,
        diff,
        diff - 0.1,
        diff + 0.1,
        p_value,
        0.05,
        1000,
        1000,
        "test",
        higher_is_better,
    )


def test_decide_outcomes() -> None:
    ok_srm = ex.srm_check(5000, 5000)
    assert ex.decide(_cmp(0.05, 0.001), ok_srm)[0] == "ship"
    assert ex.decide(_cmp(-0.05, 0.001), ok_srm)[0] == "don't ship"
    assert ex.decide(_cmp(0.05, 0.2), ok_srm)[0] == "inconclusive"
    decision, reason = ex.decide(_cmp(0.05, 0.001), ex.srm_check(4800, 5200))
    assert decision == "invalid (SRM)" and "4800" in reason
    # latency guardrail (lower is better) went up significantly: blocks the launch
    latency = _cmp(0.2, 0.001, higher_is_better=False)
    decision, reason = ex.decide(_cmp(0.05, 0.001), ok_srm, [latency])
    assert decision == "don't ship" and "guardrail" in reason
    # a guardrail that improved does not block
    assert ex.decide(_cmp(0.05, 0.001), ok_srm, [_cmp(-0.2, 0.001, False)])[0] == "ship"


def test_required_sample_size() -> None:
    n = ex.required_sample_size(0.10, 0.10)
    assert n == 14_751
    # power check with the normal approximation at that n
    p1, p2 = 0.10, 0.11
    se = math.sqrt((p1 * (1 - p1) + p2 * (1 - p2)) / n)
    assert stats.norm.sf(1.959964 - (p2 - p1) / se) == pytest.approx(0.8, abs=0.01)
    assert ex.required_sample_size(0.10, 0.05) > n
    with pytest.raises(ValueError):
        ex.required_sample_size(0.10, 0.0)


def test_assign_arms_handles_unsigned_and_rejects_bad_share() -> None:
    big = np.array([2**63 + 5, 7], dtype=np.uint64)
    as_signed = big.view(np.int64)
    assert np.array_equal(ex.hash_unit(big, "s"), ex.hash_unit(as_signed, "s"))
    with pytest.raises(ValueError, match="treatment_share"):
        ex.assign_arms(np.arange(3), "s", treatment_share=1.5)


def test_compare_ratios_matches_a_bootstrap_and_detects_a_real_lift() -> None:
    from mlsd.experiments import compare_ratios

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


def test_ab_result_decides_and_renders_rows() -> None:
    from mlsd.experiments import ABResult, compare_proportions, srm_check

    ctr = compare_proportions(500, 10_000, 600, 10_000, metric="CTR")
    hide = compare_proportions(100, 10_000, 100, 10_000, metric="hide rate", higher_is_better=False)
    result = ABResult.decided(
        unit="user",
        arms={"control": {"policy": "a", "units": 10_000}, "treatment": {"policy": "b"}},
        tests={"hide": hide, "ctr": ctr},
        primary="ctr",
        guardrails=["hide"],
        srm=srm_check(10_000, 10_000),
    )
    assert result.decision == "ship"
    rows = result.test_rows()
    assert [r[0] for r in rows] == ["CTR", "hide rate"]  # primary first
    assert len(rows[0]) == len(ABResult.TEST_HEADER) and rows[0][3] == "+20.0%"
    assert result.arm_rows(["policy", "units"]) == [
        ["control", "a", 10_000],
        ["treatment", "b", None],
    ]
    assert "Decision: ship" in result.verdict()
    d = result.to_dict()
    assert d["control"]["policy"] == "a" and d["tests"]["ctr"]["significant"]
    with pytest.raises(ValueError, match="no comparison"):
        ABResult.decided(unit="u", arms={}, tests={}, primary="x", srm=srm_check(5, 5))
