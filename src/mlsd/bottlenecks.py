"""The bottlenecks talk (the interview's last five minutes), computed from a run's measurements.

Three questions, answered from ``metrics.json`` and the system's serving shape
(:mod:`mlsd.bottlenecks_specs`, keyed by system name):

* **Where does the cost go?** The step that dominates ``steps.*.seconds``: the first one to move
  to a cluster (Ray) or to precompute.
* **How big must serving be?** At the chapter's throughput (``requirements.throughput_qps``) and
  the *measured* compute per request, the cores the scorers need; the online store's reads per
  second (keys read per request × QPS) and writes per second (events logged per request × keys
  updated per event × QPS).
* **What to shard, and by what key?** The state that grows with the users, by the key its reads
  use, so that a request touches one shard; the shard count follows from the read rate and a
  stated per-shard capacity.

:func:`analyse` is pure; the runner calls :func:`report_bottlenecks` at the end of every run
(the blueprint's last section, ``bottlenecks`` in ``metrics.json``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mlsd.bottlenecks_specs import READS_PER_SHARD_PER_S, SPECS, ServingShape
from mlsd.interview_plan import resolve

if TYPE_CHECKING:
    from mlsd.report import Blueprint


@dataclass(frozen=True)
class Bottlenecks:
    """The run's bottlenecks; a figure is None where the run did not measure what it needs."""

    system: str
    step_seconds: tuple[tuple[str, float], ...]  # slowest first
    total_seconds: float
    qps: float | None
    ms_per_request: float | None
    ms_source: str | None  # the metrics.json path it came from
    reads_per_request: float | None
    events_per_request: float | None
    shape: ServingShape | None

    @property
    def dominant(self) -> tuple[str, float] | None:
        return self.step_seconds[0] if self.step_seconds else None

    @property
    def serving_cores(self) -> float | None:
        if self.qps is None or self.ms_per_request is None:
            return None
        return self.qps * self.ms_per_request / 1000.0

    @property
    def store_reads_per_s(self) -> float | None:
        if self.qps is None or self.reads_per_request is None:
            return None
        return self.qps * self.reads_per_request

    @property
    def store_writes_per_s(self) -> float | None:
        if self.qps is None or self.events_per_request is None or self.shape is None:
            return None
        return self.qps * self.events_per_request * self.shape.writes_per_event

    @property
    def shards(self) -> int | None:
        reads = self.store_reads_per_s
        return None if reads is None else max(1, math.ceil(reads / READS_PER_SHARD_PER_S))

    def metrics(self) -> dict[str, Any]:
        dominant = self.dominant
        shape = self.shape
        return {
            "bottlenecks": {
                "dominant_step": None if dominant is None else dominant[0],
                "dominant_seconds": None if dominant is None else dominant[1],
                "dominant_share": None
                if dominant is None or self.total_seconds <= 0
                else dominant[1] / self.total_seconds,
                "total_seconds": self.total_seconds,
                "qps": self.qps,
                "ms_per_request": self.ms_per_request,
                "ms_per_request_from": self.ms_source,
                "serving_cores": self.serving_cores,
                "store_reads_per_request": self.reads_per_request,
                "store_reads_per_s": self.store_reads_per_s,
                "events_per_request": self.events_per_request,
                "writes_per_event": None if shape is None else shape.writes_per_event,
                "store_writes_per_s": self.store_writes_per_s,
                "shard": None
                if shape is None
                else {
                    "what": shape.shard_what,
                    "key": shape.shard_key,
                    "why": shape.shard_why,
                    "shards": self.shards,
                    "reads_per_shard_per_s": READS_PER_SHARD_PER_S,
                },
            }
        }


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) and value >= 0 else None


def analyse(metrics: Mapping[str, Any]) -> Bottlenecks:
    """The bottlenecks of the run whose ``metrics.json`` is ``metrics`` (read defensively: a
    figure the run lacks stays None)."""
    system = str(metrics.get("system", ""))
    steps = metrics.get("steps") if isinstance(metrics.get("steps"), Mapping) else {}
    seconds = []
    for name, entry in (steps or {}).items():
        s = _number(entry.get("seconds")) if isinstance(entry, Mapping) else None
        if s is not None:
            seconds.append((str(name), s))
    seconds.sort(key=lambda kv: -kv[1])
    total = _number(metrics.get("total_seconds")) or sum(s for _, s in seconds)
    shape = SPECS.get(system)
    ms = source = None
    if shape is not None:
        for path in shape.ms_per_request:
            ms = _number(resolve(metrics, path))
            if ms is not None:
                source = path
                break
    return Bottlenecks(
        system=system,
        step_seconds=tuple(seconds),
        total_seconds=total,
        qps=_number(resolve(metrics, "requirements.throughput_qps")),
        ms_per_request=ms,
        ms_source=source,
        reads_per_request=None if shape is None else _number(shape.reads_per_request(metrics)),
        events_per_request=None if shape is None else _number(shape.events_per_request(metrics)),
        shape=shape,
    )


def report_bottlenecks(bp: Blueprint, metrics: Mapping[str, Any]) -> Bottlenecks:
    """The blueprint's "Bottlenecks and scaling" section; returns the result for metrics.json."""
    result = analyse(metrics)
    bp.section("Bottlenecks and scaling")
    dominant = result.dominant
    if dominant is not None and result.total_seconds > 0:
        bp.text(
            f"**Where the cost goes.** `{dominant[0]}` took {dominant[1]:.1f} s, "
            f"{dominant[1] / result.total_seconds:.0%} of this run's {result.total_seconds:.1f} s: "
            "the first step to distribute (Ray) or precompute as the data grows."
        )
        bp.table(
            ["step", "seconds", "share"],
            [[n, s, f"{s / result.total_seconds:.0%}"] for n, s in result.step_seconds[:6]],
            caption="The slowest steps of this run.",
        )
    shape = result.shape
    if shape is None:
        bp.text("This system declares no serving shape, so no serving figures are derived.")
        return result
    lines = []
    if result.serving_cores is not None:
        lines.append(
            f"- **Serving compute:** {result.qps:,.0f} requests/s (the chapter's throughput) × "
            f"{result.ms_per_request:.2f} ms measured per request (`{result.ms_source}`) ≈ "
            f"**{result.serving_cores:,.1f} busy cores**, before headroom and replication."
        )
    if result.store_reads_per_s is not None:
        lines.append(
            f"- **Online store reads:** {result.reads_per_request:,.0f} keys per request "
            f"({shape.reads_what}) × {result.qps:,.0f}/s ≈ "
            f"**{result.store_reads_per_s:,.0f} reads/s**."
        )
    if result.store_writes_per_s is not None:
        lines.append(
            f"- **Online store writes:** {result.events_per_request:,.1f} events logged per "
            f"request ({shape.events_what}) × {shape.writes_per_event:g} keys updated per event "
            f"× {result.qps:,.0f}/s ≈ **{result.store_writes_per_s:,.0f} writes/s**."
        )
    if result.shards is not None:
        lines.append(
            f"- **Shard** {shape.shard_what} by `{shape.shard_key}`: {shape.shard_why}. At "
            f"{READS_PER_SHARD_PER_S:,} reads/s per shard (an assumption: one in-memory store "
            f"core), **{result.shards:,} shards**; replicate each for availability."
        )
    bp.text("\n".join(lines) if lines else "This run measured no per-request cost.")
    return result
