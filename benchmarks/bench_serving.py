"""Serving latency of the ad-click scorer: the bare model, in-process, and behind HTTP (ch. 8).

The chapter's budget is 10 ms for 100 candidates. This benchmark measures, for LightGBM and
DCN-v2 and the same sequence of requests (one user, a context and 100 candidate ads each):

(0) the bare model call on the request's ready-made inputs, the reference: the scorer's model
    kernel (:mod:`mlsd.systems.ad_click.serving_kernels`: the same model, called on the
    request's feature blocks, which are built before the clock starts); beside it, for
    comparison with earlier runs, ``predict_proba`` on the request's ready-made feature frame
    (the model's public call, which converts the frame to its inputs every time);
(a) ``AdClickScorer.score`` called in-process (online features by integer gathers, the model,
    ranking);
(b) the same requests through ``POST /v1/ad-click/score`` on a live uvicorn server in its own
    process (as ``mlsd serve`` runs) on the loopback address, sent one after another over one
    keep-alive connection by a lean client (the standard library's, one send per request);
(c) the HTTP floor: the same requests to uvicorn, as ``mlsd serve`` runs it, with a bare ASGI
    app (no framework, no model) answering a ready response of the same size: the cost of the
    loopback round trip itself (two process wake-ups, the socket calls, the client), which no
    work in the app can remove;

in alternating blocks of the same requests (so all see the same load on a shared machine; see
:func:`time_paths`). It reports p50 / p99 of each and the ratios in-process / bare model (the
cost of the serving path around the model) and HTTP / in-process (the cost of HTTP, JSON and
the framework; beside it the server's own mean time per request, from its metrics, and what
HTTP adds beyond the floor, relative to in-process), with the
machine's 1-minute load average before and after each model's timing. DCN-v2 is measured twice:
on torch, and as served with ``serve_onnx`` (onnxruntime where measured faster at load; its bare
model is then the onnxruntime call). Client and server share the machine's cores (two on the
shared machine), so the HTTP figure includes the client's own cost and, on a busy machine, the
scheduler's wake-ups of two processes per request: HTTP ratios mean something only on a quiet
machine. A server in a thread of the benchmark's process would add GIL hand-overs between
client and server that no deployment has.
"""

from __future__ import annotations

import http.client
import json
import logging
import multiprocessing as mp
import socket
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import uvicorn

from benchmarks import BenchResult, latency_stats_ms
from mlsd.api.main import create_app
from mlsd.api.routes.ad_click import make_served_system, score_json
from mlsd.latency import machine_load
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


PATHS = {
    "model": "bare model: the kernel on ready feature blocks",
    "model_frame": "model predict_proba on a ready feature frame",
    "in_process": "in-process AdClickScorer.score",
    "http": "HTTP POST /v1/ad-click/score",
    "http_floor": "HTTP floor: a bare ASGI app answering a ready response (no framework, no model)",
}


def _serve(run_dir: str, serve_onnx: bool, port: int) -> None:
    """The child process: ``mlsd serve``'s app for ``run_dir`` on ``127.0.0.1:port``."""
    settings = Settings(serve_onnx=serve_onnx)
    app = create_app(settings, [make_served_system(Path(run_dir), settings)])
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        log_level="warning",
        lifespan="off",
        access_log=False,
        timeout_keep_alive=60,  # the in-process blocks between HTTP blocks leave it idle
    )
    with torch_threads(settings.torch_threads):
        uvicorn.Server(config).run()


