"""Scaling of the heavy steps on Ray: local engine vs Ray with 1 and with 2 workers (issue #15).

One heavy step per system: ad-click's world log and point-in-time features by day (small
world), and for the nine others the step they really run through their engine, captured from a
tiny run of the system's own pipeline (:func:`mlsd.engine_record.capture`: batch scoring,
catalogue embedding, blurring, classification, candidate generation), its shards repeated until
one pass takes about :data:`PASS_SECONDS` locally. The same shards run three times: on the local
engine (in-process, one after another), on a private Ray instance with 1 CPU, and on one with 2
CPUs. Each row gives the step's throughput (its units per second: impressions, images,
users...), the 2-vs-1-worker ratio (ideal 2.0 on 2 idle cores) and Ray's overhead at 1 worker
(1 - ray1 / local: task dispatch, serialisation of the shared object and the results; the
local engine runs with one BLAS / PyTorch thread, as a 1-CPU Ray worker does), and the
peak resident memory of each Ray worker process (``ru_maxrss``: a worker's peak over its life,
so a later case can show an earlier one's peak). Ray's start-up is not timed (it is paid once
per run, reported separately). The load average is recorded beside the numbers: the machine may
be shared, and a busy machine understates the ratio. Last, event-rec's LambdaRank is trained on
its tiny run's training days on one machine and data-parallel on 2 Ray actors
(:mod:`mlsd.engine_lightgbm`): the summary's ``lightgbm_data_parallel`` gives both times and
both nDCG@10 on the test days.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import resource
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks import BenchResult
from mlsd.engine import Engine, LocalEngine, call_shard, make_engine

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Case:
    """One heavy step as shards: ``fn(shared, item)`` over ``items``; ``units`` per item."""

    system: str
    step: str
    unit: str
    fn: Callable[..., Any]
    shared: Any
    items: list[Any]
    units: Callable[[Any], int] | None  # units of work in one shard's result, or
    total_units: int = 0  # the units of all the items, known beforehand
    warm: int = 0  # shards of the warm-up pass (0: all of them)

    def warm_up(self, engine: Engine) -> None:
        """One untimed pass over the first shards: workers start and import lazily."""
        items = self.items[: self.warm] if self.warm else self.items
        time_case(engine, dataclasses.replace(self, items=items))


def measured(job: tuple[Callable[..., Any], Any], item: Any) -> tuple[Any, int, int]:
    """A shard, and the pid and peak RSS (KiB) of the process that ran it."""
    fn, shared = job
    out = call_shard(fn, shared, item)
    return out, os.getpid(), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def time_case(engine: Engine, case: Case) -> dict[str, Any]:
    """One timed pass; on the local engine with one BLAS / PyTorch thread, as a Ray worker of
    one CPU runs (Ray sets ``OMP_NUM_THREADS=1``): the same work per core on both sides."""
    from threadpoolctl import threadpool_limits

    from mlsd.training import torch_threads

    with threadpool_limits(1), torch_threads(1):
        t0 = time.perf_counter()
        results = engine.map(measured, case.items, shared=(case.fn, case.shared))
        seconds = time.perf_counter() - t0
    units = case.total_units or sum(case.units(r[0]) for r in results if case.units)
    peaks: dict[int, int] = {}
    for _, pid, rss in results:
        peaks[pid] = max(peaks.get(pid, 0), rss)
    return {
        "seconds": seconds,
        "units": units,
        "per_second": units / seconds,
        "workers_used": len(peaks),
        "peak_rss_mib": round(max(peaks.values()) / 1024, 1),
    }


def _ad_click_cases(quick: bool, work: Path) -> Iterable[Case]:
    """Ad-click's two sharded data steps, by day, at the small scale (its demo size)."""
    from mlsd.systems.ad_click import features_sharded as fs
    from mlsd.systems.ad_click.world import AdClickWorld
    from mlsd.systems.ad_click.world_log import log_day, write_world_log

    world = AdClickWorld("tiny" if quick else "small", seed=0)
    yield Case(
        "ad-click",
        "data: world log by day",
        "impressions",
        log_day,
        world,
        list(range(world.n_days)),
        len,
    )
    written = write_world_log(world, work / "ad-click")
    shards = fs.LogShards(written.log_path, world.users, world.ads, 0)
    per_day = LocalEngine().map(fs.day_counts, range(world.n_days), shared=shards)
    tasks = list(fs._carried(per_day, dict.fromkeys(range(world.n_days), 1.0)))
    yield Case(
        "ad-click",
        "features: point-in-time by day",
        "impressions",
        fs.day_features,
        shards,
        tasks,
        lambda r: len(r.X),
    )


