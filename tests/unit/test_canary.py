"""The canary rollout: sticky assignment, the guardrail rule, rollback at the first stage of a
broken model, promotion of a good one, the halt on too few units, the report."""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
from collections.abc import Callable

import numpy as np
import pytest

from mlsd.canary import (
    CanaryPlan,
    CanaryResult,
    Guardrail,
    Outcome,
    StageArms,
    Status,
    arms_per_unit,
    check_guardrail,
    in_canary,
    keep_for_stage,
    min_units_for,
    run_canary,
)
from mlsd.canary_report import report_canary
from mlsd.report import Blueprint
from mlsd.rng import rng

USERS = 20_000
BASE_CTR = 0.10

GUARDRAILS = (
    Guardrail("CTR", "clicks", denominator="impressions", tolerance=0.05, min_units=50),
    Guardrail("clicks per user", "clicks", tolerance=0.05, min_units=50),
    Guardrail(
        "p99 latency (ms)", "latency_ms", quantile=0.99, bounds=(-math.inf, 20.0), min_units=50
    ),
)


def world(
    ctr_ratio: float, latency_ms: float = 5.0, users: int = USERS
) -> Callable[..., StageArms]:
    """A synthetic world: each stage, ``users`` users see a few impressions; the new model's
    click rate is ``ctr_ratio`` × production's, its per-request latency about ``latency_ms``."""

    def run_stage(fraction: float, i: int) -> StageArms:
        gen = rng(7, f"canary-test/stage-{i}")
        ids = np.arange(users, dtype=np.int64)
        imps = gen.poisson(4, users) + 1
        units = np.repeat(ids, imps)
        treat = in_canary(units, fraction, salt="test-canary")
        p = np.where(treat, BASE_CTR * ctr_ratio, BASE_CTR)
        clicks = (gen.random(units.size) < p).astype(np.float64)
        arms = arms_per_unit(units, treat, {"clicks": clicks, "impressions": np.ones(units.size)})
        n_req = int(treat.sum())
        arms["treatment"]["latency_ms"] = gen.gamma(4.0, latency_ms / 4.0, n_req)
        arms["control"]["latency_ms"] = gen.gamma(4.0, 5.0 / 4.0, units.size - n_req)
        if fraction == 1.0:
            assert not arms["control"]["clicks"].size
        return arms

    return run_stage


def rollout(ctr_ratio: float, latency_ms: float = 5.0, users: int = USERS) -> CanaryResult:
    return run_canary(
        CanaryPlan(GUARDRAILS),
        world(ctr_ratio, latency_ms, users),
        control="production",
        treatment="new",
        unit="user",
    )


def test_a_unit_in_the_canary_stays_in_it_as_the_share_grows() -> None:
    ids = np.arange(50_000, dtype=np.int64)
    masks = [in_canary(ids, f, "s") for f in (0.01, 0.05, 0.25, 1.0)]
    for small, large in itertools.pairwise(masks):
        assert np.all(large[small])  # once in, always in
    assert abs(masks[0].mean() - 0.01) < 0.002
    assert abs(masks[2].mean() - 0.25) < 0.01
    assert masks[3].all()


def test_stage_sampling_and_per_unit_arrays() -> None:
    ids = np.arange(100_000, dtype=np.int64)
    treat = in_canary(ids, 0.25, "s")
    keep = keep_for_stage(ids, treat, max_control=1_000, salt="k", max_treatment=500)
    assert (
        abs(int((keep & ~treat).sum()) - 1_000) < 100 and abs(int((keep & treat).sum()) - 500) < 70
    )
    assert np.array_equal(keep, keep_for_stage(ids, treat, 1_000, "k", 500))  # by hash, stable
    assert keep_for_stage(ids, treat, 10**9, "k").all()  # under the caps: everyone
    units = np.array([3, 1, 3, 2, 1])
    arms = arms_per_unit(units, np.isin(units, [3]), {"x": np.array([1.0, 2, 3, 4, 5])})
    assert arms["treatment"]["x"].tolist() == [4.0] and arms["control"]["x"].tolist() == [7.0, 4.0]
    assert (min_units_for(500), min_units_for(100_000), min_units_for(10)) == (4, 30, 3)


