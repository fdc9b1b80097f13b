"""The ad-click pipeline: its steps in the chapter's order, typed state, no hidden dependencies."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from mlsd.report import Blueprint
from mlsd.runner import RunContext, RunOptions, StepOrderError
from mlsd.settings import Settings
from mlsd.systems.ad_click import system
from mlsd.systems.ad_click.system import PIPELINE, AdClickState
from mlsd.systems.ad_click.world import AdClickWorld
from mlsd.systems.ad_click.world_log import write_world_log


def context(tmp_path: Path) -> RunContext:
    options = RunOptions(system="ad-click", settings=Settings(), out=tmp_path / "run")
    return RunContext(options, tmp_path, Blueprint("test"))


def test_steps_follow_the_chapter_and_serving_comes_before_the_ab_test() -> None:
    options = RunOptions(system="ad-click", settings=Settings())
    names = [s.name for s in PIPELINE.steps(options)]
    assert names == [
        "requirements",
        "data",
        "eda",
        "features",
        "models",
        "evaluation",
        "continual_learning",
        "serving",
        "efficiency",
        "tradeoffs",
        "online",
        "canary",
        "monitoring",
        "scale",
        "summary",
    ]
    assert names.index("serving") < names.index("online")  # the A/B test uses its scorers
    state = PIPELINE.new_state(options)
    assert isinstance(state, AdClickState)
    assert all(getattr(state, f) is None for f in vars(state))


@pytest.fixture(scope="module")
def world_state(tmp_path_factory: pytest.TempPathFactory) -> AdClickState:
    world = AdClickWorld("tiny", seed=0)
    return AdClickState(world_log=write_world_log(world, tmp_path_factory.mktemp("data")))


def test_the_ab_test_cannot_run_before_the_serving_step(
    world_state: AdClickState, tmp_path: Path
) -> None:
    with pytest.raises(StepOrderError, match="served scorers"):
        system.step_online(context(tmp_path), world_state)


@pytest.mark.parametrize(
    ("step", "missing"),
    [
        (system.step_models, "feature frame"),
        (system.step_offline, "trained models"),
        (system.step_continual, "feature frame"),
        (system.step_serving, "trained models"),
        (system.step_monitoring, "feature frame"),
        (system.step_canary, "served scorers"),
        (system.step_summary, "trained models"),
    ],
)
def test_a_step_run_too_early_names_what_is_missing(
    world_state: AdClickState,
    tmp_path: Path,
    step: Callable[[RunContext, AdClickState], object],
    missing: str,
) -> None:
    with pytest.raises(StepOrderError, match=missing):
        step(context(tmp_path), world_state)


def test_features_need_the_data_step(tmp_path: Path) -> None:
    with pytest.raises(StepOrderError, match="world's log"):
        system.step_features(context(tmp_path), AdClickState())
