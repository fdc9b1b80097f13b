"""The Ray engine: a run's shards as Ray tasks, its tables through Ray Data, its PyTorch
training through Ray Train (the ``ray`` extra: ``pip install 'mlsd[ray]'``).

``RayEngine()`` starts a private Ray instance on this machine (bound to 127.0.0.1, as many CPUs
as asked or the machine has, no dashboard, usage statistics off) the first time a step uses it;
``RayEngine(address="HOST:PORT")`` connects to a running cluster instead (``ray start --head``
on one machine, ``ray start --address`` on the others). A Ray instance already initialised in
this process (a test fixture, a notebook) is used as it is and left running.

Every shard runs :func:`mlsd.engine.call_shard` in a task that also reports the id of the node
it ran on (:attr:`RayEngine.tasks_by_node`: the two-node test checks both nodes worked). Results
come back in the order of the shards; at most ``2 x workers`` shards are in flight, so a step
streaming its shards (the world's days) holds a bounded number of results.
"""

from __future__ import annotations

import logging
import os
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import pandas as pd
import pyarrow as pa

from mlsd.engine import (
    EngineJob,
    TableFn,
    TableSource,
    as_table,
    call_shard,
    check_batch_size,
    fn_name,
    parquet_paths,
    shard_units,
)
from mlsd.training import data_parallel

log = logging.getLogger(__name__)

R = TypeVar("R")

_QUIET_LOGGERS = ("ray", "ray.data", "ray.train", "ray.tune", "ray.util")


def _run_shard(fn: Callable[..., Any], shared: Any, item: Any) -> tuple[Any, str, float]:
    """A Ray task: the shard's result, the node it ran on and the seconds it took there."""
    import ray

    t0 = time.perf_counter()
    out = call_shard(fn, shared, item)
    return out, ray.get_runtime_context().get_node_id(), time.perf_counter() - t0


@contextmanager
def _loopback_only() -> Iterator[None]:
    """While inside, a new local Ray node takes 127.0.0.1 as its address. Ray replaces a
    loopback ``_node_ip_address`` with the machine's reachable address (and its servers then
    listen on every interface) unless its cluster mode is off, as on macOS and Windows; the
    mode is read when the node starts, so it is switched off only around ``ray.init``."""
    from ray._private import ray_constants  # no public switch in Ray 2.60

    if not hasattr(ray_constants, "ENABLE_RAY_CLUSTER"):  # another Ray: leave it as it is
        log.warning("this Ray has no ENABLE_RAY_CLUSTER switch; its node may not be loopback-only")
        yield
        return
    previous = ray_constants.ENABLE_RAY_CLUSTER
    ray_constants.ENABLE_RAY_CLUSTER = False
    try:
        yield
    finally:
        ray_constants.ENABLE_RAY_CLUSTER = previous


