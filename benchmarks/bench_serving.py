"""Serving latency of the ad-click scorer: the bare model, in-process, and behind HTTP (ch. 8).

The chapter's budget is 10 ms for 100 candidates. This benchmark measures, for LightGBM and
DCN-v2 and the same sequence of requests (one user, a context and 100 candidate ads each):

(0) the bare model call, ``predict_proba`` on the request's ready-made feature frame (the
    reference: what the model itself costs);
(a) ``AdClickScorer.score`` called in-process (online-store lookups, features, the model,
    ranking);
(b) the same requests through ``POST /v1/ad-click/score`` on a live uvicorn server on the
    loopback address, sent one after another by an httpx client;

the three back to back per request (so all see the same load on a shared machine), and reports
p50 / p99 of each and the ratios in-process / bare model (the cost of the serving path around
the model) and HTTP / in-process (the cost of HTTP, JSON and the framework). The server runs
in a thread of this process, so client and server share the GIL and the machine's cores: the
overhead measured is an upper bound of a separate-process deployment.
"""

from __future__ import annotations

import logging
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd

from benchmarks import BenchResult, latency_stats_ms
from mlsd.api.main import background_server, create_app
from mlsd.api.routes.ad_click import make_served_system
from mlsd.models import ClickEstimator, LightGBMClick
from mlsd.rng import rng as named_rng
from mlsd.settings import Settings
from mlsd.systems.ad_click import features as feats
from mlsd.systems.ad_click.model_dcn import DCNv2
from mlsd.systems.ad_click.serving import AdClickScorer, load_scorer, save_serving_artifacts
from mlsd.systems.ad_click.world import AdClickWorld
from mlsd.systems.ad_click.world_config import AdClickWorldConfig
from mlsd.training import torch_threads
from mlsd.world import Scale

log = logging.getLogger(__name__)

N_CANDIDATES = 100
WARMUP = 10


@dataclass(frozen=True)
class Fixture:
    """Run directories (one per model) and the users / ads requests draw from."""

    run_dirs: dict[str, Path]
    user_ids: np.ndarray
    ad_ids: np.ndarray
    n_train: int


def bench_world(quick: bool) -> AdClickWorld:
    """The tiny world with enough ads for 100 candidates (and more users): builds in seconds."""
    config = AdClickWorldConfig.for_scale(Scale.TINY).with_(
        n_users=1_000 if quick else 4_000, n_ads_initial=150 if quick else 300
    )
    return AdClickWorld(Scale.TINY, seed=0, config=config)


def build_fixture(root: Path, quick: bool) -> Fixture:
    world = bench_world(quick)
    log_df = world.log()
    X = feats.offline_features(log_df, world.users, world.ads)
    y = log_df["click"].to_numpy(dtype=np.int64)
    models: dict[str, ClickEstimator] = {
        "lightgbm": LightGBMClick(n_estimators=50 if quick else 200, num_threads=1, random_state=0),
        "dcn_v2": DCNv2(epochs=1 if quick else 3, num_threads=1, random_state=0),
    }
    tables = feats.online_tables(log_df, world.users, world.ads)
    run_dirs = {}
    for name, model in models.items():
        run_dirs[name] = root / name
        save_serving_artifacts(run_dirs[name] / "artifacts", model.fit(X, y), name, tables)
    shown = np.sort(tables["ad"]["key"].astype(np.int64).to_numpy())
    return Fixture(run_dirs, world.users["user_id"].to_numpy(np.int64), shown, len(X))


def make_requests(fx: Fixture, n: int, seed: int) -> list[dict[str, Any]]:
    """``n`` scoring requests: a random user, context and ``N_CANDIDATES`` distinct ads each."""
    rng = named_rng(seed, "benchmarks/serving/requests")
    k = min(N_CANDIDATES, len(fx.ad_ids))
    return [
        {
            "user_id": int(rng.choice(fx.user_ids)),
            "context": {
                "hour": int(rng.integers(24)),
                "device": str(rng.choice(["ios", "android", "web"])),
            },
            "ad_ids": [int(a) for a in rng.choice(fx.ad_ids, size=k, replace=False)],
        }
        for _ in range(n)
    ]


