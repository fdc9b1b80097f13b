"""Online A/B tests: assignment, SRM, the launch decision and the ABResult every system reports."""

from __future__ import annotations

import hashlib

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


def test_assign_arms_handles_unsigned_and_rejects_bad_share() -> None:
    big = np.array([2**63 + 5, 7], dtype=np.uint64)
    as_signed = big.view(np.int64)
    assert np.array_equal(ex.hash_unit(big, "s"), ex.hash_unit(as_signed, "s"))
    with pytest.raises(ValueError, match="treatment_share"):
        ex.assign_arms(np.arange(3), "s", treatment_share=1.5)


def test_ab_result_decides_and_renders_rows() -> None:
    from mlsd.comparisons import compare_proportions
    from mlsd.experiments import ABResult, srm_check

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
