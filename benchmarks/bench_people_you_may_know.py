"""People you may know (book ch. 11): the precomputed list against the online path, over HTTP.

A world (tiny quick, small full) is split by time, LightGBM is fitted on the training pairs,
the daily batch job writes every user's list into a run directory, and a live uvicorn (in this
process: an upper bound of the HTTP overhead) answers ``GET /v1/people-you-may-know/users/{id}``
for random known users (a lookup), the same route for unknown users (a 404 with a message), and
``POST /v1/people-you-may-know/new-user`` (candidates, features and the model at request time).
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import httpx
import numpy as np

from benchmarks import BenchResult, latency_stats_ms
from mlsd.api.main import background_server, create_app
from mlsd.api.routes.people_you_may_know import make_served_system
from mlsd.rng import rng
from mlsd.settings import Settings
from mlsd.systems.people_you_may_know.datasets import world_graph
from mlsd.systems.people_you_may_know.features import Snapshot
from mlsd.systems.people_you_may_know.features_split import compute_split
from mlsd.systems.people_you_may_know.model import HeuristicScore, make_lightgbm
from mlsd.systems.people_you_may_know.serving import batch_job, save_serving_artifacts
from mlsd.systems.people_you_may_know.world import PymkWorld
from mlsd.world import Scale

ROUTE = "/v1/people-you-may-know"


def run(quick: bool = False) -> BenchResult:
    scale = Scale.TINY if quick else Scale.SMALL
    n_requests = 100 if quick else 1000
    n_new = 20 if quick else 100
    data = world_graph(PymkWorld(scale, 0))
    split = compute_split(data, 0, str(scale))
    model = make_lightgbm(0, len(split.train.y)).fit(split.train.X, split.train.y)
    snap = Snapshot.at(data.users, data.edges, data.n_days)
    t0 = time.perf_counter()
    batch = batch_job(snap, model, HeuristicScore("d_mutual").fit(split.train.X), 0)
    batch_s = time.perf_counter() - t0
    r = rng(0, "bench/pymk")
    present = np.flatnonzero(snap.present)
    known = r.choice(present, n_requests)
    unknown = len(data.users) + r.integers(0, 10**6, n_requests)
    users = data.users
    rows: list[dict[str, object]] = []
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(tmp)
        info = {"model": "lightgbm", "as_of_day": data.n_days}
        save_serving_artifacts(run_dir / "artifacts", batch.lists, users, data.edges, model, info)
        size = (run_dir / "artifacts" / "recommendations.parquet").stat().st_size
        settings = Settings()
        app = create_app(settings, [make_served_system(run_dir, settings)])
        with background_server(app) as base, httpx.Client(base_url=base) as client:
            for what, ids in (("known user (lookup)", known), ("unknown user (404)", unknown)):
                times, codes = [], set()
                for u in ids:
                    t = time.perf_counter()
                    codes.add(client.get(f"{ROUTE}/users/{int(u)}", params={"k": 20}).status_code)
                    times.append(time.perf_counter() - t)
                rows.append({"request": what, "status": sorted(codes), **_ms(times)})
            times, codes = [], set()
            for _ in range(n_new):
                like = int(r.choice(present))
                body: dict[str, object] = {
                    k: int(users[k].to_numpy()[like]) for k in ("school", "employer", "city")
                }
                friends = r.choice(present, int(r.integers(0, 4)), replace=False)
                body |= {"age": 30, "friends": [int(f) for f in friends], "k": 20}
                t = time.perf_counter()
                codes.add(client.post(f"{ROUTE}/new-user", json=body).status_code)
                times.append(time.perf_counter() - t)
            rows.append({"request": "new user (online)", "status": sorted(codes), **_ms(times)})
    return BenchResult(
        name="people_you_may_know",
        description=__doc__.split("\n")[0] if __doc__ else "people-you-may-know",
        rows=rows,
        summary={
            "scale": str(scale),
            "users": int(snap.present.sum()),
            "batch_seconds": round(batch_s, 2),
            "list_bytes": int(size),
            "lookup_http_p99_ms": rows[0]["p99_ms"],
            "new_user_http_p99_ms": rows[2]["p99_ms"],
        },
        params={"requests": n_requests, "new_user_requests": n_new},
    )


def _ms(seconds: list[float]) -> dict[str, float]:
    stats = latency_stats_ms(seconds)
    return {k: round(stats[k], 3) for k in ("p50_ms", "p99_ms", "mean_ms")}