def _echo(body: bytes, port: int) -> None:
    """The child process of the HTTP floor: uvicorn as ``mlsd serve`` runs it, with an app of no
    framework and no model that reads each request and answers ``body`` (a real response)."""

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        while (await receive()).get("more_body"):
            pass
        headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_level="warning", lifespan="off", access_log=False
    )
    uvicorn.Server(config).run()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def server_process(
    target: Callable[..., None], *args: Any, timeout_s: float = 120.0
) -> Iterator[int]:
    """Run ``target(*args, port)`` (a server: :func:`_serve`, :func:`_echo`) in a child
    process; yield its port once ``/readyz`` answers 200; stop the child on exit."""
    port = _free_port()
    child = mp.get_context("spawn").Process(target=target, args=(*args, port), daemon=True)
    child.start()
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            if not child.is_alive():
                raise RuntimeError(f"the server {target.__name__} exited with {child.exitcode}")
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                conn.request("GET", "/readyz")
                if conn.getresponse().status == 200:
                    conn.close()
                    break
                conn.close()
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"the server {target.__name__} not ready in {timeout_s} s")
            time.sleep(0.2)
        yield port
    finally:
        child.terminate()
        child.join(timeout=10)


class Client:
    """One keep-alive connection; a request is one ``send`` (headers and body together)."""

    def __init__(self, port: int) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)

    def post(self, path: str, body: bytes) -> bytes:
        self.conn.request("POST", path, body=body, headers={"content-type": "application/json"})
        resp = self.conn.getresponse()
        data = resp.read()
        if resp.status != 200:
            raise RuntimeError(f"POST {path}: {resp.status} {data[:200]!r}")
        return data

    def server_mean_ms(self, route: str) -> float:
        """The server's own mean time per request of ``route`` (its metrics middleware: from
        the request's arrival to the response's end, all requests so far)."""
        self.conn.request("GET", "/metrics")
        text = self.conn.getresponse().read().decode()
        sums = {}
        for line in text.splitlines():
            for stat in ("sum", "count"):
                prefix = f'mlsd_request_latency_seconds_{stat}{{route="{route}"}} '
                if line.startswith(prefix):
                    sums[stat] = float(line[len(prefix) :])
        return 1e3 * sums["sum"] / sums["count"] if sums.get("count") else float("nan")

    def close(self) -> None:
        self.conn.close()


BLOCK = 50  # requests per block; in-process and HTTP blocks alternate


def time_paths(
    scorer: AdClickScorer, port: int, floor_port: int, requests: list[dict[str, Any]]
) -> tuple[dict[str, list[float]], float]:
    """The paths on the same requests, in alternating blocks of :data:`BLOCK` requests: an
    in-process block (per request, back to back: the bare model on its ready-made inputs, the
    kernel on the feature blocks and ``predict_proba`` on the frame, then the in-process scorer)
    and an HTTP block (the same requests, the client doing nothing else between them, sent to
    the scoring server and then to the floor server on ``floor_port``), so a burst of load lands
    on all alike, and the client's own CPU work between requests (which a
    busy machine's scheduler makes the client wait for) stays out of the HTTP figures."""
    out: dict[str, list[float]] = {path: [] for path in PATHS}
    arrays = scorer.arrays()
    if arrays is None:
        raise RuntimeError("the benchmark's scorer serves from memory: its arrays must exist")
    inputs = []  # not timed: each request's body, feature frame and feature blocks
    for r in requests:
        ctx = r["context"]
        ids = np.asarray(r["ad_ids"], dtype=np.int64)
        dense, cat, _ = arrays.gather(r["user_id"], ctx["hour"], ctx["device"], ids)
        inputs.append((json.dumps(r).encode(), scorer.features(request_frame(r)), dense, cat))
    client, floor = Client(port), Client(floor_port)
    try:
        for start in range(0, len(requests), BLOCK):
            block = range(start, min(start + BLOCK, len(requests)))
            for i in block:
                r, (_, X, dense, cat) = requests[i], inputs[i]
                ctx = r["context"]
                t0 = time.perf_counter()
                scorer.kernel(dense, cat)
                t1 = time.perf_counter()
                scorer.model.predict_proba(X)
                t2 = time.perf_counter()
                scorer.score(r["user_id"], ctx["hour"], ctx["device"], r["ad_ids"])
                t3 = time.perf_counter()
                if i >= WARMUP:
                    for path, dt in zip(PATHS, (t1 - t0, t2 - t1, t3 - t2), strict=False):
                        out[path].append(dt)
            for path, conn in (("http", client), ("http_floor", floor)):
                for i in block:
                    t0 = time.perf_counter()
                    conn.post("/v1/ad-click/score", inputs[i][0])
                    if i >= WARMUP:
                        out[path].append(time.perf_counter() - t0)
        server_ms = client.server_mean_ms("/v1/ad-click/score")
    finally:
        client.close()
        floor.close()
    return out, server_ms


