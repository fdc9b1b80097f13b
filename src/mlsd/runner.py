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

A run never destroys what is not a run. Every run directory carries a marker file,
``.mlsd-run`` (the system, the run id, when and on which host it was made); an existing
``--out`` is replaced only when it holds that marker or is empty, and any other directory or
file is refused before a step runs unless ``force`` is set (even then never the home directory,
the root, or a directory holding the working directory). SIGTERM, like Ctrl-C, is turned into an
exception while the steps run, so the temporary directory is removed on the way out; a run
killed harder (SIGKILL, power loss) leaves ``.{name}.tmp-<pid>``, which the next run into the
same ``--out`` removes once that process is gone.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any, Generic, Protocol, TypeVar

from mlsd.artifacts import ARTIFACTS, METRICS, write_json
from mlsd.bottlenecks import report_bottlenecks
from mlsd.engine import Engine, LocalEngine, make_engine
from mlsd.report import Blueprint
from mlsd.run_dirs import RunRefusedError as RunRefusedError
from mlsd.run_dirs import (
    check_out_dir,
    remove_stale_work_dirs,
    replace_dir,
    write_marker,
)
from mlsd.settings import Settings
from mlsd.world import Scale

log = logging.getLogger(__name__)

S = TypeVar("S")


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
    force: bool = False  # replace an existing --out that is not an mlsd run (see the docstring)
    skip: frozenset[str] = frozenset()  # OPTIONAL_STEPS left out on request (--skip)

    def command_line(self) -> str:
        """The ``mlsd run`` command that reproduces this run."""
        source = f"--data {self.data}" if self.data else f"--scale {self.scale}"
        test = f" --test-data {self.test_data}" if self.test_data else ""
        skip = f" --skip {','.join(sorted(self.skip))}" if self.skip else ""
        return f"mlsd run {self.system} {source}{test} --seed {self.seed}{skip}"


#: The analyses a run may leave out on request (``--skip``): no later step needs their results,
#: and a skipped one is listed in ``metrics.json``'s ``skipped`` with the reason.
OPTIONAL_STEPS = frozenset(
    {"eda", "efficiency", "tradeoffs", "batch_vs_online", "canary", "scale", "sources"}
)


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
    engine: Engine = field(default_factory=LocalEngine)  # where the heavy steps run (--engine)

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


@dataclass(frozen=True)
class Summary:
    """The blueprint's closing section, "What this run shows": a line each, the parts that
    could not run last. A step result with no metrics of its own (the numbers are already in
    the other steps' results)."""

    lines: tuple[str, ...]

    @classmethod
    def of(cls, lines: Sequence[str], skipped: Sequence[Skipped]) -> Summary:
        """``lines`` (empty ones dropped), then one line per skipped part."""
        return cls(
            (*(x for x in lines if x), *(f"- Skipped {s.step}: {s.reason}." for s in skipped))
        )

    def metrics(self) -> dict[str, Any]:
        return {}

    def report(self, bp: Blueprint) -> None:
        bp.section("What this run shows")
        bp.text("\n".join(self.lines))


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


#: metrics.json keys the runner owns: a step result that returns one is a bug, not a merge
RUN_KEYS = frozenset({"system", "run_id", "scale", "seed", "steps", "skipped", "engine"})


def _step_metrics(step: str, result: StepResult) -> Mapping[str, Any]:
    metrics = result.metrics()
    clash = sorted(RUN_KEYS & set(metrics))
    if clash:
        raise TypeError(f"step {step!r} returned the runner's own metrics.json key(s) {clash}")
    return metrics


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
    passes a rich one, library callers and tests get logging only. An ``out`` that exists and is
    not an mlsd run raises :class:`RunRefusedError` before any step runs (see the module
    docstring); SIGTERM during the run raises ``SystemExit(143)`` after the temporary
    directory is removed.
    """
    unknown = sorted(options.skip - OPTIONAL_STEPS)
    if unknown:
        raise RunRefusedError(
            f"--skip {', '.join(unknown)}: only these steps can be left out: "
            f"{', '.join(sorted(OPTIONAL_STEPS))}"
        )
    out = options.out.resolve()
    check_out_dir(out, force=options.force)
    out.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_work_dirs(out)
    run_id = uuid.uuid4().hex
    work = out.parent / f".{out.name}.tmp-{os.getpid()}"
    if work.exists():
        shutil.rmtree(work)
    work.mkdir()
    ctx = RunContext(options, work, Blueprint(pipeline.title, options.command_line()))
    try:
        ctx.engine = make_engine(options.settings.engine, address=options.settings.ray_address)
    except ValueError as exc:  # e.g. --engine ray without the ray extra
        shutil.rmtree(work, ignore_errors=True)
        raise RunRefusedError(str(exc)) from None
    metrics: dict[str, Any] = {
        "system": options.system,
        "run_id": run_id,
        "scale": str(options.scale),
        "seed": options.seed,
        "steps": {},
    }
    started = time.perf_counter()
    try:
        with _sigterm_raises():
            write_marker(work, options.system, run_id)
            state = pipeline.new_state(options)
            with (progress_factory or _log_progress)() as (on_step, progress_fn):
                ctx.progress = progress_fn
                for step in pipeline.steps(options):
                    if step.name in options.skip:
                        ctx.skip(step.name, "left out on request (--skip)")
                        continue
                    on_step("start", step.title)
                    t0 = time.perf_counter()
                    result = step.run(ctx, state)
                    seconds = time.perf_counter() - t0
                    if result is not None:
                        merge_metrics(metrics, _step_metrics(step.name, result))
                    metrics["steps"][step.name] = {"seconds": round(seconds, 3)}
                    on_step("end", step.title)
                    log.info("%s done in %.1f s", step.title, seconds)
            metrics["skipped"] = [{"step": s.step, "reason": s.reason} for s in ctx.skipped]
            metrics["engine"] = ctx.engine.describe()
            metrics["total_seconds"] = round(time.perf_counter() - started, 3)
            merge_metrics(metrics, report_bottlenecks(ctx.blueprint, metrics).metrics())
            write_json(work / METRICS, metrics)
            ctx.blueprint.write(work)
            check_out_dir(out, force=options.force)  # something may have appeared meanwhile
            replace_dir(work, out)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    finally:
        ctx.engine.shutdown()
    return out


# ---- the run directory: what may be replaced, stale temporary directories, SIGTERM ----------
@contextmanager
def _sigterm_raises() -> Iterator[None]:
    """While inside, SIGTERM raises ``SystemExit(143)`` (so ``finally`` and ``except`` clauses
    run); the previous handler is restored on the way out. Only in the main thread, where
    Python delivers signals; elsewhere this does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGTERM)
    if previous is None:  # installed outside Python: put the default back afterwards
        previous = signal.SIG_DFL

    def on_sigterm(signum: int, frame: FrameType | None) -> None:
        signal.signal(signal.SIGTERM, previous)  # a second SIGTERM is not held back
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, on_sigterm)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextmanager
def _log_progress() -> Iterator[tuple[StepObserver, ProgressFn]]:
    def on_step(event: str, title: str) -> None:
        if event == "start":
            log.info("%s ...", title)

    def progress(desc: str, done: float, total: float) -> None:
        log.debug("%s: %s/%s", desc, done, total)

    yield on_step, progress
