"""Run a system's steps, in the book's order, into a run directory.

The run is built in a hidden temporary sibling of the output directory and renamed into place
only when every step has finished and the blueprint and ``metrics.json`` are written, so a failed
run never leaves a directory that looks complete. Steps that cannot run (an online A/B test on a
static file, say) are recorded as skipped with the reason, never reported as run.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mlsd.report import Blueprint
from mlsd.settings import Settings
from mlsd.world import Scale

log = logging.getLogger(__name__)


class RunRefusedError(ValueError):
    """A run that cannot be done as asked (e.g. a scale this machine cannot build); the CLI
    prints the message and exits 2 before anything is written."""


@dataclass(frozen=True)
class RunOptions:
    """What the user asked for on the command line."""

    system: str
    scale: Scale = Scale.SMALL
    seed: int = 0
    data: str | None = None  # "FORMAT:PATH" of the user's own data; None = the simulated world
    test_data: str | None = None
    out: Path = Path("runs/latest")
    settings: Settings = field(default_factory=Settings)

    def command_line(self) -> str:
        """The ``mlsd run`` command that reproduces this run."""
        source = f"--data {self.data}" if self.data else f"--scale {self.scale}"
        test = f" --test-data {self.test_data}" if self.test_data else ""
        return f"mlsd run {self.system} {source}{test} --seed {self.seed}"


# A step reports progress within itself through this: (description, completed, total).
ProgressFn = Callable[[str, float, float], None]


@dataclass
class RunContext:
    """What steps share: options, the work directory, the blueprint, metrics and state."""

    options: RunOptions
    work_dir: Path
    blueprint: Blueprint
    metrics: dict[str, Any] = field(default_factory=dict)
    state: dict[str, Any] = field(default_factory=dict)
    progress: ProgressFn = field(default=lambda desc, done, total: None)

    @property
    def artifacts_dir(self) -> Path:
        path = self.work_dir / "artifacts"
        path.mkdir(parents=True, exist_ok=True)
        return path

    def skip(self, step: str, reason: str) -> None:
        """Record that (part of) a step could not run, and why."""
        log.info("skipped %s: %s", step, reason)
        self.metrics.setdefault("skipped", []).append({"step": step, "reason": reason})


@dataclass(frozen=True)
class Step:
    """One step of the book's framework, as a system implements it."""

    name: str  # machine name, e.g. "evaluation"
    title: str  # shown in progress and in the blueprint, e.g. "5. Evaluation"
    run: Callable[[RunContext], None]


StepObserver = Callable[[str, str], None]  # (event: "start"|"end", step title)


def run_steps(
    steps: list[Step],
    options: RunOptions,
    title: str,
    *,
    progress_factory: Callable[[], Any] | None = None,
) -> Path:
    """Execute ``steps`` and move the finished run directory to ``options.out``.

    ``progress_factory`` returns a context manager yielding ``(on_step, progress_fn)``; the CLI
    passes a rich one, library callers and tests get logging only.
    """
    out = options.out.resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    work = out.parent / f".{out.name}.tmp-{os.getpid()}"
    if work.exists():
        shutil.rmtree(work)
    work.mkdir()
    ctx = RunContext(
        options=options,
        work_dir=work,
        blueprint=Blueprint(title, options.command_line()),
    )
    ctx.metrics.update(
        {
            "system": options.system,
            "scale": str(options.scale),
            "seed": options.seed,
            "steps": {},
            "skipped": [],
        }
    )
    started = time.perf_counter()
    try:
        with (progress_factory or _log_progress)() as (on_step, progress_fn):
            ctx.progress = progress_fn
            for step in steps:
                on_step("start", step.title)
                t0 = time.perf_counter()
                step.run(ctx)
                seconds = time.perf_counter() - t0
                ctx.metrics["steps"][step.name] = {"seconds": round(seconds, 3)}
                on_step("end", step.title)
                log.info("%s done in %.1f s", step.title, seconds)
        ctx.metrics["total_seconds"] = round(time.perf_counter() - started, 3)
        write_json(work / "metrics.json", ctx.metrics)
        ctx.blueprint.write(work)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    _replace_dir(work, out)
    return out


def _replace_dir(src: Path, dst: Path) -> None:
    """Move ``src`` to ``dst``; an existing ``dst`` is replaced only after ``src`` is in place."""
    old = None
    if dst.exists():
        old = dst.parent / f".{dst.name}.old-{os.getpid()}"
        dst.rename(old)
    src.rename(dst)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


@contextmanager
def _log_progress() -> Iterator[tuple[StepObserver, ProgressFn]]:
    def on_step(event: str, title: str) -> None:
        if event == "start":
            log.info("%s ...", title)

    def progress(desc: str, done: float, total: float) -> None:
        log.debug("%s: %s/%s", desc, done, total)

    yield on_step, progress


def to_jsonable(value: Any) -> Any:
    """Numpy scalars and arrays, Paths and NaN made JSON-safe (NaN becomes null)."""
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return [to_jsonable(v) for v in value.tolist()]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Path):
        return str(value)
    return value


def write_json(path: Path, obj: Any) -> None:
    """Write ``obj`` as indented JSON, atomically."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(to_jsonable(obj), indent=2, allow_nan=False) + "\n", encoding="utf-8")
    tmp.replace(path)