def test_a_broken_model_is_rolled_back_at_the_first_stage() -> None:
    result = rollout(ctr_ratio=0.3)  # the scores reversed: a third of the clicks
    assert result.outcome == Outcome.ROLLED_BACK
    assert len(result.stages) == 1 and result.stages[0].fraction == 0.01
    assert result.max_share == 0.01 and result.final_share == 0.0
    ctr = result.stages[0].checks[0]
    assert ctr.status == Status.BROKEN and ctr.change is not None and ctr.change < -0.5
    assert ctr.optimistic_bound < -0.05  # even the canary-friendly end is beyond the tolerance
    assert result.timeline()[-1] == ("rollback", 0.0)
    assert "stage 1 (1% of traffic)" in result.reason


def test_a_good_model_reaches_all_traffic() -> None:
    result = rollout(ctr_ratio=1.02)
    assert result.outcome == Outcome.PROMOTED, result.reason
    assert [s.fraction for s in result.stages] == [0.01, 0.05, 0.25, 1.0]
    assert result.max_share == 1.0 and result.final_share == 1.0
    # at 100% there is no control: the last stage compares with stage 3's
    assert [s.control_from_stage for s in result.stages] == [0, 1, 2, 2]
    assert all(c.status == Status.PASS for s in result.stages for c in s.checks)


def test_a_slow_model_breaks_the_latency_bound_without_a_control() -> None:
    result = rollout(ctr_ratio=1.0, latency_ms=40.0)
    assert result.outcome == Outcome.ROLLED_BACK
    broken = [c for c in result.stages[-1].checks if c.status == Status.BROKEN]
    assert [c.guardrail for c in broken] == ["p99 latency (ms)"]
    assert broken[0].optimistic_bound > 20.0


def test_a_mild_degradation_is_caught_before_all_traffic() -> None:
    """CTR down 15%: the uncertainty shrinks as the share grows, and the break comes before
    100% of the users see the model."""
    result = rollout(ctr_ratio=0.85)
    assert result.outcome == Outcome.ROLLED_BACK
    assert result.max_share < 1.0
    widths = [s.checks[0].optimistic_bound - (s.checks[0].change or 0.0) for s in result.stages]
    assert all(b < a for a, b in itertools.pairwise(widths))


def test_too_few_units_halts_the_rollout() -> None:
    result = rollout(ctr_ratio=1.0, users=2_000)  # 1% of 2,000 users is below 50
    assert result.outcome == Outcome.HALTED
    assert result.stages[0].status == Status.INSUFFICIENT
    assert result.final_share == 0.0
    empty = {"clicks": np.zeros(0), "impressions": np.zeros(0), "latency_ms": np.zeros(0)}
    control = {"clicks": np.ones(60), "impressions": np.ones(60), "latency_ms": np.ones(60)}
    nobody = run_canary(
        CanaryPlan(GUARDRAILS),
        lambda f, i: {"control": control, "treatment": empty},
        control="a",
        treatment="b",
        unit="u",
    )  # a tiny world's 1% can be nobody
    assert nobody.outcome == Outcome.HALTED and nobody.stages[0].checks[0].n_treatment == 0


def test_the_rule_is_one_sided_with_the_tolerance() -> None:
    g = Guardrail("m", "x", tolerance=0.05, min_units=10)
    gen = rng(1, "canary-test/rule")
    control = {"x": gen.normal(10.0, 1.0, 5_000)}
    # 3% worse with certainty: within the tolerance, passes
    ok = check_guardrail(g, control, {"x": gen.normal(9.7, 1.0, 5_000)}, alpha=0.01)
    assert ok.status == Status.PASS and ok.change is not None and -0.04 < ok.change < -0.02
    # 10% worse: broken; 10% better: fine
    bad = check_guardrail(g, control, {"x": gen.normal(9.0, 1.0, 5_000)}, alpha=0.01)
    assert bad.status == Status.BROKEN
    good = check_guardrail(g, control, {"x": gen.normal(11.0, 1.0, 5_000)}, alpha=0.01)
    assert good.status == Status.PASS
    # lower is better, absolute tolerance: +0.5 allowed
    lower = Guardrail("hides", "x", higher_is_better=False, tolerance=0.5, relative=False)
    assert check_guardrail(lower, control, {"x": control["x"] + 1.0}, 0.01).status == "broken"
    assert check_guardrail(lower, control, {"x": control["x"] - 1.0}, 0.01).status == "pass"


