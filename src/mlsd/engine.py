"""The engine seam: where a run's heavy steps execute (in-process, or on a Ray cluster).

The heavy steps (world generation, point-in-time features, embedding catalogues, batch scoring,
training) are pure functions over *shards*: a day of the log, a range of entities, a batch of
rows. A step hands its function and its shards to an :class:`Engine`, which runs them and returns
the results **in the order of the shards**, so the step's output does not depend on where or in
which order the shards ran. Each shard draws its randomness from its own named stream
(``mlsd.rng.rng(seed, "world/day-3")``), never from a generator shared across shards: the local
and the Ray engine then produce the same data, bit for bit (tests prove it).

* :class:`LocalEngine` (the default) runs every shard in this process, one after another. It
  needs nothing beyond mlsd's dependencies and never imports Ray.
* ``RayEngine`` (:mod:`mlsd.engine_ray`, the ``ray`` extra) runs shards as Ray tasks (Ray Data
  ``map_batches`` for tables) on a local Ray instance or an existing cluster, and PyTorch training
  data-parallel with Ray Train (:mod:`mlsd.training_ray`).

Functions given to an engine must be module-level (picklable by reference) and pure: they read
their arguments, return a value and write nothing shared. ``shared`` is a large read-only object
(the world, the entity tables) sent to each worker once, not once per shard. :func:`make_engine`
builds the engine a run's settings ask for; the runner gives it to every step as ``ctx.engine``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol, TypeAlias, TypeVar

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

log = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")

EngineKind = Literal["local", "ray"]
ENGINES: tuple[EngineKind, ...] = ("local", "ray")

#: ``fn(batch) -> batch``: a row-wise transformation of an Arrow table (each output row depends
#: on its input row only, so any split into batches gives the same table).
TableFn = Callable[[pa.Table], pa.Table]
TableSource: TypeAlias = pa.Table | pd.DataFrame | str | Path | Sequence[str | Path]


@dataclass(frozen=True)
class EngineJob:
    """One :meth:`Engine.map` / ``imap`` / ``map_table`` call as it ran: the function's name, its
    shards, their units of work (rows, users, images: ``len`` of each shard, 1 for a shard
    without one), the wall time of the whole call and the CPU-seconds the shards took where
    they ran (``core_seconds``: the sum of the shards' own times, on any number of workers).
    The blueprint's Scale section (:mod:`mlsd.scale`) turns these into per-core throughput."""

    name: str
    shards: int
    units: int
    wall_seconds: float
    core_seconds: float
    shared_units: int = 1  # the length of the shared object (the rows every shard scores)


def shard_units(item: Any) -> int:
    """Units of work in one shard: its length (rows of a frame or an array, users of a block,
    paths of a batch), or 1 (a day, a model, a scalar)."""
    if isinstance(item, str | bytes | dict):
        return 1
    try:
        return max(len(item), 0)
    except TypeError:
        return 1


def fn_name(fn: Callable[..., Any]) -> str:
    """The name an :class:`EngineJob` records for ``fn`` (``module.qualname``)."""
    return f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', repr(fn))}"


class Engine(Protocol):
    """Where a run's heavy steps execute. See the module docstring for the contract."""

    name: str
    #: Every call of this engine, in order (what the Scale section measures).
    jobs: list[EngineJob]

    @property
    def workers(self) -> int:
        """How many shards can run at once (1 for the local engine)."""
        ...

    def imap(
        self, fn: Callable[..., R], items: Iterable[Any], *, shared: Any = None
    ) -> Iterator[R]:
        """``fn(item)`` (or ``fn(shared, item)``) for every item, yielded in the items' order;
        items are consumed lazily and only a bounded number of results is held at once."""
        ...

    def map(self, fn: Callable[..., R], items: Iterable[Any], *, shared: Any = None) -> list[R]:
        """:meth:`imap` as a list."""
        ...

    def map_table(self, fn: TableFn, source: TableSource, *, batch_size: int = 4096) -> pa.Table:
        """``fn`` over ``source`` (a table, a frame, or Parquet files) in batches of at most
        ``batch_size`` rows; the outputs concatenated in the source's row order."""
        ...

    def data_parallel(self) -> AbstractContextManager[None]:
        """Inside the block, :func:`mlsd.training.train_loop` and (for enough rows)
        :func:`mlsd.engine_lightgbm.fit_booster` train data-parallel on this engine's workers
        (the local engine: in-process, unchanged)."""
        ...

    def describe(self) -> dict[str, Any]:
        """What the run's ``metrics.json`` records of the engine (name, workers, address)."""
        ...

    def start(self) -> None:
        """Start what the engine needs now rather than at its first shard (Ray); idempotent."""
        ...

    def shutdown(self) -> None:
        """Release what the engine started (a local Ray instance); idempotent."""
        ...


def call_shard(fn: Callable[..., R], shared: Any, item: Any) -> R:
    """``fn(item)``, or ``fn(shared, item)`` when there is a shared object."""
    return fn(item) if shared is None else fn(shared, item)


def parquet_paths(source: str | Path | Sequence[str | Path]) -> list[Path]:
    """The Parquet files of ``source`` (a file, a folder of ``*.parquet``, or a list of them),
    sorted, each checked to exist."""
    items = [source] if isinstance(source, str | Path) else list(source)
    paths: list[Path] = []
    for item in items:
        path = Path(item)
        if path.is_dir():
            found = sorted(path.glob("*.parquet"))
            if not found:
                raise FileNotFoundError(f"{path}: no *.parquet files in this folder")
            paths += found
        elif path.is_file():
            paths.append(path)
        else:
            raise FileNotFoundError(f"{path}: no such Parquet file or folder")
    if not paths:
        raise ValueError("map_table: no Parquet files given")
    return paths


def as_table(source: pa.Table | pd.DataFrame) -> pa.Table:
    """An Arrow table of a table or a frame (the frame's index is dropped)."""
    if isinstance(source, pa.Table):
        return source
    return pa.Table.from_pandas(source, preserve_index=False)


def check_batch_size(batch_size: int) -> None:
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")


class LocalEngine:
    """Every shard in this process, in order: the default, and the reference the Ray engine is
    tested against."""

    name = "local"

    def __init__(self) -> None:
        self.jobs: list[EngineJob] = []

    @property
    def workers(self) -> int:
        return 1

    def imap(
        self, fn: Callable[..., R], items: Iterable[Any], *, shared: Any = None
    ) -> Iterator[R]:
        t0 = time.perf_counter()
        shards = units = 0
        core = 0.0
        for item in items:
            t1 = time.perf_counter()
            out = call_shard(fn, shared, item)
            core += time.perf_counter() - t1
            shards, units = shards + 1, units + shard_units(item)
            yield out
        wall = time.perf_counter() - t0
        self.jobs.append(EngineJob(fn_name(fn), shards, units, wall, core, shard_units(shared)))

    def map(self, fn: Callable[..., R], items: Iterable[Any], *, shared: Any = None) -> list[R]:
        return list(self.imap(fn, items, shared=shared))

    def map_table(self, fn: TableFn, source: TableSource, *, batch_size: int = 4096) -> pa.Table:
        check_batch_size(batch_size)
        if isinstance(source, pa.Table | pd.DataFrame):
            tables: Iterable[pa.Table] = [as_table(source)]
        else:
            tables = (pq.read_table(p) for p in parquet_paths(source))
        t0 = time.perf_counter()
        outputs = [
            fn(table.slice(start, batch_size))
            for table in tables
            for start in range(0, max(table.num_rows, 1), batch_size)
            if table.num_rows
        ]
        if not outputs:
            raise ValueError("map_table: the source has no rows")
        seconds = time.perf_counter() - t0
        rows = sum(t.num_rows for t in outputs)
        self.jobs.append(EngineJob(fn_name(fn), len(outputs), rows, seconds, seconds))
        return pa.concat_tables(outputs, promote_options="default")

    def data_parallel(self) -> AbstractContextManager[None]:
        return nullcontext()

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "workers": 1}

    def start(self) -> None:
        return None

    def shutdown(self) -> None:
        return None


