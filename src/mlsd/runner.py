"""Run a system's steps, in the book's order, into a run directory.

A system declares a :class:`Pipeline`: its title, a factory for its typed run state (a dataclass
the system owns, holding what its steps hand to each other) and its steps. Each step is a
function ``(ctx, state) -> result``: it reads earlier results from ``state``, stores its own
result there, and returns it. A result is a frozen dataclass with a ``metrics()`` method; the
runner merges what it returns into ``metrics.json`` under one layout for every system:

* ``models.<name>.<metric>``: each model's (or stage's) offline figures;
* ``chosen_model``: what is served; ``oracle``: the best achievable figures (world only);
* ``online``: the online experiment; ``steps.<step>.seconds``: timings; ``skipped``: what could
  not run and why.

No step reads ``metrics``: it is written by the runner only. The run is built in a hidden
temporary sibling of the output directory and renamed into place only when every step has
finished and the blueprint and ``metrics.json`` are written, so a failed run never leaves a
directory that looks complete.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar

from mlsd.artifacts import ARTIFACTS, METRICS, write_json
from mlsd.report import Blueprint
from mlsd.settings import Settings
from mlsd.world import Scale

log = logging.getLogger(__name__)

S = TypeVar("S")


class RunRefusedError(ValueError):
    """A run that cannot be done as asked (e.g. a scale this machine cannot build); the CLI
    prints the message and exits 2 before anything is written."""


class StepOrderError(RuntimeError):
    """A step asked for a result that no earlier step produced (the pipeline is mis-ordered)."""


@dataclass(frozen=True)
class RunOptions:
    """What the user asked for on the command line. ``settings`` is read once at the edge (the
    CLI, a test) and passed down: library code never builds ``Settings()`` itself."""

    system: str
    settings: Settings
    scale: Scale = Scale.SMALL
    seed: int = 0
    data: str | None = None  # "FORMAT:PATH" of the user's own data; None = the simulated world
    test_data: str | None = None
    out: Path = Path("runs/latest")

    def command_line(self) -> str:
        """The ``mlsd run`` command that reproduces this run."""
        source = f"--data {self.data}" if self.data else f"--scale {self.scale}"
        test = f" --test-data {self.test_data}" if self.test_data else ""
        return f"mlsd run {self.system} {source}{test} --seed {self.seed}"


# A step reports progress within itself through this: (description, completed, total).
ProgressFn = Callable[[str, float, float], None]


class StepResult(Protocol):
    """What a step returns: a frozen dataclass whose ``metrics()`` the runner merges into
    ``metrics.json`` (nested mappings merge key by key, so the evaluation step can add
    ``models.<name>.roc_auc`` beside the model step's ``models.<name>.train_seconds``)."""

    def metrics(self) -> Mapping[str, Any]: ...


@dataclass(frozen=True)
class Skipped:
    """A step (or part of one) that could not run, and why: recorded, never reported as run."""

    step: str
    reason: str


@dataclass
class RunContext:
    """What the runner gives every step: the options, the work directory, the blueprint, a
    progress callback and the list of skipped parts. State between steps lives in the system's
    own typed state object, never here."""

    options: RunOptions
    work_dir: Path
    blueprint: Blueprint
    progress: ProgressFn = field(default=lambda desc, done, total: None)
    skipped: list[Skipped] = field(default_factory=list)

    @property
    def artifacts_dir(self) -> Path:
        path = self.work_dir / ARTIFACTS
        path.mkdir(parents=True, exist_ok=True)
        return path

    @property
    def settings(self) -> Settings:
        return self.options.settings

    def skip(self, step: str, reason: str) -> None:
        """Record that (part of) a step could not run, and why."""
        log.info("skipped %s: %s", step, reason)
        self.skipped.append(Skipped(step, reason))


StepFn = Callable[[RunContext, S], "StepResult | None"]


@dataclass(frozen=True)
class Step(Generic[S]):
    """One step of the book's framework, as a system implements it."""

    name: str  # machine name, e.g. "evaluation"
    title: str  # shown in progress and in the blueprint, e.g. "5. Evaluation"
    run: StepFn[S]


@dataclass(frozen=True)
class Pipeline(Generic[S]):
    """A system's run: its title, its typed state and its steps in the chapter's order."""

    title: str
    new_state: Callable[[RunOptions], S]
    steps: Callable[[RunOptions], list[Step[S]]]


def require(value: S | None, what: str) -> S:
    """``value``, or :class:`StepOrderError` naming the missing result (a step ran too early)."""
    if value is None:
        raise StepOrderError(f"{what} is not available yet: the step that makes it has not run")
    return value


def merge_metrics(into: dict[str, Any], new: Mapping[str, Any]) -> dict[str, Any]:
    """Merge ``new`` into ``into`` key by key (mappings recursively; other values replace)."""
    for key, value in new.items():
        old = into.get(key)
        if isinstance(old, dict) and isinstance(value, Mapping):
            merge_metrics(old, value)
        else:
            into[key] = dict(value) if isinstance(value, Mapping) else value
    return into


StepObserver = Callable[[str, str], None]  # (event: "start"|"end", step title)


def run_pipeline(
    pipeline: Pipeline[S],
    options: RunOptions,
    *,
    progress_factory: Callable[[], Any] | None = None,
) -> Path:
    """Execute the pipeline's steps and move the finished run directory to ``options.out``.

    ``progress_factory`` returns a context manager yielding ``(on_step, progress_fn)``; the CLI
    passes a rich one, library callers and tests get logging only.
    """
    out = options.out.resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    work = out.parent / f".{out.name}.tmp-{os.getpid()}"
    if work.exists():
        shutil.rmtree(work)
    work.mkdir()
    ctx = RunContext(options, work, Blueprint(pipeline.title, options.command_line()))
    metrics: dict[str, Any] = {
        "system": options.system,
        "scale": str(options.scale),
        "seed": options.seed,
        "steps": {},
    }
    started = time.perf_counter()
    try:
        state = pipeline.new_state(options)
        with (progress_factory or _log_progress)() as (on_step, progress_fn):
            ctx.progress = progress_fn
            for step in pipeline.steps(options):
                on_step("start", step.title)
                t0 = time.perf_counter()
                result = step.run(ctx, state)
                seconds = time.perf_counter() - t0
                if result is not None:
                    merge_metrics(metrics, result.metrics())
                metrics["steps"][step.name] = {"seconds": round(seconds, 3)}
                on_step("end", step.title)
                log.info("%s done in %.1f s", step.title, seconds)
        metrics["skipped"] = [{"step": s.step, "reason": s.reason} for s in ctx.skipped]
        metrics["total_seconds"] = round(time.perf_counter() - started, 3)
        write_json(work / METRICS, metrics)
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
