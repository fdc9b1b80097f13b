"""Personalized news feed (book ch. 10): a feed request's stages per ranker as retrieval's
lookback lets more candidates through.

A world (tiny quick, small full) is logged; the multi-task network, the per-reaction LightGBM
models and the single classifier are fitted on its impressions (few epochs and trees: the cost
of a request, not the quality, is measured); the served feed answers requests for random users
with each ranker at growing lookbacks: candidates per request, and p50/p99 of retrieval,
features, scoring, re-ranking and the whole request, in-process; then the default request
through ``GET /v1/news-feed/users/{id}/feed`` on a live uvicorn (the server in this process).
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import httpx
import numpy as np

from benchmarks import BenchResult, latency_stats_ms
from mlsd.api.main import background_server, create_app
from mlsd.api.routes.news_feed import make_served_system
from mlsd.rng import rng
from mlsd.settings import Settings
from mlsd.systems.news_feed.features import Platform, impression_features, labels
from mlsd.systems.news_feed.model import MODELS, fit_model, make_model
from mlsd.systems.news_feed.serving import (
    NewsFeedScorer,
    load_scorer,
    save_serving_artifacts,
    world_tables,
)
from mlsd.systems.news_feed.serving_rerank import RerankConfig
from mlsd.systems.news_feed.world import NewsFeedWorld
from mlsd.systems.news_feed.world_config import DAY_S, DEFAULT_WEIGHTS
from mlsd.world import Scale

LOOKBACK_H = (24, 48, 96, 168)


def run(quick: bool = False) -> BenchResult:
    scale = Scale.TINY if quick else Scale.SMALL
    n_requests = 50 if quick else 200
    w = NewsFeedWorld(scale, 0)
    imp = w.log().impressions
    X, Y = impression_features(Platform(**w.platform_tables()), imp), labels(imp)
    clock = w.config.n_days * DAY_S
    tables = world_tables(w, imp, clock)
    users = rng(0, "bench/news-feed/users").integers(0, w.config.n_users, n_requests)
    rows: list[dict[str, object]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in MODELS:
            model = fit_model(make_model(name, 0, n_estimators=50, epochs=2), X, Y)
            for hours in LOOKBACK_H:
                scorer = NewsFeedScorer(
                    model, name, tables, clock, DEFAULT_WEIGHTS, RerankConfig(), hours
                )
                stages: dict[str, list[float]] = {}
                cands = []
                for u in users:
                    feed = scorer.feed(int(u), k=20)
                    cands.append(feed.candidates)
                    for stage, ms in feed.timings_ms.items():
                        stages.setdefault(stage, []).append(ms / 1000.0)
                row: dict[str, object] = {
                    "model": name,
                    "lookback_h": hours,
                    "candidates": float(np.mean(cands)),
                    "max_candidates": int(np.max(cands)),
                }
                for stage, secs in stages.items():
                    stats = latency_stats_ms(secs)
                    row[f"{stage}_p50_ms"] = round(stats["p50_ms"], 3)
                    row[f"{stage}_p99_ms"] = round(stats["p99_ms"], 3)
                rows.append(row)
        run_dir = Path(tmp)
        save_serving_artifacts(
            run_dir / "artifacts", model, name, tables, clock, DEFAULT_WEIGHTS, RerankConfig(), 48
        )
        load_scorer(run_dir)  # what the server will do: the manifest checks out
        settings = Settings()
        app = create_app(settings, [make_served_system(run_dir, settings)])
        with background_server(app) as base, httpx.Client(base_url=base) as client:
            times = []
            for u in users:
                t0 = time.perf_counter()
                client.get(f"/v1/news-feed/users/{int(u)}/feed", params={"k": 20})
                times.append(time.perf_counter() - t0)
        http = latency_stats_ms(times)
    rows.append(
        {
            "model": f"http ({name}, 48 h)",
            "total_p50_ms": round(http["p50_ms"], 3),
            "total_p99_ms": round(http["p99_ms"], 3),
        }
    )
    default = next(r for r in rows if r["model"] == "multi_task" and r["lookback_h"] == 48)
    return BenchResult(
        name="news_feed",
        description=__doc__.split("\n")[0] if __doc__ else "news-feed",
        rows=rows,
        summary={
            "scale": str(scale),
            "multi_task_48h_candidates": default["candidates"],
            "multi_task_48h_total_p99_ms": default["total_p99_ms"],
            "http_p99_ms": round(http["p99_ms"], 3),
        },
        params={"requests": n_requests, "lookback_h": list(LOOKBACK_H)},
    )
