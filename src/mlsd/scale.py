"""The blueprint's "Scale" section: from this run's measured throughput to a cluster plan.

A run measures how fast its heavy steps went on this machine (units per second: impressions
generated, impressions featurised, rows scored) and on how many workers. :class:`ScalePlan`
turns that into **per-core throughput** and writes the arithmetic for a target population
(100M users by default) out in full: the daily volume at the target, the core-hours each step
needs, the cores to finish it inside its window, and what the online store and the index become
(bytes per user, shards, replicas). When ``make bench`` has measured the Ray engine on this
checkout (``benchmarks/results/ray.json``), the measured 1- vs 2-worker ratio is shown and used
as the parallel efficiency; otherwise the efficiency is an explicit assumption.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlsd.report import Blueprint

log = logging.getLogger(__name__)

TARGET_USERS = 100_000_000
#: Parallel efficiency assumed when no benchmark measured one (a shuffle-free, map-only step).
ASSUMED_EFFICIENCY = 0.8
NODE_MEMORY_GB = 64.0  # usable memory per online-store / index node
REPLICAS = 3  # copies of every shard (one node lost, one upgrading, one serving)
BENCH_FILE = Path(__file__).resolve().parents[2] / "benchmarks" / "results" / "ray.json"


@dataclass(frozen=True)
class StepRate:
    """One heavy step as this run measured it: ``units`` of work in ``seconds`` on ``workers``
    cores; ``per_user_day`` units per user per day at any scale (how the volume grows)."""

    step: str
    unit: str
    units: int
    seconds: float
    workers: int
    per_user_day: float
    window_hours: float = 1.0  # how long the step may take each day at the target

    @property
    def per_core_per_s(self) -> float:
        return self.units / max(self.seconds, 1e-9) / max(self.workers, 1)


@dataclass(frozen=True)
class ScalePlan:
    """The Scale section: measured rates, the bench's scaling, and the plan at the target."""

    engine: str
    rates: tuple[StepRate, ...]
    store_bytes_per_user: float  # online store: bytes per user (features and pairs)
    index_vectors: int = 0  # catalogue vectors in the ANN index at the target (0: none)
    index_dim: int = 0
    target_users: int = TARGET_USERS
    bench: dict[str, Any] = field(default_factory=dict)  # make bench's ray.json, if any

    @property
    def efficiency(self) -> float:
        """Parallel efficiency: the bench's mean 2-vs-1-worker ratio / 2, else the assumption."""
        ratio = self.bench.get("summary", {}).get("mean_ratio_2v1")
        return min(1.0, float(ratio) / 2.0) if ratio else ASSUMED_EFFICIENCY

    def step_plan(self, r: StepRate) -> dict[str, float]:
        daily = self.target_users * r.per_user_day
        core_hours = daily / r.per_core_per_s / 3600.0
        cores = math.ceil(core_hours / r.window_hours / self.efficiency)
        return {"daily_units": daily, "core_hours": core_hours, "cores": cores}

    def store_plan(self) -> dict[str, float]:
        total_gb = self.target_users * self.store_bytes_per_user / 1e9
        shards = max(1, math.ceil(total_gb / (NODE_MEMORY_GB * 0.5)))  # half of RAM for data
        return {"total_gb": total_gb, "shards": shards, "nodes": shards * REPLICAS}

    def index_plan(self) -> dict[str, float]:
        gb = self.index_vectors * self.index_dim * 4 / 1e9
        shards = max(1, math.ceil(gb / (NODE_MEMORY_GB * 0.5)))
        return {"total_gb": gb, "shards": shards, "nodes": shards * REPLICAS}

    def metrics(self) -> dict[str, Any]:
        return {
            "scale_out": {
                "engine": self.engine,
                "target_users": self.target_users,
                "efficiency": self.efficiency,
                "steps": {
                    r.step: {"per_core_per_s": r.per_core_per_s, **self.step_plan(r)}
                    for r in self.rates
                },
                "online_store": self.store_plan(),
                **({"index": self.index_plan()} if self.index_vectors else {}),
            }
        }

    def report(self, bp: Blueprint) -> None:
        bp.section("Scale")
        eff = self.efficiency
        source = (
            f"the Ray benchmark's mean 2-vs-1-worker ratio ({2 * eff:.2f}x, "
            f"`make bench`, load average {self.bench['summary'].get('load_average_before')})"
            if self.bench
            else f"assumed ({ASSUMED_EFFICIENCY:.0%}; run `make bench` to measure it)"
        )
        bp.text(
            f"This run's heavy steps ran on the **{self.engine}** engine. Every one is a pure "
            "function over shards (days of the log, blocks of users or rows), so the same code "
            "runs on one core or a Ray cluster (`mlsd run ... --engine ray --ray-address "
            f"HOST:PORT`). Below, the measured per-core throughput is scaled to "
            f"**{self.target_users:,} users**, with parallel efficiency {eff:.0%}: {source}."
        )
        rows = []
        for r in self.rates:
            p = self.step_plan(r)
            rows.append(
                [
                    r.step,
                    f"{r.units:,} {r.unit} in {r.seconds:.2f} s on {r.workers}",
                    f"{r.per_core_per_s:,.0f}",
                    f"{self.target_users:,} x {r.per_user_day:.3g} = {p['daily_units']:,.0f}",
                    f"{p['daily_units']:,.0f} / {r.per_core_per_s:,.0f} / 3600 = "
                    f"{p['core_hours']:,.1f}",
                    f"{p['core_hours']:,.1f} / {r.window_hours:g} h / {eff:.2f} = {p['cores']:,}",
                ]
            )
        bp.table(
            ["step", "measured", "per core /s", "units per day", "core-hours", "cores"],
            rows,
            caption="From the measured per-core throughput to cores at the target: sharded by "
            "day (world, features) or by user / row block (scoring), one Ray task per shard.",
        )
        s = self.store_plan()
        lines = [
            f"- **Online store**: {self.target_users:,} users x "
            f"{self.store_bytes_per_user:,.0f} B = {s['total_gb']:,.1f} GB; at half of a "
            f"{NODE_MEMORY_GB:g} GB node per shard, {s['shards']:,} shard(s) by hash of the "
            f"user id, x {REPLICAS} replicas = {s['nodes']:,} nodes (Redis Cluster: reads go "
            "to any replica, a day's counts are written once per shard)."
        ]
        if self.index_vectors:
            ix = self.index_plan()
            lines.append(
                f"- **ANN index**: {self.index_vectors:,} vectors x {self.index_dim} x 4 B = "
                f"{ix['total_gb']:,.1f} GB; {ix['shards']:,} shard(s) (queries fan out to "
                f"every shard, top-k merged) x {REPLICAS} replicas = {ix['nodes']:,} nodes."
            )
        lines.append(
            "- **Where each step runs**: world/log ingestion and point-in-time features as Ray "
            "tasks per day (carried counts merged on the driver, a few MB per day); batch "
            "scoring and embedding as Ray tasks over blocks of users, rows or images (Ray Data "
            "`map_batches` where the input is a Parquet table, `Engine.map_table`); PyTorch "
            "training data-parallel on Ray Train (gradients all-reduced); serving stays "
            "stateless behind the sharded store and index. On Ray, the first step's time "
            "includes Ray's start-up, so its per-core figure is a lower bound."
        )
        bp.text("\n".join(lines))
        if self.bench:
            bench_rows = [
                [
                    r["system"],
                    r["step"],
                    f"{r['local_per_s']:,.0f}",
                    f"{r['ray1_per_s']:,.0f}",
                    f"{r['ray2_per_s']:,.0f}",
                    f"{r['ratio_2v1']:.2f}x",
                    f"{r['overhead_1w']:.0%}",
                ]
                for r in self.bench.get("rows", [])
            ]
            bp.table(
                [
                    "system",
                    "step",
                    "local /s",
                    "Ray 1 worker /s",
                    "Ray 2 workers /s",
                    "2 vs 1",
                    "Ray overhead at 1",
                ],
                bench_rows,
                caption=f"`make bench` (Ray engine), {self.bench.get('started_at', '')}, "
                f"{self.bench['summary'].get('cores')} cores.",
            )


def load_bench(path: Path = BENCH_FILE) -> dict[str, Any]:
    """``make bench``'s Ray result, or ``{}`` when it has not run (or is unreadable)."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) and data.get("rows") else {}
