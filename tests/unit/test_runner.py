"""The runner: typed steps and results, one metrics layout, a complete run directory or nothing
that looks like one."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from mlsd.artifacts import RUN_MARKER, read_run_id
from mlsd.run_dirs import check_out_dir, is_run_dir, remove_stale_work_dirs
from mlsd.runner import (
    Pipeline,
    RunContext,
    RunOptions,
    RunRefusedError,
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


# ---- the run directory: a marker, never replacing what is not a run, stale temp dirs, SIGTERM
def test_a_run_carries_a_marker_and_a_run_id(tmp_path: Path) -> None:
    out = tmp_path / "run"
    run_pipeline(_pipeline(TRAIN), _options(out))
    marker = json.loads((out / RUN_MARKER).read_text())
    metrics = json.loads((out / "metrics.json").read_text())
    assert marker["system"] == "demo" and len(marker["run_id"]) == 32
    assert metrics["run_id"] == marker["run_id"] == read_run_id(out)
    assert read_run_id(out / "artifacts") == marker["run_id"]
    run_pipeline(_pipeline(TRAIN), _options(out))  # a run replaces a run: a new id
    assert read_run_id(out) not in (None, marker["run_id"])


def test_read_run_id_of_a_directory_without_one(tmp_path: Path) -> None:
    assert read_run_id(tmp_path) is None
    (tmp_path / "metrics.json").write_text('{"system": "demo"}')
    assert read_run_id(tmp_path) is None
    (tmp_path / RUN_MARKER).write_text("not json")
    assert read_run_id(tmp_path) is None


@pytest.mark.parametrize(
    "content", [{"notes.txt": "my thesis"}, {"metrics.json": "{}", "blueprint.md": "# old"}]
)
def test_out_that_is_not_a_run_is_refused_and_kept(tmp_path: Path, content: dict[str, str]) -> None:
    out = tmp_path / "mine"
    out.mkdir()
    for name, text in content.items():
        (out / name).write_text(text)
    ran: list[str] = []

    def spy(ctx: RunContext, state: DemoState) -> None:
        ran.append("step")

    with pytest.raises(RunRefusedError, match=r"is not an mlsd run .*--force"):
        run_pipeline(_pipeline(Step("spy", "spy", spy)), _options(out))
    assert ran == []  # refused before any step
    assert {p.name: p.read_text() for p in out.iterdir()} == content
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine"]


def test_force_replaces_a_directory_that_is_not_a_run(tmp_path: Path) -> None:
    out = tmp_path / "mine"
    out.mkdir()
    (out / "old.txt").write_text("x")
    run_pipeline(_pipeline(TRAIN), replace(_options(out), force=True))
    assert not (out / "old.txt").exists() and (out / RUN_MARKER).is_file()


def test_an_empty_directory_and_a_file_as_out(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    run_pipeline(_pipeline(TRAIN), _options(empty))
    assert is_run_dir(empty)
    a_file = tmp_path / "file.txt"
    a_file.write_text("keep me")
    for force in (False, True):
        with pytest.raises(RunRefusedError, match="not a directory"):
            run_pipeline(_pipeline(TRAIN), replace(_options(a_file), force=force))
    assert a_file.read_text() == "keep me"


def test_home_root_and_the_working_directory_are_refused_even_with_force(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home, cwd = tmp_path / "home", tmp_path / "work" / "here"
    cwd.mkdir(parents=True)
    home.mkdir()
    (home / ".bashrc").write_text("x")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(cwd)
    (cwd / "f").write_text("x")
    cases = ((home, "home directory"), (cwd, "holding it"), (cwd.parent, "holding it"))
    for out, why in cases:
        with pytest.raises(
            RunRefusedError, match=f"{why}: refusing to replace it, even with --force"
        ):
            check_out_dir(out, force=True)
    with pytest.raises(RunRefusedError, match="root of the file system"):
        check_out_dir(Path("/"), force=True)
    assert (home / ".bashrc").exists() and (cwd / "f").exists()


def _dead_pid() -> int:
    proc = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        check=True,
        capture_output=True,
        text=True,
    )
    return int(proc.stdout)


def test_the_next_run_removes_stale_temporary_dirs_it_owns(tmp_path: Path) -> None:
    dead = _dead_pid()
    stale = tmp_path / f".run.tmp-{dead}"
    (stale / "artifacts").mkdir(parents=True)
    here = {"system": "demo", "run_id": "x", "host": socket.gethostname()}
    (stale / RUN_MARKER).write_text(json.dumps(here))
    elsewhere = tmp_path / f".run.tmp-{dead + 1}"  # another host's (container's) run: its pid
    elsewhere.mkdir()  # is not ours to check
    (elsewhere / RUN_MARKER).write_text(json.dumps({**here, "host": "another-host"}))
    stale_old = tmp_path / f".run.old-{dead}"
    stale_old.mkdir()  # empty: what a rename left behind
    alive = tmp_path / f".run.tmp-{os.getppid()}"  # a run still going
    alive.mkdir()
    (alive / RUN_MARKER).write_text("{}")
    not_ours = tmp_path / f".run.tmp-{dead + 1_000_000}"  # no marker: not a run's
    not_ours.mkdir()
    (not_ours / "notes.txt").write_text("x")
    other_name = tmp_path / f".other.tmp-{dead}"
    other_name.mkdir()
    run_pipeline(_pipeline(TRAIN), _options(tmp_path / "run"))
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["run", alive.name, not_ours.name, other_name.name, elsewhere.name]
    )


def test_a_run_killed_between_its_renames_gets_its_previous_run_back(tmp_path: Path) -> None:
    out = tmp_path / "run"
    run_pipeline(_pipeline(TRAIN), _options(out))
    first = read_run_id(out)
    dead = _dead_pid()
    out.rename(tmp_path / f".run.old-{dead}")  # killed after the first rename
    assert remove_stale_work_dirs(out) == [] and read_run_id(out) == first
    assert [p.name for p in tmp_path.iterdir()] == ["run"]


def test_a_symbolic_link_as_out_is_judged_by_what_it_points_to(tmp_path: Path) -> None:
    target = tmp_path / "target"
    target.mkdir()
    (target / "mine.txt").write_text("x")
    (tmp_path / "link").symlink_to(target)
    with pytest.raises(RunRefusedError, match="target exists and is not an mlsd run"):
        run_pipeline(_pipeline(TRAIN), _options(tmp_path / "link"))
    assert (target / "mine.txt").read_text() == "x"


SIGTERM_SCRIPT = """
import sys, time
from pathlib import Path
from mlsd.runner import Pipeline, RunOptions, Step, run_pipeline
from mlsd.settings import Settings

