"""The blueprint's Scale section (mlsd.scale): the arithmetic from measured per-core throughput
to cores, store and index at the target, and the figures of `make bench` when present."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from mlsd.report import Blueprint
from mlsd.scale import ASSUMED_EFFICIENCY, REPLICAS, ScalePlan, StepRate, load_bench


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
