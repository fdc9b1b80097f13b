"""The blueprint's Scale section (mlsd.scale): the arithmetic from measured per-core throughput
to cores, store and index at the target, and the figures of `make bench` when present."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlsd.engine import LocalEngine
from mlsd.report import Blueprint
from mlsd.scale import (
    ASSUMED_EFFICIENCY,
    REPLICAS,
    HeavyStep,
    ScalePlan,
    ScaleSpec,
    StepRate,
    load_bench,
    measured_rates,
)


def _plan(bench: dict[str, object] | None = None) -> ScalePlan:
    rate = StepRate("features", "impressions", 100_000, 2.0, 2, per_user_day=2.5)
    return ScalePlan(
        engine="ray",
        rates=(rate,),
        store_bytes_per_user=1_000.0,
        index_vectors=10_000_000,
        index_dim=64,
        bench=bench or {},
    )


def test_the_plan_follows_from_the_measured_rate() -> None:
    plan = _plan()
    rate = plan.rates[0]
    assert rate.per_core_per_s == pytest.approx(25_000.0)  # 100k / 2 s / 2 cores
    step = plan.step_plan(rate)
    assert step["daily_units"] == pytest.approx(250_000_000)  # 100M users x 2.5
    assert step["core_hours"] == pytest.approx(250_000_000 / 25_000 / 3600)
    assert step["cores"] == math.ceil(step["core_hours"] / 1.0 / ASSUMED_EFFICIENCY)
    store = plan.store_plan()
    assert store["total_gb"] == pytest.approx(100.0)  # 100M x 1 kB
    assert store["nodes"] == store["shards"] * REPLICAS and store["shards"] == 4  # 32 GB each
    assert plan.index_plan()["total_gb"] == pytest.approx(10_000_000 * 64 * 4 / 1e9)
    assert set(plan.metrics()["scale_out"]) >= {"steps", "online_store", "index", "efficiency"}


def test_the_bench_ratio_sets_the_efficiency_and_its_table_is_shown(tmp_path: Path) -> None:
    row = {
        "system": "ad-click",
        "step": "features",
        "local_per_s": 10.0,
        "ray1_per_s": 8.0,
        "ray2_per_s": 14.4,
        "ratio_2v1": 1.8,
        "overhead_1w": 0.2,
    }
    bench = {"rows": [row], "summary": {"mean_ratio_2v1": 1.8, "cores": 2}}
    path = tmp_path / "ray.json"
    path.write_text(json.dumps(bench))
    assert load_bench(path) == bench
    assert load_bench(tmp_path / "missing.json") == {}
    plan = _plan(load_bench(path))
    assert plan.efficiency == pytest.approx(0.9)
    bp = Blueprint("t", "mlsd run x")
    plan.report(bp)
    bp.write(tmp_path)
    text = (tmp_path / "blueprint.md").read_text()
    assert "## Scale" in text or "Scale" in text
    assert "1.80x" in text and "100,000,000" in text


def _block(k: int, users: np.ndarray) -> np.ndarray:
    return users * k


def _rows(X: pd.DataFrame, model: str) -> int:
    return len(X)


def test_the_engine_records_each_job_and_a_spec_turns_it_into_a_plan() -> None:
    engine = LocalEngine()
    blocks = [np.arange(s, s + 50) for s in range(0, 200, 50)]
    assert len(engine.map(_block, blocks, shared=3)) == 4
    (job,) = engine.jobs
    assert job.name.endswith("test_engine_scale._block")
    assert (job.shards, job.units) == (4, 200) and job.core_seconds > 0
    assert job.shared_units == 1  # an int has no length
    spec = ScaleSpec(
        "x",
        (
            HeavyStep("test_engine_scale._block", "batch", "users", per_user_day=1.0),
            HeavyStep("not_run", "never", "rows", per_user_day=1.0),
        ),
        store_bytes_per_user=100.0,
        assumptions=("one feed per user per day",),
    )
    plan = spec.plan(engine)
    assert plan is not None and plan.system == "x"
    (rate,) = plan.rates  # the step that did not run is left out
    assert rate.units == 200 and rate.workers == 1 and rate.basis == "core"
    assert rate.per_core_per_s == pytest.approx(200 / job.core_seconds)
    # a model-per-shard step counts the rows of the shared frame for every shard
    engine.map(_rows, ["model-a", "model-b"], shared=pd.DataFrame({"a": range(7)}))
    shared = HeavyStep("_rows", "scoring", "rows", per_user_day=1.0, count="shared")
    assert measured_rates(engine.jobs[1:], (shared,))[0].units == 14
    bp = Blueprint("t")
    plan.report(bp)
    text = bp.to_markdown()
    assert "one feed per user per day" in text and "CPU-s of shards" in text
    assert ScaleSpec("x", (shared,)).plan(LocalEngine()) is None  # nothing ran


def test_the_bench_rows_shown_are_the_systems_own() -> None:
    rows = [
        {"system": "ad-click", "ratio_2v1": 1.8},
        {"system": "video-rec", "ratio_2v1": 1.2},
    ]
    plan = dataclasses.replace(_plan({"rows": rows}), system="video-rec")
    assert [r["system"] for r in plan.bench_rows] == ["video-rec"]
    assert plan.efficiency == pytest.approx(0.6)


@dataclasses.dataclass(frozen=True)
class _FileJob:
    folder: Path
    out: Path


def _read(job: _FileJob, name: str) -> str:
    job.out.mkdir(parents=True, exist_ok=True)
    return (job.folder / name).read_text()


def test_a_recorded_file_job_replays_after_its_folder_is_gone(tmp_path: Path) -> None:
    from mlsd.engine_record import RecordingEngine, heaviest

    folder = tmp_path / "step-tmp"
    folder.mkdir()
    (folder / "a.txt").write_text("A")
    (tmp_path / "kept").mkdir()
    engine = RecordingEngine(tmp_path / "kept")
    assert engine.map(_read, ["a.txt"], shared=_FileJob(folder, tmp_path / "o")) == ["A"]
    (folder / "a.txt").unlink()  # the step removed its temporary folder
    call = heaviest(engine.calls)
    assert call.shared.folder != folder and call.results == ["A"]
    assert call.replay(LocalEngine(), repeat=2) == ["A", "A"]
