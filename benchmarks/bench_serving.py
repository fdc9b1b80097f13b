"""Serving latency of the ad-click scorer: in-process versus behind HTTP (book ch. 8, serving).

The chapter's budget is 10 ms for 100 candidates. This benchmark measures, for the same sequence
of requests (one user, a context and 100 candidate ads each):

(a) ``AdClickScorer.score`` called in-process (online-store lookups, features, LightGBM, ranking);
(b) the same requests through ``POST /v1/ad-click/score`` on a live uvicorn server on the
    loopback address, sent one after another by an httpx client, each right after its
    in-process twin (paired, so both paths see the same load on a shared machine);

and reports p50 / p99 of each and the ratio server / in-process: the cost of HTTP, JSON and the
framework. The server runs in a thread of this process, so client and server share the GIL and
the machine's cores: the overhead measured is an upper bound of a separate-process deployment.
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
from mlsd.models import LightGBMClick
from mlsd.rng import rng as named_rng
from mlsd.settings import Settings
from mlsd.systems.ad_click import features as feats
from mlsd.systems.ad_click.serving import AdClickScorer, load_scorer, save_serving_artifacts
from mlsd.systems.ad_click.world import AdClickWorld
from mlsd.systems.ad_click.world_config import AdClickWorldConfig
from mlsd.world import Scale

log = logging.getLogger(__name__)

N_CANDIDATES = 100
WARMUP = 10


@dataclass(frozen=True)
class Fixture:
    """A run directory with a LightGBM model and the users / ads requests draw from."""

    run_dir: Path
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
    model = LightGBMClick(n_estimators=50 if quick else 200, num_threads=1, random_state=0).fit(
        X, y
    )
    tables = feats.online_tables(log_df, world.users, world.ads)
    save_serving_artifacts(root / "artifacts", model, "lightgbm", tables)
    shown = np.sort(tables["ad"]["key"].astype(np.int64).to_numpy())
    return Fixture(root, world.users["user_id"].to_numpy(np.int64), shown, len(X))


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


def time_paired(
    scorer: AdClickScorer, base_url: str, requests: list[dict[str, Any]]
) -> tuple[list[float], list[float]]:
    """Each request in-process, then the same over HTTP: both paths see the same machine load.

    Pairing matters on a shared machine: timing one path after the other lets a burst of load
    elsewhere land on only one of them.
    """
    local, remote = [], []
    with httpx.Client(base_url=base_url, timeout=30.0) as client:
        for i, r in enumerate(requests):
            ctx = r["context"]
            t0 = time.perf_counter()
            scorer.score(r["user_id"], ctx["hour"], ctx["device"], r["ad_ids"])
            t1 = time.perf_counter()
            resp = client.post("/v1/ad-click/score", json=r)
            t2 = time.perf_counter()
            resp.raise_for_status()
            if i >= WARMUP:
                local.append(t1 - t0)
                remote.append(t2 - t1)
    return local, remote


def time_batch(scorer: AdClickScorer, requests: list[dict[str, Any]]) -> float:
    """Rows per second of ``score_frame`` on all requests' candidates at once (batch scoring)."""
    frame = pd.DataFrame(
        [
            {
                "user_id": r["user_id"],
                "hour": r["context"]["hour"],
                "device": r["context"]["device"],
                "ad_id": a,
            }
            for r in requests
            for a in r["ad_ids"]
        ]
    )
    t0 = time.perf_counter()
    scorer.score_frame(frame)
    return len(frame) / max(time.perf_counter() - t0, 1e-9)


def run(quick: bool = False) -> BenchResult:
    """Measure (a) in-process and (b) HTTP scoring latency on the same requests."""
    n_requests = 60 if quick else 400
    with tempfile.TemporaryDirectory(prefix="mlsd-bench-") as tmp:
        t0 = time.perf_counter()
        fx = build_fixture(Path(tmp), quick)
        setup_s = time.perf_counter() - t0
        requests = make_requests(fx, n_requests + WARMUP, seed=0)
        settings = Settings()
        scorer = load_scorer(fx.run_dir, settings)
        app = create_app(settings, [make_served_system(fx.run_dir, settings)])
        with background_server(app) as base_url:
            local, remote = time_paired(scorer, base_url, requests)
        rows_per_s = time_batch(scorer, requests[:50])
    k = len(requests[0]["ad_ids"])
    in_process, over_http = latency_stats_ms(local), latency_stats_ms(remote)
    paired_overhead = latency_stats_ms(np.asarray(remote) - np.asarray(local))
    rows = [
        {"path": "in-process AdClickScorer.score", **in_process},
        {"path": "HTTP POST /v1/ad-click/score", **over_http},
    ]
    summary = {
        "candidates_per_request": k,
        "in_process_p50_ms": in_process["p50_ms"],
        "in_process_p99_ms": in_process["p99_ms"],
        "http_p50_ms": over_http["p50_ms"],
        "http_p99_ms": over_http["p99_ms"],
        "overhead_ratio_p50": over_http["p50_ms"] / in_process["p50_ms"],
        "overhead_ratio_p99": over_http["p99_ms"] / in_process["p99_ms"],
        "overhead_ms_paired_p50": paired_overhead["p50_ms"],
        "overhead_ms_paired_p99": paired_overhead["p99_ms"],
        "batch_score_frame_rows_per_s": rows_per_s,
    }
    params = {
        "requests": n_requests,
        "warmup": WARMUP,
        "candidates": k,
        "train_rows": fx.n_train,
        "model": "LightGBM",
        "load": "sequential, one client, keep-alive, 127.0.0.1, paired with in-process",
        "setup_s": round(setup_s, 2),
        "quick": quick,
    }
    return BenchResult(
        name="serving",
        description=f"ad-click scoring latency, {k} candidates: in-process vs HTTP",
        rows=rows,
        summary=summary,
        params=params,
    )