def request_frame(r: dict[str, Any]) -> pd.DataFrame:
    """One request's candidates as the rows ``score_frame`` and ``features`` take."""
    ctx = r["context"]
    return pd.DataFrame(
        [
            {"user_id": r["user_id"], "hour": ctx["hour"], "device": ctx["device"], "ad_id": a}
            for a in r["ad_ids"]
        ]
    )


def time_three(
    scorer: AdClickScorer, base_url: str, requests: list[dict[str, Any]]
) -> dict[str, list[float]]:
    """Per request: the bare model on its ready-made features, the in-process scorer, then the
    same over HTTP, back to back, so a burst of load elsewhere lands on all three alike."""
    out: dict[str, list[float]] = {"model": [], "in_process": [], "http": []}
    with httpx.Client(base_url=base_url, timeout=30.0) as client:
        for i, r in enumerate(requests):
            ctx = r["context"]
            X = scorer.features(request_frame(r))  # not timed: the model's input
            t0 = time.perf_counter()
            scorer.model.predict_proba(X)
            t1 = time.perf_counter()
            scorer.score(r["user_id"], ctx["hour"], ctx["device"], r["ad_ids"])
            t2 = time.perf_counter()
            resp = client.post("/v1/ad-click/score", json=r)
            t3 = time.perf_counter()
            resp.raise_for_status()
            if i >= WARMUP:
                out["model"].append(t1 - t0)
                out["in_process"].append(t2 - t1)
                out["http"].append(t3 - t2)
    return out


def time_batch(scorer: AdClickScorer, requests: list[dict[str, Any]]) -> float:
    """Rows per second of ``score_frame`` on all requests' candidates at once (batch scoring)."""
    frame = pd.concat([request_frame(r) for r in requests], ignore_index=True)
    t0 = time.perf_counter()
    scorer.score_frame(frame)
    return len(frame) / max(time.perf_counter() - t0, 1e-9)


def run(quick: bool = False) -> BenchResult:
    """Measure the bare model, in-process and HTTP scoring latency on the same requests."""
    n_requests = 60 if quick else 400
    rows: list[dict[str, Any]] = []
    summary: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="mlsd-bench-") as tmp, torch_threads(1):
        t0 = time.perf_counter()
        fx = build_fixture(Path(tmp), quick)
        setup_s = time.perf_counter() - t0
        requests = make_requests(fx, n_requests + WARMUP, seed=0)
        settings = Settings()
        for name, run_dir in fx.run_dirs.items():
            scorer = load_scorer(run_dir, settings)
            app = create_app(settings, [make_served_system(run_dir, settings)])
            with background_server(app) as base_url:
                timings = time_three(scorer, base_url, requests)
            stats = {path: latency_stats_ms(t) for path, t in timings.items()}
            for path, label in (
                ("model", "bare model predict_proba (ready features)"),
                ("in_process", "in-process AdClickScorer.score"),
                ("http", "HTTP POST /v1/ad-click/score"),
            ):
                rows.append({"model": name, "path": label, **stats[path]})
            summary[name] = {
                "model_p99_ms": stats["model"]["p99_ms"],
                "in_process_p99_ms": stats["in_process"]["p99_ms"],
                "http_p99_ms": stats["http"]["p99_ms"],
                "in_process_over_model_p99": stats["in_process"]["p99_ms"]
                / stats["model"]["p99_ms"],
                "http_over_in_process_p99": stats["http"]["p99_ms"] / stats["in_process"]["p99_ms"],
                "in_process_over_model_p50": stats["in_process"]["p50_ms"]
                / stats["model"]["p50_ms"],
                "http_over_in_process_p50": stats["http"]["p50_ms"] / stats["in_process"]["p50_ms"],
                "batch_score_frame_rows_per_s": time_batch(scorer, requests[:50]),
            }
    params = {
        "requests": n_requests,
        "warmup": WARMUP,
        "candidates": len(requests[0]["ad_ids"]),
        "train_rows": fx.n_train,
        "torch_threads": 1,
        "load": "sequential, one client, keep-alive, 127.0.0.1, the three paths back to back",
        "setup_s": round(setup_s, 2),
        "quick": quick,
    }
    return BenchResult(
        name="serving",
        description="ad-click scoring latency, 100 candidates: bare model vs in-process vs HTTP",
        rows=rows,
        summary=summary,
        params=params,
    )
