"""The canary rollout in the tiny world: a broken model is rolled back at the first stage, the
served model reaches all traffic (latency is left out: no timing assertions)."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pandas as pd

from mlsd.canary import CanaryPlan, CanaryResult, Outcome, Status
from mlsd.report import Blueprint
from mlsd.systems.ad_click.evaluation_canary import (
    compute_canary,
    plan_for,
    report_ad_click_canary,
)
from mlsd.systems.ad_click.serving import AdClickScorer
from mlsd.systems.ad_click.serving_latency import ServingChoice


class ReversedScorer(AdClickScorer):
    """A deliberately broken model: its click probabilities turned upside down."""

    def score_frame(self, requests: pd.DataFrame) -> np.ndarray:
        return 1.0 - super().score_frame(requests)


def untimed_plan(n_users: int) -> CanaryPlan:
    plan = plan_for(n_users, latency_bound_ms=10.0)
    kept = tuple(g for g in plan.guardrails if g.metric != "latency_ms")
    return dataclasses.replace(plan, guardrails=kept)


def roll(tiny_run: Any, serving: ServingChoice, treatment: AdClickScorer) -> CanaryResult:
    return compute_canary(
        tiny_run.world,
        serving.scorers["historical_ctr"],
        treatment,
        scale="tiny",
        seed=0,
        plan=untimed_plan(len(tiny_run.world.users)),
    )


def test_a_reversed_model_is_rolled_back_at_the_first_stage(
    tiny_run: Any, serving: ServingChoice
) -> None:
    good = serving.scorers["lightgbm"]
    result = roll(tiny_run, serving, ReversedScorer(good.model, good.store, "reversed"))
    assert result.outcome == Outcome.ROLLED_BACK
    assert [s.fraction for s in result.stages] == [0.01]
    assert result.max_share <= 0.01 and result.final_share == 0.0
    calibration = {c.guardrail: c for c in result.stages[0].checks}[
        "calibration (clicks / predicted)"
    ]
    assert calibration.status == Status.BROKEN and calibration.treatment < 0.1
    assert calibration.control is not None and calibration.control > 0.25  # production is fine
    canary = result.metrics()["online"]["canary"]
    assert canary["outcome"] == "rolled back" and canary["treatment"] == "reversed"


def test_the_served_model_reaches_all_traffic(tiny_run: Any, serving: ServingChoice) -> None:
    result = roll(tiny_run, serving, serving.scorers["lightgbm"])
    assert result.outcome == Outcome.PROMOTED, result.reason
    assert [s.fraction for s in result.stages] == [0.01, 0.05, 0.25, 1.0]
    # the canary's users grow with the share; at 100% the control is stage 3's
    sizes = [s.checks[0].n_treatment for s in result.stages]
    assert sizes == sorted(sizes) and sizes[0] >= 4 and sizes[-1] > 400
    assert result.stages[-1].control_from_stage == 2
    bp = Blueprint("t")
    report_ad_click_canary(bp, result, "tiny")
    md = bp.to_markdown()
    assert "Canary rollout" in md and "**Canary: promoted**" in md
    assert "latency is not a guardrail here" in md