class RayEngine:
    """Shards as Ray tasks on a local instance or the cluster at ``address`` (see the module)."""

    name = "ray"

    def __init__(self, address: str | None = None, workers: int | None = None) -> None:
        if workers is not None and workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        if address is not None and workers is not None:
            raise ValueError("workers applies to a local Ray instance, not to --ray-address")
        self.address = address
        self._workers = workers
        self._owns = False
        self._remote: Any = None
        self.tasks_by_node: Counter[str] = Counter()
        self.jobs: list[EngineJob] = []

    # ---- lifecycle ------------------------------------------------------------------------
    def _ray(self) -> Any:
        """The ``ray`` module, initialised (started or connected) on first use."""
        import ray

        if not ray.is_initialized():
            os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
            for name in _QUIET_LOGGERS:
                logging.getLogger(name).setLevel(logging.WARNING)
            common: dict[str, Any] = {
                "logging_level": logging.WARNING,
                "log_to_driver": False,
                "configure_logging": True,
            }
            if self.address is not None:
                log.info("connecting to the Ray cluster at %s", self.address)
                try:
                    ray.init(address=self.address, **common)
                except (ConnectionError, RuntimeError, ValueError) as exc:
                    from mlsd.runner import RunRefusedError

                    raise RunRefusedError(
                        f"cannot use the Ray cluster at {self.address}: {exc} (is it running? "
                        "with token authentication, set RAY_AUTH_MODE=token)"
                    ) from None
            else:
                cpus = self._workers or os.cpu_count() or 1
                log.info("starting a local Ray instance on 127.0.0.1 with %d CPUs", cpus)
                with _loopback_only():
                    ray.init(
                        address="local",
                        num_cpus=cpus,
                        include_dashboard=False,
                        _node_ip_address="127.0.0.1",
                        **common,
                    )
            self._owns = True
            from ray.data import DataContext

            data = DataContext.get_current()
            data.execution_options.preserve_order = True  # map_table keeps the row order
            data.enable_progress_bars = False
            for name in _QUIET_LOGGERS:  # ray.data configures its loggers when imported
                logging.getLogger(name).setLevel(logging.WARNING)
        if self._remote is None:
            self._remote = ray.remote(num_cpus=1)(_run_shard)
        return ray

    def start(self) -> None:
        """Start (or connect to) Ray now rather than at the first shard."""
        self._ray()

    @property
    def workers(self) -> int:
        """CPUs of the instance (local) or of the whole cluster (``address``)."""
        if self._workers is not None and self.address is None and not self._owns:
            return self._workers
        ray = self._ray()
        return max(1, int(ray.cluster_resources().get("CPU", 1)))

    def shutdown(self) -> None:
        if self._owns:
            import ray

            ray.shutdown()
            self._owns = False
        self._remote = None

    def describe(self) -> dict[str, Any]:
        """Name, address, CPUs and nodes (asked of Ray only if a step started it), and how many
        shards ran on each node."""
        out: dict[str, Any] = {"name": self.name, "address": self.address or "local"}
        if self._owns:
            ray = self._ray()
            out["workers"] = self.workers
            out["nodes"] = sum(1 for n in ray.nodes() if n.get("Alive"))
        out["tasks_by_node"] = dict(self.tasks_by_node)
        return out

    # ---- shards ---------------------------------------------------------------------------
    def imap(
        self, fn: Callable[..., R], items: Iterable[Any], *, shared: Any = None
    ) -> Iterator[R]:
        ray = self._ray()
        remote = self._remote
        t0 = time.perf_counter()
        shared_arg = None if shared is None else ray.put(shared)
        window = 2 * self.workers
        pending: deque[Any] = deque()
        shards = units = 0
        core = [0.0]
        try:
            for item in items:
                pending.append(remote.remote(fn, shared_arg, item))
                shards, units = shards + 1, units + shard_units(item)
                if len(pending) >= window:
                    yield self._result(ray, pending.popleft(), core)
            while pending:
                yield self._result(ray, pending.popleft(), core)
        finally:
            for ref in pending:  # the caller stopped early, or a shard failed
                ray.cancel(ref)
        wall = time.perf_counter() - t0
        self.jobs.append(EngineJob(fn_name(fn), shards, units, wall, core[0], shard_units(shared)))

    def _result(self, ray: Any, ref: Any, core: list[float]) -> Any:
        result, node, seconds = ray.get(ref)
        self.tasks_by_node[node] += 1
        core[0] += seconds
        return result

    def map(self, fn: Callable[..., R], items: Iterable[Any], *, shared: Any = None) -> list[R]:
        return list(self.imap(fn, items, shared=shared))

    def map_table(self, fn: TableFn, source: TableSource, *, batch_size: int = 4096) -> pa.Table:
        """Ray Data ``map_batches`` over the table or Parquet files (row order preserved)."""
        check_batch_size(batch_size)
        ray = self._ray()
        from ray import data as ray_data

        dataset: Any
        if isinstance(source, pa.Table | pd.DataFrame):
            table = as_table(source)
            if table.num_rows == 0:
                raise ValueError("map_table: the source has no rows")
            dataset = ray_data.from_arrow(table)
        else:
            dataset = ray_data.read_parquet([str(p) for p in parquet_paths(source)])
        mapped = dataset.map_batches(
            fn, batch_format="pyarrow", batch_size=batch_size, zero_copy_batch=True
        )
        t0 = time.perf_counter()
        tables = ray.get(mapped.to_arrow_refs())
        if not tables:
            raise ValueError("map_table: the source has no rows")
        wall = time.perf_counter() - t0
        rows = sum(t.num_rows for t in tables)
        # Ray Data does not report per-batch times: the wall time on every worker is the bound
        self.jobs.append(EngineJob(fn_name(fn), len(tables), rows, wall, wall * self.workers))
        return pa.concat_tables(tables, promote_options="default")

    # ---- training -------------------------------------------------------------------------
    @contextmanager
    def data_parallel(self) -> Iterator[None]:
        """Inside the block, :func:`mlsd.training.train_loop` runs on Ray Train and
        :func:`mlsd.engine_lightgbm.fit_booster` on LightGBM's own data-parallel learner over
        Ray actors (fits of at least ``DATA_PARALLEL_MIN_ROWS`` rows): one worker per CPU of the
        instance, at most :data:`TRAIN_WORKERS` (CPU workers, gloo / LightGBM's sockets)."""
        from mlsd.engine_lightgbm import lightgbm_data_parallel
        from mlsd.training_ray import ray_train_runner

        self._ray()
        workers = min(self.workers, TRAIN_WORKERS)
        with data_parallel(ray_train_runner(workers)), lightgbm_data_parallel(workers):
            yield


#: Ray Train workers of one data-parallel fit (CPU workers: beyond a few, the all-reduce of
#: every step costs more than the slice saves on models this size).
TRAIN_WORKERS = 2
