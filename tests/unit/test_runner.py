"""The runner: typed steps and results, one metrics layout, a complete run directory or nothing
that looks like one."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from mlsd.runner import (
    Pipeline,
    RunContext,
    RunOptions,
    Step,
    StepOrderError,
    merge_metrics,
    require,
    run_pipeline,
)
from mlsd.settings import Settings


@dataclass(frozen=True)
class Trained:
    answer: float

    def metrics(self) -> dict[str, Any]:
        return {"models": {"m": {"train_seconds": 1.0}}, "answer": np.float32(self.answer)}


@dataclass(frozen=True)
class Evaluated:
    auc: float

    def metrics(self) -> dict[str, Any]:
        return {"models": {"m": {"roc_auc": self.auc}}, "chosen_model": "m"}


@dataclass
class DemoState:
    trained: Trained | None = None
    seen: list[str] = field(default_factory=list)


def _train(ctx: RunContext, state: DemoState) -> Trained:
    ctx.blueprint.section("One")
    ctx.blueprint.text("hello")
    (ctx.artifacts_dir / "model.bin").write_bytes(b"x")
    state.trained = Trained(0.5)
    return state.trained


def _evaluate(ctx: RunContext, state: DemoState) -> Evaluated:
    trained = require(state.trained, "the trained model")
    ctx.skip("online", "no world to act in")
    return Evaluated(trained.answer + 0.25)


def _boom(ctx: RunContext, state: DemoState) -> None:
    raise RuntimeError("step failed")


def _pipeline(*steps: Step[DemoState]) -> Pipeline[DemoState]:
    return Pipeline("Demo", lambda options: DemoState(), lambda options: list(steps))


def _options(out: Path) -> RunOptions:
    return RunOptions(system="demo", settings=Settings(), out=out)


TRAIN = Step("models", "4. Models", _train)
EVALUATE = Step("evaluation", "5. Evaluation", _evaluate)


def test_run_writes_blueprint_metrics_and_artifacts(tmp_path: Path) -> None:
    out = tmp_path / "run"
    run_pipeline(_pipeline(TRAIN, EVALUATE), _options(out))
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["answer"] == 0.5
    # results merge key by key into one layout: models.<name>.<metric>
    assert metrics["models"] == {"m": {"train_seconds": 1.0, "roc_auc": 0.75}}
    assert metrics["chosen_model"] == "m"
    assert metrics["system"] == "demo" and set(metrics["steps"]) == {"models", "evaluation"}
    assert metrics["skipped"] == [{"step": "online", "reason": "no world to act in"}]
    assert (out / "blueprint.md").read_text().startswith("# Demo")
    assert (out / "artifacts" / "model.bin").is_file()
    assert [p.name for p in tmp_path.iterdir()] == ["run"]  # no temp dirs left


def test_a_step_run_before_its_input_fails_clearly(tmp_path: Path) -> None:
    with pytest.raises(StepOrderError, match="the trained model is not available yet"):
        run_pipeline(_pipeline(EVALUATE, TRAIN), _options(tmp_path / "run"))
    assert list(tmp_path.iterdir()) == []


def test_failed_run_leaves_nothing_and_keeps_previous(tmp_path: Path) -> None:
    out = tmp_path / "run"
    run_pipeline(_pipeline(TRAIN), _options(out))
    with pytest.raises(RuntimeError, match="step failed"):
        run_pipeline(_pipeline(TRAIN, Step("two", "2", _boom)), _options(out))
    assert [p.name for p in tmp_path.iterdir()] == ["run"]
    assert (out / "metrics.json").is_file()  # the earlier complete run is untouched


def test_failed_first_run_leaves_no_directory(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError):
        run_pipeline(_pipeline(Step("two", "2", _boom)), _options(tmp_path / "r"))
    assert list(tmp_path.iterdir()) == []


def test_each_run_gets_fresh_state(tmp_path: Path) -> None:
    states: list[DemoState] = []

    def new_state(options: RunOptions) -> DemoState:
        states.append(DemoState())
        return states[-1]

    pipeline = Pipeline("Demo", new_state, lambda options: [TRAIN])
    run_pipeline(pipeline, _options(tmp_path / "a"))
    run_pipeline(pipeline, _options(tmp_path / "b"))
    assert len(states) == 2 and states[0] is not states[1]


def test_merge_metrics_merges_nested_mappings_and_replaces_values() -> None:
    into: dict[str, Any] = {"models": {"a": {"x": 1}}, "k": 1}
    merge_metrics(into, {"models": {"a": {"y": 2}, "b": {"x": 3}}, "k": 2})
    assert into == {"models": {"a": {"x": 1, "y": 2}, "b": {"x": 3}}, "k": 2}


def test_require_passes_values_through() -> None:
    assert require(0, "zero") == 0  # falsy but present
    with pytest.raises(StepOrderError, match="thing"):
        require(None, "thing")


def test_options_need_settings() -> None:
    with pytest.raises(TypeError):
        RunOptions(system="demo")  # type: ignore[call-arg]
