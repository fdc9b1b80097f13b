"""Scaling of the heavy steps on Ray: local engine vs Ray with 1 and with 2 workers (issue #15).

For one heavy step per system (:data:`CASES`), the same shards run three times: on the local
engine (in-process, one after another), on a private Ray instance with 1 CPU, and on one with 2
CPUs. Each row gives the step's throughput (its units per second: impressions, images,
users...), the 2-vs-1-worker ratio (ideal 2.0 on 2 idle cores) and Ray's overhead at 1 worker
(1 - ray1 / local: task dispatch, serialisation of the shared object and the results), and the
peak resident memory of each Ray worker process (``ru_maxrss``: a worker's peak over its life,
so a later case can show an earlier one's peak). Ray's start-up is not timed (it is paid once
per run, reported separately). The load average is recorded beside the numbers: the machine may
be shared, and a busy machine understates the ratio.
"""

from __future__ import annotations

import logging
import os
import resource
import sys
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
    units: Callable[[Any], int]  # units of work in one shard's result


def measured(job: tuple[Callable[..., Any], Any], item: Any) -> tuple[Any, int, int]:
    """A shard, and the pid and peak RSS (KiB) of the process that ran it."""
    fn, shared = job
    out = call_shard(fn, shared, item)
    return out, os.getpid(), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def time_case(engine: Engine, case: Case) -> dict[str, Any]:
    t0 = time.perf_counter()
    results = engine.map(measured, case.items, shared=(case.fn, case.shared))
    seconds = time.perf_counter() - t0
    units = sum(case.units(r[0]) for r in results)
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


def _ad_click_cases(quick: bool) -> Iterable[Case]:
    import tempfile

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
    folder = Path(tempfile.mkdtemp(prefix="mlsd-bench-ray-"))
    written = write_world_log(world, folder)
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


def _visual_search_cases(quick: bool) -> Iterable[Case]:
    import numpy as np

    from mlsd.systems.visual_search.model import CNNEncoder
    from mlsd.systems.visual_search.serving_catalogue import encode_chunk

    gen = np.random.default_rng(0)
    images = gen.integers(0, 256, size=(256, 32, 32, 3), dtype=np.uint8)
    encoder = CNNEncoder(train_steps=5).fit(images, np.arange(256) % 16)
    n_chunks, size = (4, 256) if quick else (8, 2048)
    chunks = [gen.integers(0, 256, size=(size, 32, 32, 3), dtype=np.uint8) for _ in range(n_chunks)]
    yield Case(
        "visual-search",
        "catalogue embedding (CNN)",
        "images",
        encode_chunk,
        {"cnn": encoder},
        chunks,
        lambda r: int(r[0]),
    )


def _batch_scoring_cases(quick: bool) -> Iterable[Case]:
    import lightgbm as lgb
    import numpy as np
    import pandas as pd

    gen = np.random.default_rng(0)
    X = pd.DataFrame(gen.normal(size=(20_000, 20)), columns=[f"d_{i}" for i in range(20)])
    y = (X["d_0"] + X["d_1"] * X["d_2"] + gen.normal(size=len(X)) > 0).astype(int)
    model = lgb.LGBMClassifier(n_estimators=200, num_leaves=31, verbose=-1, n_jobs=1).fit(X, y)
    rows, block = (40_000, 10_000) if quick else (400_000, 50_000)
    big = pd.DataFrame(gen.normal(size=(rows, 20)), columns=X.columns)
    blocks = [big.iloc[s : s + block] for s in range(0, rows, block)]
    yield Case(
        "event-rec / news-feed",
        "batch scoring (LightGBM, score_rows)",
        "rows",
        _lgb_scores,
        model,
        blocks,
        len,
    )


def _lgb_scores(model: Any, X: Any) -> Any:
    return model.predict_proba(X)[:, 1]


CASES: tuple[Callable[[bool], Iterable[Case]], ...] = (
    _ad_click_cases,
    _visual_search_cases,
    _batch_scoring_cases,
)


def run(quick: bool = False) -> BenchResult:
    import ray.cloudpickle

    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    cases = [c for make in CASES for c in make(quick)]
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    load_before = os.getloadavg()
    for c in cases:
        time_case(LocalEngine(), c)  # warm-up, as on Ray
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
    for workers in (1, 2):
        t0 = time.perf_counter()
        engine = make_engine("ray", workers=workers)
        engine.map(abs, [0])  # start Ray (not timed below)
        startup[workers] = round(time.perf_counter() - t0, 2)
        try:
            for c in cases:
                time_case(engine, c)  # warm-up: worker processes start and import lazily
                got = time_case(engine, c)
                row = rows[(c.system, c.step)]
                row[f"ray{workers}_per_s"] = got["per_second"]
                row[f"ray{workers}_peak_rss_mib"] = got["peak_rss_mib"]
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
            "load_average_before": [round(x, 2) for x in load_before],
            "load_average_after": [round(x, 2) for x in load_after],
            "mean_ratio_2v1": sum(r["ratio_2v1"] for r in table) / len(table),
        },
        params={"quick": quick, "cases": [f"{c.system}: {c.step}" for c in cases]},
    )