def slow(ctx, state):
    (ctx.artifacts_dir / "partial.bin").write_bytes(b"x")
    Path(sys.argv[2]).write_text("started")
    for _ in range(600):  # bounded: 60 s at most
        time.sleep(0.1)

pipeline = Pipeline("Demo", lambda o: None, lambda o: [Step("slow", "slow", slow)])
run_pipeline(pipeline, RunOptions(system="demo", settings=Settings(), out=Path(sys.argv[1])))
"""


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_sigterm_removes_the_temporary_directory(tmp_path: Path) -> None:
    out, started = tmp_path / "runs" / "r", tmp_path / "started"
    proc = subprocess.Popen([sys.executable, "-c", SIGTERM_SCRIPT, str(out), str(started)])
    try:
        for _ in range(600):  # up to 60 s for the interpreter and imports
            if started.exists() or proc.poll() is not None:
                break
            time.sleep(0.1)
        assert started.exists(), "the step never started"
        assert [p.name for p in out.parent.iterdir()] == [f".r.tmp-{proc.pid}"]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 128 + signal.SIGTERM
    finally:
        if proc.poll() is None:
            proc.kill()
    assert list(out.parent.iterdir()) == []


def test_ctrl_c_removes_the_temporary_directory_and_the_handler_is_restored(
    tmp_path: Path,
) -> None:
    def interrupted(ctx: RunContext, state: DemoState) -> None:
        assert signal.getsignal(signal.SIGTERM) is not before  # ours, while the steps run
        raise KeyboardInterrupt

    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(KeyboardInterrupt):
        run_pipeline(_pipeline(TRAIN, Step("i", "i", interrupted)), _options(tmp_path / "r"))
    assert list(tmp_path.iterdir()) == []
    assert signal.getsignal(signal.SIGTERM) is before


def test_summary_lists_lines_then_skipped_parts() -> None:
    from mlsd.report import Blueprint
    from mlsd.runner import Skipped, Summary

    summary = Summary.of(["- a", "", "- b"], [Skipped("online", "no world")])
    assert summary.lines == ("- a", "- b", "- Skipped online: no world.")
    assert summary.metrics() == {}
    bp = Blueprint("T")
    summary.report(bp)
    md = bp.to_markdown()
    assert "What this run shows" in md and "- Skipped online: no world." in md


@dataclass(frozen=True)
class Overwrites:
    def metrics(self) -> dict[str, Any]:
        return {"scale": {"cores": 4}}  # would replace the run's own "scale": "tiny"


def test_a_step_cannot_overwrite_the_runs_own_keys(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="'scale'"):
        run_pipeline(
            _pipeline(Step("plan", "plan", lambda ctx, state: Overwrites())),
            _options(tmp_path / "r"),
        )
    assert not (tmp_path / "r").exists()


def test_optional_steps_can_be_left_out_and_are_listed_as_skipped(tmp_path: Path) -> None:
    out = tmp_path / "r"
    options = replace(_options(out), skip=frozenset({"eda"}))
    run_pipeline(_pipeline(TRAIN, Step("eda", "EDA", _boom), EVALUATE), options)
    m = json.loads((out / "metrics.json").read_text())
    assert {"step": "eda", "reason": "left out on request (--skip)"} in m["skipped"]
    assert "eda" not in m["steps"] and m["chosen_model"] == "m"
    assert "--skip eda" in (out / "blueprint.md").read_text()


def test_only_optional_steps_can_be_left_out(tmp_path: Path) -> None:
    options = replace(_options(tmp_path / "r"), skip=frozenset({"models"}))
    with pytest.raises(RunRefusedError, match="--skip models: only these steps"):
        run_pipeline(_pipeline(TRAIN), options)
    assert not (tmp_path / "r").exists()
