"""The bottlenecks section: derived from the run's measurements, defensive about what is missing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from mlsd.bottlenecks import analyse, report_bottlenecks
from mlsd.bottlenecks_specs import AD_CANDIDATES, READS_PER_SHARD_PER_S, SPECS
from mlsd.report import Blueprint

DATA = Path(__file__).parent / "data" / "interview"


def _metrics(**extra: Any) -> dict[str, Any]:
    return {
        "system": "ad-click",
        "steps": {
            "data": {"seconds": 2.0},
            "models": {"seconds": 6.0},
            "serving": {"seconds": 2.0},
        },
        "total_seconds": 10.0,
        "requirements": {"throughput_qps": 1000.0},
        "chosen_model": "lgb",
        "models": {"lgb": {"latency_ms": {"mean": 4.0, "p99": 6.0}}},
        "data": {"ctr_by_position": {"0": 0.03, "1": 0.02, "2": 0.01, "3": 0.01}},
        **extra,
    }


def test_figures_follow_from_the_measurements() -> None:
    b = analyse(_metrics())
    assert b.dominant == ("models", 6.0)
    m = b.metrics()["bottlenecks"]
    assert m["dominant_share"] == pytest.approx(0.6)
    assert m["serving_cores"] == pytest.approx(4.0)  # 1000/s × 4 ms
    reads = 1000.0 * (2 + 4 * AD_CANDIDATES)
    assert m["store_reads_per_s"] == pytest.approx(reads)
    assert m["store_writes_per_s"] == pytest.approx(1000.0 * 4 * SPECS["ad-click"].writes_per_event)
    assert m["shard"]["key"] == "user_id"
    assert m["shard"]["shards"] == -(-int(reads) // READS_PER_SHARD_PER_S)
    assert m["ms_per_request_from"] == "models.<chosen_model>.latency_ms.mean"
    # twice the cost per request: twice the cores
    doubled = _metrics()
    doubled["models"]["lgb"]["latency_ms"]["mean"] = 8.0
    assert analyse(doubled).serving_cores == pytest.approx(8.0)


def test_missing_measurements_leave_figures_empty_not_wrong() -> None:
    m = _metrics(models={}, requirements={})
    b = analyse(m)
    assert b.ms_per_request is None and b.serving_cores is None and b.store_reads_per_s is None
    assert b.dominant == ("models", 6.0)
    odd = analyse({"system": "nope", "steps": {"a": {"seconds": "x"}, "b": None}})
    assert odd.dominant is None and odd.shape is None
    bp = Blueprint("t")
    report_bottlenecks(bp, {"system": "nope", "steps": {}})
    assert "declares no serving shape" in bp.to_markdown()


def test_report_section_states_the_numbers() -> None:
    bp = Blueprint("t")
    result = report_bottlenecks(bp, _metrics())
    md = bp.to_markdown()
    assert "## 1. Bottlenecks and scaling" in md
    assert "`models` took 6.0 s, 60%" in md and "4.0 busy cores" in md
    assert f"{result.store_reads_per_s:,.0f} reads/s" in md and "by `user_id`" in md


@pytest.mark.parametrize("path", sorted(DATA.glob("*.json")), ids=lambda p: p.stem)
def test_every_declared_shape_is_measured_on_a_real_run(path: Path) -> None:
    metrics = json.loads(path.read_text())["metrics"]
    b = analyse(metrics)
    assert b.shape is not None, f"{path.stem} declares no serving shape"
    assert b.ms_per_request is not None and b.ms_per_request > 0
    assert b.reads_per_request and b.events_per_request
    assert b.serving_cores and b.store_writes_per_s and b.shards