def test_an_arm_without_variance_borrows_the_other_arms() -> None:
    """8 canary users without a click: no variance of their own, so the test borrows the
    control's per-unit variance instead of being certain; a canary that blurs every face
    passes; with neither arm varying there is nothing to test."""
    g = Guardrail("CTR", "clicks", denominator="impressions", min_units=5)
    gen = rng(3, "canary-test/flat")
    clicks = gen.binomial(20, 0.05, 500).astype(float)
    control = {"clicks": clicks, "impressions": np.full(500, 20.0)}
    none = {"clicks": np.zeros(8), "impressions": np.full(8, 20.0)}
    broken = check_guardrail(g, control, none, alpha=0.01)
    assert broken.status == Status.BROKEN and broken.change == -1.0
    assert -1.0 < broken.optimistic_bound < -0.05  # not certain, but beyond the tolerance
    two = {"clicks": np.zeros(2), "impressions": np.full(2, 20.0)}
    two_users = check_guardrail(dataclasses.replace(g, min_units=2), control, two, alpha=0.01)
    assert two_users.status == Status.PASS  # 40 impressions without a click prove nothing
    perfect = {"clicks": np.full(8, 20.0), "impressions": np.full(8, 20.0)}
    assert check_guardrail(g, control, perfect, alpha=0.01).status == Status.PASS
    flat = {"clicks": np.zeros(50), "impressions": np.full(50, 20.0)}
    tie = check_guardrail(g, flat, none, alpha=0.01)  # no click anywhere: a tie
    assert tie.status == Status.PASS and tie.change == 0.0
    assert check_guardrail(g, flat, perfect, alpha=0.01).status == Status.PASS
    assert check_guardrail(g, perfect, flat, alpha=0.01).status == Status.INSUFFICIENT
    over = Guardrail("over-blur", "x", higher_is_better=False, bounds=(0.0, 0.1), min_units=5)
    assert check_guardrail(over, None, {"x": np.zeros(8)}, alpha=0.01).status == Status.PASS
    assert check_guardrail(over, None, {"x": np.full(8, 0.5)}, 0.01).status == "insufficient sample"


def test_bounds_on_a_ratio_need_no_control() -> None:
    g = Guardrail("calibration", "clicks", denominator="expected", bounds=(0.8, 1.25))
    gen = rng(2, "canary-test/bounds")
    expected = np.full(2_000, 0.5)
    fine = check_guardrail(
        g, None, {"clicks": gen.binomial(1, 0.5, 2_000), "expected": expected}, 0.01
    )
    assert fine.status == Status.PASS and 0.9 < fine.treatment < 1.1
    off = check_guardrail(
        g, None, {"clicks": gen.binomial(1, 0.2, 2_000), "expected": expected}, 0.01
    )
    assert off.status == Status.BROKEN and off.optimistic_bound < 0.8


def test_plans_and_guardrails_are_validated() -> None:
    with pytest.raises(ValueError, match="increase"):
        CanaryPlan(GUARDRAILS, stages=(0.05, 0.01, 1.0))
    with pytest.raises(ValueError, match="last stage"):
        CanaryPlan(GUARDRAILS, stages=(0.01, 0.5))
    with pytest.raises(ValueError, match="at least one"):
        CanaryPlan(())
    with pytest.raises(ValueError, match="quantile"):
        Guardrail("p99", "ms", quantile=0.99)
    plan = CanaryPlan(GUARDRAILS)
    assert plan.alpha_per_check == pytest.approx(0.05 / 12)
    bad_keys = {"control": {"x": np.ones(3)}, "treatment": {"x": np.ones(3)}}
    with pytest.raises(KeyError, match="no values 'clicks'"):
        run_canary(plan, lambda f, i: bad_keys, control="a", treatment="b", unit="u")
    no_control = {"treatment": {"clicks": np.ones(3), "impressions": np.ones(3)}}
    with pytest.raises(ValueError, match="no control"):
        run_canary(plan, lambda f, i: no_control, control="a", treatment="b", unit="u")


def test_metrics_and_report() -> None:
    result = rollout(ctr_ratio=0.3)
    m = json.loads(json.dumps(result.metrics(), allow_nan=True))["online"]["canary"]
    assert m["outcome"] == "rolled back" and m["max_share"] == 0.01
    assert m["stages"][0]["checks"][0]["status"] == "broken"
    bp = Blueprint("t")
    report_canary(bp, result, "A synthetic world.", "canary_traffic")
    md = bp.to_markdown()
    assert "Canary rollout" in md and "**broken**" in md and "figures/canary_traffic.png" in md
    assert "Stage 1: 1% of units on new" in md and "Stage 2" not in md
    assert "<img" in bp.to_html()
