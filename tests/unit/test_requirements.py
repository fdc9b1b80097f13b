"""Steps 1-2: requirements and framing as typed objects, written into the blueprint and metrics."""

from __future__ import annotations

from pathlib import Path

from mlsd.report import Blueprint
from mlsd.requirements import Framing, Requirements, requirements_step
from mlsd.runner import RunContext, RunOptions
from mlsd.settings import Settings

REQ = Requirements(
    goal="rank ads",
    latency_budget_ms=10.0,
    latency_budget_for="100 ads",
    throughput_qps=5.0,
    freshness="daily",
    scale="large",
    constraints=("calibrated", "no leakage"),
)
FRAME = Framing(
    task="binary classification",
    input="user, ad",
    output="P(click)",
    label="click",
    offline_metrics=("nce",),
    online_metrics=("ctr", "revenue"),
)


def test_rows_join_tuples_and_name_fields() -> None:
    rows = dict((k, v) for k, v in REQ.rows())
    assert rows["latency budget ms"] == 10.0
    assert rows["constraints"] == "calibrated, no leakage"
    assert dict((k, v) for k, v in FRAME.rows())["online metrics"] == "ctr, revenue"


def test_requirements_step_writes_blueprint_and_metrics(tmp_path: Path) -> None:
    step = requirements_step("An intro.", REQ, FRAME)
    options = RunOptions(system="demo", settings=Settings(), out=tmp_path)
    ctx = RunContext(options, tmp_path, Blueprint("T"))
    result = step.run(ctx, object())
    assert step.name == "requirements" and result is not None
    metrics = result.metrics()
    assert metrics["requirements"]["latency_budget_ms"] == 10.0
    assert metrics["framing"]["online_metrics"] == ("ctr", "revenue")
    md = ctx.blueprint.to_markdown()
    assert "## 1. Clarifying requirements" in md and "An intro." in md
    assert "| latency budget ms | 10 |" in md
    assert "## 2. Framing the problem as an ML task" in md
