"""The online A/B test in the world: between the serving step's scorers, decided by ABResult."""

from __future__ import annotations

from typing import Any

from mlsd.experiments import ABResult
from mlsd.systems.ad_click.evaluation_online import (
    GUARDRAIL,
    PRIMARY,
    RPM,
    OnlineTest,
    compute_online,
)
from mlsd.systems.ad_click.serving_latency import ServingChoice


def run_ab(tiny_run: Any, serving: ServingChoice, treatment: str) -> OnlineTest:
    return compute_online(
        tiny_run.world,
        control=serving.scorers["historical_ctr"],
        treatment=serving.scorers[treatment],
        n_requests=1_500,
        seed=0,
    )


def test_the_ab_test_compares_the_arms_and_decides(tiny_run: Any, serving: ServingChoice) -> None:
    result = run_ab(tiny_run, serving, "lightgbm")
    ab = result.ab
    assert isinstance(ab, ABResult) and result.day == tiny_run.world.n_days
    assert ab.primary == PRIMARY and ab.guardrails == (GUARDRAIL,)
    assert set(ab.tests) == {PRIMARY, GUARDRAIL, RPM}
    control, treatment = ab.arms["control"], ab.arms["treatment"]
    assert control["policy"] == "historical_ctr" and treatment["policy"] == "lightgbm"
    for arm in (control, treatment):
        assert arm["ctr"] == arm["clicks"] / arm["impressions"]
    assert ab.tests[GUARDRAIL].control == control["ctr"]
    assert ab.tests[RPM].treatment == treatment["rpm"]
    assert ab.srm.n_control == control["users"] and ab.srm.n_treatment == treatment["users"]
    assert ab.decision in {"ship", "don't ship", "inconclusive", "invalid (SRM)"}
    online = result.metrics()["online"]
    assert online["requests"] == 1_500 and online["unit"].startswith("user")
    assert online["control"] == control and online["tests"][PRIMARY]["metric"]
    assert online["decision"] == ab.decision and online["srm"]["p_value"] == ab.srm.p_value
    again = run_ab(tiny_run, serving, "lightgbm")
    assert again.metrics() == result.metrics()  # seeded: the same run, the same test


def test_an_aa_test_does_not_ship(tiny_run: Any, serving: ServingChoice) -> None:
    ab = run_ab(tiny_run, serving, "historical_ctr").ab
    assert ab.decision != "ship"
