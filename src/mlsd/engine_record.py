"""What a system really runs through its engine, recorded so it can be replayed elsewhere.

:class:`RecordingEngine` is the local engine that also keeps every call's function, shared
object, shards and results. :func:`capture` runs a system's own pipeline on it (a tiny world by
default) up to the first step that used the engine, and returns those calls: the Ray benchmark
(``benchmarks/bench_ray.py``) replays the heaviest one on 1 and 2 Ray workers, and the equality
tests replay each on Ray and compare with the recorded local results. Nothing here imports
Ray; a recorded call is exactly what the system hands its engine in a real run, no copy of it.
"""

from __future__ import annotations

import dataclasses
import logging
import shutil
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from mlsd.engine import Engine, LocalEngine
from mlsd.report import Blueprint

log = logging.getLogger(__name__)

R = TypeVar("R")


@dataclass(frozen=True)
class RecordedCall:
    """One ``map``/``imap`` call: ``fn(shared, item)`` for every item gave ``results``."""

    step: str  # the pipeline step that made the call
    fn: Callable[..., Any]
    shared: Any
    items: list[Any]
    results: list[Any]
    seconds: float  # the shards' own time, in this process

    @property
    def name(self) -> str:
        return f"{self.fn.__module__}.{self.fn.__qualname__}"

    def replay(self, engine: Engine, repeat: int = 1) -> list[Any]:
        """The same shards (``repeat`` times over) on ``engine``, results in order."""
        return engine.map(self.fn, self.items * repeat, shared=self.shared)


class RecordingEngine(LocalEngine):
    """The local engine, recording every call (its shards are held in memory: tiny worlds).

    A job over files (a shared dataclass with a ``folder`` it reads and an ``out`` it writes,
    such as a batch of images to blur) may run on a temporary folder its step deletes: the
    recorded call gets a copy of ``folder`` under ``keep`` and its own ``out`` there."""

    def __init__(self, keep: Path | None = None) -> None:
        super().__init__()
        self.calls: list[RecordedCall] = []
        self.step = ""
        self.keep = keep

    def _kept(self, shared: Any) -> Any:
        folder = getattr(shared, "folder", None)
        if self.keep is None or not dataclasses.is_dataclass(shared) or not hasattr(shared, "out"):
            return shared
        if not isinstance(folder, Path) or not folder.is_dir():
            return shared
        copy = self.keep / f"call-{len(self.calls)}"
        shutil.copytree(folder, copy / "in")
        return dataclasses.replace(shared, folder=copy / "in", out=copy / "out")  # type: ignore[type-var]

    def imap(
        self, fn: Callable[..., R], items: Iterable[Any], *, shared: Any = None
    ) -> Iterator[R]:
        kept = list(items)
        recorded = self._kept(shared)
        results: list[Any] = []
        for out in super().imap(fn, kept, shared=shared):
            results.append(out)
            yield out
        seconds = self.jobs[-1].core_seconds
        self.calls.append(RecordedCall(self.step, fn, recorded, kept, results, seconds))


def capture(system: str, work_dir: Path, scale: str = "tiny", seed: int = 0) -> list[RecordedCall]:
    """:func:`capture_run`'s calls."""
    return capture_run(system, work_dir, scale, seed)[0]


def capture_run(
    system: str, work_dir: Path, scale: str = "tiny", seed: int = 0
) -> tuple[list[RecordedCall], Any]:
    """Run ``system``'s pipeline on a :class:`RecordingEngine` (the optional steps left out) up
    to and including the first step that used the engine; that step's calls, in order. The
    run's files stay under ``work_dir`` (a call may read them: keep it while replaying). An
    error if no step used the engine (the system runs nothing through it). Also returns the
    run's state (what the steps made so far)."""
    from mlsd.runner import OPTIONAL_STEPS, RunContext, RunOptions
    from mlsd.settings import Settings
    from mlsd.systems import get_system
    from mlsd.world import Scale

    pipeline = get_system(system).pipeline()
    options = RunOptions(
        system, Settings(), scale=Scale(scale), seed=seed, out=work_dir / "run", skip=OPTIONAL_STEPS
    )
    keep = work_dir / "kept"
    keep.mkdir(parents=True, exist_ok=True)
    engine = RecordingEngine(keep)
    ctx = RunContext(options, work_dir, Blueprint(pipeline.title, ""), engine=engine)
    state = pipeline.new_state(options)
    for step in pipeline.steps(options):
        if step.name in options.skip:
            continue
        engine.step = step.name
        step.run(ctx, state)
        if engine.calls:
            log.info("%s: %d engine call(s) in step %s", system, len(engine.calls), step.name)
            return engine.calls, state
    raise ValueError(f"{system}: no step of the run used the engine")


def heaviest(calls: list[RecordedCall]) -> RecordedCall:
    """The call whose shards took the longest (the step's heavy part)."""
    return max(calls, key=lambda c: c.seconds)