#: Per system: the unit of its captured engine step's work, and the units in one shard
#: ``(shared, item)`` (a block's length, or the rows each model-per-shard scores).
UNITS: dict[str, tuple[str, Callable[[Any, Any], int]]] = {
    "video-rec": ("users", lambda shared, item: len(item)),
    "visual-search": ("images", lambda shared, item: len(item)),
    "street-view-blur": ("images", lambda shared, item: len(item)),
    "video-search": ("videos", lambda shared, item: len(item)),
    "harmful-content": ("images", lambda shared, item: len(item)),
    "event-rec": ("rows", lambda shared, item: len(item)),
    "news-feed": ("rows x heads model", lambda shared, item: len(shared)),
    "similar-listings": (
        "test cases",
        lambda shared, item: len(shared[0].booked_query) + len(shared[0].next_query),
    ),
    "people-you-may-know": ("users", lambda shared, item: len(item)),
}


#: Units of engine functions that a system's first engine step may run instead of its usual
#: one (video-search's first engine step generates its world).
UNITS_BY_FN: dict[str, tuple[str, Callable[[Any, Any], int]]] = {
    "log_day": ("days of the search log", lambda shared, item: 1),
    "frames_block": ("videos (frames)", lambda shared, item: len(item)),
}


def _captured_cases(quick: bool, work: Path, states: dict[str, Any]) -> Iterable[Case]:
    """Each system's heaviest engine call of a tiny run (:func:`mlsd.engine_record.capture`),
    its shards repeated until one pass on the local engine takes about :data:`PASS_SECONDS`.
    The runs' states are kept in ``states`` (the LightGBM check trains on event-rec's)."""
    from mlsd.engine_record import capture_run, heaviest

    for system, (unit, units) in UNITS.items():
        folder = work / system
        folder.mkdir()
        calls, states[system] = capture_run(system, folder)
        call = heaviest(calls)
        unit, units = UNITS_BY_FN.get(call.fn.__name__, (unit, units))
        repeat = max(
            math.ceil((0.5 if quick else PASS_SECONDS) / max(call.seconds, 1e-3)),
            math.ceil(MIN_SHARDS / max(len(call.items), 1)),  # enough to balance 2 workers
        )
        per_item = [units(call.shared, item) for item in call.items]
        yield Case(
            system,
            f"{call.step}: {call.fn.__qualname__}",
            unit,
            call.fn,
            call.shared,
            call.items * repeat,
            None,
            sum(per_item) * repeat,
            warm=max(4, len(call.items)),
        )


