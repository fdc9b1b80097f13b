"""Event recommendation (book ch. 7): a request's stages as event filtering lets more through.

A world (tiny quick, small full) is logged, LightGBM pointwise is fitted on its impressions, and
the served ranker answers requests for random users at growing filtering radii: candidates per
request, and p50/p99 of filtering, online features, ranking and the whole request, in-process;
then the default request through ``GET /v1/event-rec/users/{id}/events`` on a live uvicorn
(the server runs in this process: an upper bound of the HTTP overhead).
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import httpx
import numpy as np

from benchmarks import BenchResult, latency_stats_ms
from mlsd.api.main import background_server, create_app
from mlsd.api.routes.event_rec import make_served_system
from mlsd.rng import rng
from mlsd.settings import Settings
from mlsd.systems.event_rec.features import Platform, daily_states, impression_features
from mlsd.systems.event_rec.model import make_model
from mlsd.systems.event_rec.serving import (
    EventRecScorer,
    save_serving_artifacts,
    world_tables,
)
from mlsd.systems.event_rec.world import EventRecWorld
from mlsd.systems.event_rec.world_config import DAY_S
from mlsd.world import Scale

RADII_KM = (2.0, 5.0, 8.0, 15.0, 50.0)


def run(quick: bool = False) -> BenchResult:
    scale = Scale.TINY if quick else Scale.SMALL
    n_requests = 50 if quick else 300
    w = EventRecWorld(scale, 0)
    lg = w.log()
    cfg = w.config
    tables = world_tables(w, lg)
    platform = Platform(tables.users, tables.events, tables.hoods)
    states = daily_states(
        platform, lg, list(range(cfg.n_days)), cfg.n_hosts, w.friends, w.follows, cfg.n_slots
    )
    X = impression_features(platform, states, lg.impressions)
    model = make_model("lightgbm_pointwise", 0, 40 if quick else 200)
    model.fit(X, lg.impressions["register"].to_numpy(np.int64))
    clock = cfg.n_days * DAY_S
    scorer = EventRecScorer(model, "lightgbm_pointwise", tables, clock, cfg.n_hosts, cfg.n_slots)
    users = rng(0, "bench/event-rec/users").integers(0, scorer.n_users, n_requests)
    rows: list[dict[str, object]] = []
    for radius in RADII_KM:
        stages: dict[str, list[float]] = {}
        cands = []
        for u in users:
            rec = scorer.recommend(int(u), k=20, radius_km=radius)
            cands.append(rec.candidates)
            for stage, ms in rec.timings_ms.items():
                stages.setdefault(stage, []).append(ms / 1000.0)
        row: dict[str, object] = {"radius_km": radius, "candidates": float(np.mean(cands))}
        for stage, secs in stages.items():
            stats = latency_stats_ms(secs)
            row[f"{stage}_p50_ms"] = round(stats["p50_ms"], 3)
            row[f"{stage}_p99_ms"] = round(stats["p99_ms"], 3)
        rows.append(row)
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(tmp)
        save_serving_artifacts(
            run_dir / "artifacts",
            model,
            "lightgbm_pointwise",
            tables,
            clock,
            cfg.n_hosts,
            cfg.n_slots,
        )
        settings = Settings()
        app = create_app(settings, [make_served_system(run_dir, settings)])
        with background_server(app) as base, httpx.Client(base_url=base) as client:
            times = []
            for u in users:
                t0 = time.perf_counter()
                client.get(f"/v1/event-rec/users/{int(u)}/events", params={"k": 20})
                times.append(time.perf_counter() - t0)
        http = latency_stats_ms(times)
    rows.append(
        {
            "radius_km": "http (8)",
            "total_p50_ms": round(http["p50_ms"], 3),
            "total_p99_ms": round(http["p99_ms"], 3),
        }
    )
    default = next(r for r in rows if r["radius_km"] == 8.0)
    return BenchResult(
        name="event_rec",
        description=__doc__.split("\n")[0] if __doc__ else "event-rec",
        rows=rows,
        summary={
            "scale": str(scale),
            "open_events": len(scorer.open_events),
            "default_radius_candidates": default["candidates"],
            "default_total_p99_ms": default["total_p99_ms"],
            "http_p99_ms": round(http["p99_ms"], 3),
        },
        params={"requests": n_requests, "radii_km": list(RADII_KM)},
    )