def time_batch(scorer: AdClickScorer, requests: list[dict[str, Any]]) -> float:
    """Rows per second of ``score_frame`` on all requests' candidates at once (batch scoring)."""
    frame = pd.concat([request_frame(r) for r in requests], ignore_index=True)
    t0 = time.perf_counter()
    scorer.score_frame(frame)
    return len(frame) / max(time.perf_counter() - t0, 1e-9)


def _summary(stats: dict[str, dict[str, float]]) -> dict[str, float]:
    """The headline p99s and the ratios the issue sets goals for (p50 ratios beside them)."""
    out = {f"{path}_p99_ms": stats[path]["p99_ms"] for path in PATHS}
    for q in ("p99", "p50"):
        key = f"{q}_ms"
        out[f"in_process_over_model_{q}"] = stats["in_process"][key] / stats["model"][key]
        out[f"http_over_in_process_{q}"] = stats["http"][key] / stats["in_process"][key]
    # what the app adds beyond the bare server's round trip, relative to in-process scoring
    out["http_less_floor_over_in_process_p50"] = (
        stats["http"]["p50_ms"] - stats["http_floor"]["p50_ms"]
    ) / stats["in_process"]["p50_ms"]
    out["in_process_over_model_frame_p99"] = (
        stats["in_process"]["p99_ms"] / stats["model_frame"]["p99_ms"]
    )
    return out


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
        served = [(name, run_dir, False) for name, run_dir in fx.run_dirs.items()]
        served.append(("dcn_v2/onnx", fx.run_dirs["dcn_v2"], True))
        for name, run_dir, onnx in served:
            scorer = load_scorer(run_dir, Settings(serve_onnx=onnx))
            r = requests[0]
            answer = score_json(scorer.score(r["user_id"], **r["context"], ad_ids=r["ad_ids"]))
            with (
                server_process(_serve, str(run_dir), onnx) as port,
                server_process(_echo, answer) as floor_port,
            ):
                load_before = machine_load()
                timings, server_ms = time_paths(scorer, port, floor_port, requests)
            load = {"before": load_before["load_1m"], "after": machine_load()["load_1m"]}
            stats = {path: latency_stats_ms(t) for path, t in timings.items()}
            for path, label in PATHS.items():
                load_text = f"{load['before']:.2f}->{load['after']:.2f}"
                rows.append({"model": name, "path": label, **stats[path], "load_1m": load_text})
            summary[name] = (
                _summary(stats)
                | {
                    "runtime": scorer.kernel.runtime,
                    "http_server_mean_ms": server_ms,  # the server's own share of the HTTP time
                    "load_1m": load,
                    "batch_score_frame_rows_per_s": time_batch(scorer, requests[:50]),
                }
            )
    params = {
        "requests": n_requests,
        "warmup": WARMUP,
        "candidates": len(requests[0]["ad_ids"]),
        "train_rows": fx.n_train,
        "torch_threads": 1,
        "load": "sequential, one client, keep-alive, 127.0.0.1; in-process and HTTP in "
        f"alternating blocks of {BLOCK} requests",
        "cores": machine_load()["cores"],
        "setup_s": round(setup_s, 2),
        "quick": quick,
    }
    return BenchResult(
        name="serving",
        description="ad-click scoring latency, 100 candidates: bare model vs in-process vs HTTP "
        "(machine load beside every figure)",
        rows=rows,
        summary=summary,
        params=params,
    )