def lightgbm_check(engine: Engine, state: Any) -> dict[str, Any]:
    """event-rec's LambdaRank (its own parameters) trained on its tiny run's training days on
    one machine and data-parallel on 2 Ray actors (:mod:`mlsd.engine_lightgbm`): the seconds of
    each and the nDCG@10 of each on the test days' lists that hold a registration."""
    import numpy as np
    from sklearn.metrics import ndcg_score

    from mlsd.engine_lightgbm import train_lightgbm
    from mlsd.systems.event_rec.model import NUM_LEAVES

    data = state.features
    cols = [c for c in data.X.columns if c.startswith("d_")]

    def part(days: tuple[int, ...]) -> tuple[Any, Any, Any]:
        rows = np.flatnonzero(np.isin(data.day, days))
        rows = rows[np.argsort(data.session[rows], kind="stable")]
        _, sizes = np.unique(data.session[rows], return_counts=True)
        return data.X[cols].to_numpy(np.float64)[rows], data.y[rows], sizes

    X, y, sizes = part(data.train_days)
    Xt, yt, tsizes = part(data.test_days)
    params = {
        "objective": "lambdarank",
        "lambdarank_truncation_level": 20,
        "learning_rate": 0.05,
        "num_leaves": NUM_LEAVES,
        "min_child_samples": 50,
        "seed": 0,
        "deterministic": True,
        "force_row_wise": True,
        "num_threads": 1,
        "verbosity": -1,
    }
    out: dict[str, Any] = {"train_rows": len(y), "test_lists": 0}
    for name, eng in (("one_machine", LocalEngine()), ("two_ray_actors", engine)):
        t0 = time.perf_counter()
        booster = train_lightgbm(eng, params, X, y, 200, group_sizes=sizes, feature_name=cols)
        seconds = time.perf_counter() - t0
        scores, ndcgs, start = booster.predict(Xt), [], 0
        for k in tsizes:
            if yt[start : start + k].max() > 0 and k > 1:
                ndcgs.append(ndcg_score([yt[start : start + k]], [scores[start : start + k]], k=10))
            start += k
        out[name] = {"seconds": round(seconds, 2), "ndcg@10": float(np.mean(ndcgs))}
        out["test_lists"] = len(ndcgs)
    out["ndcg_difference"] = out["two_ray_actors"]["ndcg@10"] - out["one_machine"]["ndcg@10"]
    return out


PASS_SECONDS = 2.0  # local-engine seconds of one timed pass of a captured case
MIN_SHARDS = 8  # shards of a timed pass at least (3 shards on 2 workers cap the ratio at 1.5)


def run(quick: bool = False) -> BenchResult:
    import ray.cloudpickle

    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    with tempfile.TemporaryDirectory(prefix="mlsd-bench-ray-") as tmp:
        return _run(quick, Path(tmp))


def _run(quick: bool, work: Path) -> BenchResult:
    t0 = time.perf_counter()
    states: dict[str, Any] = {}
    cases = [*_ad_click_cases(quick, work), *_captured_cases(quick, work, states)]
    capture_s = round(time.perf_counter() - t0, 1)
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    load_before = os.getloadavg()
    for c in cases:
        c.warm_up(LocalEngine())  # as on Ray
        local = time_case(LocalEngine(), c)
        rows[(c.system, c.step)] = {
            "system": c.system,
            "step": c.step,
            "unit": c.unit,
            "shards": len(c.items),
            "units": local["units"],
            "local_per_s": local["per_second"],
        }
    startup = {}
    lgbm: dict[str, Any] = {}
    for workers in (1, 2):
        t0 = time.perf_counter()
        engine = make_engine("ray", workers=workers)
        engine.map(abs, [0])  # start Ray (not timed below)
        startup[workers] = round(time.perf_counter() - t0, 2)
        try:
            for c in cases:
                c.warm_up(engine)
                got = time_case(engine, c)
                row = rows[(c.system, c.step)]
                row[f"ray{workers}_per_s"] = got["per_second"]
                row[f"ray{workers}_peak_rss_mib"] = got["peak_rss_mib"]
            if workers == 2:
                lgbm = lightgbm_check(engine, states["event-rec"])
        finally:
            engine.shutdown()
    table = []
    for row in rows.values():
        row["ratio_2v1"] = row["ray2_per_s"] / row["ray1_per_s"]
        row["overhead_1w"] = 1.0 - row["ray1_per_s"] / row["local_per_s"]
        table.append(row)
    load_after = os.getloadavg()
    return BenchResult(
        name="ray",
        description="heavy steps: local engine vs Ray 1 and 2 workers (units per second)",
        rows=table,
        summary={
            "cores": os.cpu_count(),
            "ray_startup_s": startup,
            "capture_s": capture_s,
            "lightgbm_data_parallel": lgbm,
            "load_average_before": [round(x, 2) for x in load_before],
            "load_average_after": [round(x, 2) for x in load_after],
            "mean_ratio_2v1": sum(r["ratio_2v1"] for r in table) / len(table),
        },
        params={"quick": quick, "cases": [f"{c.system}: {c.step}" for c in cases]},
    )
