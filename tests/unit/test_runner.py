"""The runner writes a complete run directory, or nothing that looks like one."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from mlsd.runner import RunContext, RunOptions, Step, run_steps, to_jsonable


def _ok(ctx: RunContext) -> None:
    ctx.blueprint.section("One")
    ctx.blueprint.text("hello")
    ctx.metrics["answer"] = np.float32(0.5)
    (ctx.artifacts_dir / "model.bin").write_bytes(b"x")


def _boom(ctx: RunContext) -> None:
    raise RuntimeError("step failed")


def test_run_writes_blueprint_metrics_and_artifacts(tmp_path: Path) -> None:
    out = tmp_path / "run"
    run_steps([Step("one", "1. One", _ok)], RunOptions(system="demo", out=out), "Demo")
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["answer"] == 0.5
    assert metrics["system"] == "demo" and "one" in metrics["steps"]
    assert (out / "blueprint.md").read_text().startswith("# Demo")
    assert (out / "artifacts" / "model.bin").is_file()
    assert [p.name for p in tmp_path.iterdir()] == ["run"]  # no temp dirs left


def test_failed_run_leaves_nothing_and_keeps_previous(tmp_path: Path) -> None:
    out = tmp_path / "run"
    run_steps([Step("one", "1. One", _ok)], RunOptions(system="demo", out=out), "Demo")
    with pytest.raises(RuntimeError, match="step failed"):
        run_steps(
            [Step("one", "1", _ok), Step("two", "2", _boom)],
            RunOptions(system="demo", out=out),
            "Demo",
        )
    assert [p.name for p in tmp_path.iterdir()] == ["run"]
    assert (out / "metrics.json").is_file()  # the earlier complete run is untouched


def test_failed_first_run_leaves_no_directory(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError):
        run_steps([Step("two", "2", _boom)], RunOptions(system="demo", out=tmp_path / "r"), "D")
    assert list(tmp_path.iterdir()) == []


def test_to_jsonable_handles_numpy_and_nan() -> None:
    obj = {"a": np.int64(3), "b": np.array([1.5, np.nan]), "c": float("inf"), "d": (1, 2)}
    assert to_jsonable(obj) == {"a": 3, "b": [1.5, None], "c": None, "d": [1, 2]}