def make_engine(
    kind: str = "local", *, address: str | None = None, workers: int | None = None
) -> Engine:
    """The engine ``kind`` names: ``local`` (in-process) or ``ray`` (a local Ray instance with
    ``workers`` CPUs, default the machine's, or the cluster at ``address``). Ray is imported
    only here, only for ``ray``; a missing extra is a clear error."""
    if kind == "local":
        if address is not None:
            raise ValueError("--ray-address needs --engine ray")
        return LocalEngine()
    if kind == "ray":
        try:
            from mlsd.engine_ray import RayEngine
        except ImportError as exc:  # pragma: no cover - the extra is installed by make setup
            raise ValueError(f"--engine ray needs Ray: pip install 'mlsd[ray]' ({exc})") from None
        return RayEngine(address=address, workers=workers)
    raise ValueError(f"unknown engine {kind!r}; choose one of {', '.join(ENGINES)}")


#: Rows per shard of :func:`score_rows` (a batch-scoring job's unit of work).
SCORE_BLOCK = 50_000


def score_rows(
    engine: Engine,
    fn: Callable[[Any, pd.DataFrame], Any],
    model: Any,
    X: pd.DataFrame,
    block: int = SCORE_BLOCK,
) -> Any:
    """Batch scoring: ``fn(model, X)`` computed block by block of ``block`` rows on ``engine``
    (the model sent to each worker once) and concatenated in row order; ``fn`` must score each
    row on its own (a tree model exactly; a network up to float summation order). A frame of
    one block is one shard, still on ``engine`` (its time is measured like the others')."""
    import numpy as np

    check_batch_size(block)
    if len(X) <= block:
        return engine.map(fn, [X], shared=model)[0]
    parts = engine.map(fn, (X.iloc[s : s + block] for s in range(0, len(X), block)), shared=model)
    return np.concatenate(parts)
