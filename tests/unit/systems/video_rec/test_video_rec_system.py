"""The pipeline: its steps in the chapter's order, refused scales, and steps that ask for a
result no earlier step made."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlsd.report import Blueprint
from mlsd.runner import RunContext, RunOptions, RunRefusedError, StepOrderError
from mlsd.settings import Settings
from mlsd.systems.video_rec.system import (
    PIPELINE,
    VideoRecState,
    step_models,
    step_online,
    step_summary,
)
from mlsd.world import Scale


def _options(**kw: object) -> RunOptions:
    return RunOptions("video-rec", Settings(), **kw)  # type: ignore[arg-type]


def test_steps_follow_the_chapter_and_large_is_refused() -> None:
    names = [s.name for s in PIPELINE.steps(_options(scale=Scale.SMALL))]
    assert names == [
        "requirements",
        "data",
        "eda",
        "models",
        "evaluation",
        "sources",
        "serving",
        "efficiency",
        "tradeoffs",
        "online",
        "canary",
        "batch",
        "batch_vs_online",
        "monitoring",
        "scale",
        "summary",
    ]
    assert [s.name for s in PIPELINE.steps(_options(data="movielens:x"))] == [
        "requirements",
        "movielens",
    ]
    with pytest.raises(RunRefusedError, match="--scale large"):
        PIPELINE.steps(_options(scale=Scale.LARGE))
    assert PIPELINE.new_state(_options()) == VideoRecState()


@pytest.mark.parametrize(
    ("step", "missing"),
    [(step_models, "world's log"), (step_online, "recommender"), (step_summary, "offline")],
)
def test_a_step_run_too_early_names_what_it_lacks(
    step: object, missing: str, tmp_path: Path
) -> None:
    ctx = RunContext(_options(), tmp_path, Blueprint("t"))
    with pytest.raises(StepOrderError, match=missing):
        step(ctx, VideoRecState())  # type: ignore[operator]
