"""Step 6 for event recommendation, measured: the served model, its artifacts, and the latency
of each stage of a request (filtering, features, ranking) at the world's serving clock."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mlsd.metrics import latency_summary
from mlsd.report import Blueprint
from mlsd.rng import rng
from mlsd.systems.event_rec.evaluation import OfflineEvaluation
from mlsd.systems.event_rec.features import Platform
from mlsd.systems.event_rec.model_selection import TrainedModels
from mlsd.systems.event_rec.serving import EventRecScorer, save_serving_artifacts, world_tables
from mlsd.systems.event_rec.world import EventRecWorld, Log
from mlsd.systems.event_rec.world_config import DAY_S


@dataclass(frozen=True)
class ServingChoice:
    chosen: str
    because: str
    latency_ms: dict[str, dict[str, float]]
    clock_ts: int
    open_events: int
    mean_candidates: float

    def metrics(self) -> dict[str, Any]:
        return {
            "chosen_model": self.chosen,
            "serving": {
                "because": self.because,
                "latency_ms": self.latency_ms,
                "clock_ts": self.clock_ts,
                "open_events": self.open_events,
                "mean_candidates": self.mean_candidates,
            },
        }


def compute_serving(
    world: EventRecWorld,
    lg: Log,
    models: TrainedModels,
    offline: OfflineEvaluation,
    platform: Platform,
    artifacts_dir: Path,
    n_requests: int,
    seed: int,
) -> ServingChoice:
    """Save the best model's serving artifacts and time ``n_requests`` in-process requests."""
    chosen = models.chosen
    val = models.validation[chosen]
    because = (
        f"the best nDCG@10 on the validation days ({val['ndcg@10']:.4f}, MAP@10 "
        f"{val['map@10']:.4f}); test days {offline.scores[chosen]['ndcg@10']:.4f} / "
        f"{offline.scores[chosen]['map@10']:.4f}, measured after the choice"
    )
    cfg = world.config
    clock = cfg.n_days * DAY_S
    tables = world_tables(world, lg)
    model = models.models[chosen]
    save_serving_artifacts(
        artifacts_dir, model, chosen, tables, clock, cfg.n_hosts, cfg.n_slots, platform.text
    )
    scorer = EventRecScorer(
        model, chosen, tables, clock, cfg.n_hosts, cfg.n_slots, text=platform.text
    )
    users = rng(seed, "event-rec/latency-users").integers(0, scorer.n_users, n_requests)
    stages: dict[str, list[float]] = {}
    cands = []
    for u in users:
        rec = scorer.recommend(int(u), k=20)
        cands.append(rec.candidates)
        for stage, ms in rec.timings_ms.items():
            stages.setdefault(stage, []).append(ms)
    latency = {s: latency_summary(v) for s, v in stages.items()}
    return ServingChoice(
        chosen, because, latency, clock, len(scorer.open_events), float(np.mean(cands))
    )


def report_serving(bp: Blueprint, result: ServingChoice, n_days: int, n_requests: int) -> None:
    bp.section("Serving")
    bp.text(
        f"Served model: **{result.chosen}**, {result.because}. A request filters the "
        f"{result.open_events} events open at the serving clock (day {n_days}) to "
        f"~{result.mean_candidates:.0f} candidates, computes their features from the platform's "
        f"records and ranks them. Latency over {n_requests} requests, in-process (ms):"
    )
    bp.table(
        ["stage", "p50", "p95", "p99"],
        [[s, v.get("p50"), v.get("p95"), v.get("p99")] for s, v in result.latency_ms.items()],
    )
