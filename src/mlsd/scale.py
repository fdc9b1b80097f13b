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
from typing import TYPE_CHECKING, Any

from mlsd.engine import EngineJob
from mlsd.report import Blueprint

if TYPE_CHECKING:
    from mlsd.engine import Engine
    from mlsd.runner import RunContext

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
    basis: str = (
        "wall"  # "wall": seconds of the step on `workers`; "core": CPU-seconds of its shards
    )

    @property
    def per_core_per_s(self) -> float:
        return self.units / max(self.seconds, 1e-9) / max(self.workers, 1)

    @property
    def measured(self) -> str:
        if self.basis == "core":
            return f"{self.units:,} {self.unit} in {self.seconds:.2f} CPU-s of shards"
        return f"{self.units:,} {self.unit} in {self.seconds:.2f} s on {self.workers}"


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
    system: str = ""  # the bench rows of this system are shown (all when empty)
    target_unit: str = "users"  # what target_users counts (users, or the system's own unit)
    assumptions: tuple[str, ...] = ()  # the volumes the world does not measure, stated

    @property
    def bench_rows(self) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = self.bench.get("rows", [])
        mine = [r for r in rows if self.system and self.system in str(r.get("system", ""))]
        return mine or rows

    @property
    def efficiency(self) -> float:
        """Parallel efficiency: the bench's 2-vs-1-worker ratio / 2 (this system's steps, else
        all of them), else the assumption."""
        ratios = [float(r["ratio_2v1"]) for r in self.bench_rows if r.get("ratio_2v1")]
        if not ratios:
            return ASSUMED_EFFICIENCY
        return min(1.0, sum(ratios) / len(ratios) / 2.0)

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
                **({"online_store": self.store_plan()} if self.store_bytes_per_user else {}),
                **({"index": self.index_plan()} if self.index_vectors else {}),
            }
        }

    def report(self, bp: Blueprint) -> None:
        bp.section("Scale")
        eff = self.efficiency
        load = self.bench.get("summary", {}).get("load_average_before")
        source = (
            f"the Ray benchmark's mean 2-vs-1-worker ratio ({2 * eff:.2f}x, "
            f"`make bench`, load average {load})"
            if self.bench
            else f"assumed ({ASSUMED_EFFICIENCY:.0%}; run `make bench` to measure it)"
        )
        bp.text(
            f"This run's heavy steps ran on the **{self.engine}** engine. Every one is a pure "
            "function over shards (days of the log, blocks of users or rows), so the same code "
            "runs on one core or a Ray cluster (`mlsd run ... --engine ray --ray-address "
            f"HOST:PORT`). Below, the measured per-core throughput is scaled to "
            f"**{self.target_users:,} {self.target_unit}**, with parallel efficiency {eff:.0%}: "
            f"{source}."
        )
        if self.assumptions:
            bp.text("\n".join(f"- {a}" for a in self.assumptions))
        rows = []
        for r in self.rates:
            p = self.step_plan(r)
            rows.append(
                [
                    r.step,
                    r.measured,
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
        lines = []
        if self.store_bytes_per_user > 0:
            lines.append(
                f"- **Online store**: {self.target_users:,} {self.target_unit} x "
                f"{self.store_bytes_per_user:,.0f} B = {s['total_gb']:,.1f} GB; at half of a "
                f"{NODE_MEMORY_GB:g} GB node per shard, {s['shards']:,} shard(s) by hash of the "
                f"user id, x {REPLICAS} replicas = {s['nodes']:,} nodes (Redis Cluster: reads go "
                "to any replica, a day's counts are written once per shard)."
            )
        if self.index_vectors:
            ix = self.index_plan()
            lines.append(
                f"- **ANN index**: {self.index_vectors:,} vectors x {self.index_dim} x 4 B = "
                f"{ix['total_gb']:,.1f} GB; {ix['shards']:,} shard(s) (queries fan out to "
                f"every shard, top-k merged) x {REPLICAS} replicas = {ix['nodes']:,} nodes."
            )
        wall = any(r.basis == "wall" for r in self.rates)
        lines.append(
            "- **Where each step runs**: every heavy step above as Ray tasks, one per shard (a "
            "day of the log, a block of users, rows or images, a model), results gathered in "
            "shard order; Parquet tables through Ray Data `map_batches` (`Engine.map_table`); "
            "PyTorch training data-parallel on Ray Train (gradients all-reduced), LightGBM "
            "data-parallel on Ray actors; serving stays stateless behind the sharded store and "
            "index. "
            + (
                "On Ray, the first step's time includes Ray's start-up, so its per-core figure "
                "is a lower bound."
                if wall
                else "Per-core figures are the shards' own CPU-seconds: Ray's start-up and task "
                "dispatch are not in them (the bench's overhead column shows that cost)."
            )
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
                for r in self.bench_rows
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
                f"{self.bench.get('summary', {}).get('cores')} cores.",
            )


def load_bench(path: Path = BENCH_FILE) -> dict[str, Any]:
    """``make bench``'s Ray result, or ``{}`` when it has not run (or is unreadable)."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) and data.get("rows") else {}


# ---- a system's Scale section from what its engine measured ---------------------------------
@dataclass(frozen=True)
class HeavyStep:
    """A heavy step as a system's Scale section names it: the engine function that runs its
    shards (``fn``: the end of the recorded ``module.function`` name), what its units are, and
    how many of them a user (or the target's unit) brings per day."""

    fn: str
    step: str
    unit: str
    per_user_day: float
    units: int | None = None  # None: the engine's count (see `count`)
    window_hours: float = 1.0
    #: "items": a shard's units are its length (a block of users, rows, images); "shared": each
    #: shard (a model) works through the whole shared object (the rows every model scores)
    count: str = "items"


def measured_rates(jobs: list[EngineJob], steps: tuple[HeavyStep, ...]) -> tuple[StepRate, ...]:
    """Per heavy step that ran: its units and the CPU-seconds its shards took (all its calls
    summed), as a per-core :class:`StepRate`; steps that did not run are left out."""
    rates = []
    for spec in steps:
        ran = [j for j in jobs if j.name.endswith(spec.fn) and j.shards]
        if not ran:
            continue
        counted = (j.shards * j.shared_units if spec.count == "shared" else j.units for j in ran)
        units = spec.units if spec.units is not None else sum(counted)
        core = sum(j.core_seconds for j in ran)
        rates.append(
            StepRate(
                spec.step,
                spec.unit,
                units,
                core,
                1,
                spec.per_user_day,
                spec.window_hours,
                basis="core",
            )
        )
    return tuple(rates)


def engine_plan(
    engine: Engine,
    system: str,
    steps: tuple[HeavyStep, ...],
    *,
    store_bytes_per_user: float,
    index_vectors: int = 0,
    index_dim: int = 0,
    target_users: int = TARGET_USERS,
    target_unit: str = "users",
    assumptions: tuple[str, ...] = (),
) -> ScalePlan | None:
    """The Scale section of a run from its engine's measured jobs (None: no heavy step ran)."""
    rates = measured_rates(engine.jobs, steps)
    if not rates:
        return None
    return ScalePlan(
        engine=engine.name,
        rates=rates,
        store_bytes_per_user=store_bytes_per_user,
        index_vectors=index_vectors,
        index_dim=index_dim,
        target_users=target_users,
        bench=load_bench(),
        system=system,
        target_unit=target_unit,
        assumptions=assumptions,
    )


@dataclass(frozen=True)
class ScaleSpec:
    """What a system declares for its Scale section: its heavy steps and the sizes at the
    target that its world does not measure (each stated in ``assumptions``)."""

    system: str
    steps: tuple[HeavyStep, ...]
    store_bytes_per_user: float = 0.0
    index_vectors: int = 0
    index_dim: int = 0
    target_users: int = TARGET_USERS
    target_unit: str = "users"
    assumptions: tuple[str, ...] = ()

    def plan(self, engine: Engine) -> ScalePlan | None:
        return engine_plan(
            engine,
            self.system,
            self.steps,
            store_bytes_per_user=self.store_bytes_per_user,
            index_vectors=self.index_vectors,
            index_dim=self.index_dim,
            target_users=self.target_users,
            target_unit=self.target_unit,
            assumptions=self.assumptions,
        )

    def step(self, ctx: RunContext, state: object) -> ScalePlan | None:
        """The pipeline step (``Step("scale", "Scale", SPEC.step)``): reads the engine only."""
        return report_plan(ctx, self.plan(ctx.engine))


def report_plan(ctx: RunContext, plan: ScalePlan | None) -> ScalePlan | None:
    """The step's end: the section in the blueprint, or a recorded skip when nothing ran."""
    if plan is None:
        ctx.skip("scale", "no heavy step ran through the engine in this run")
        return None
    plan.report(ctx.blueprint)
    return plan
