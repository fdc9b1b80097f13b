"""Soak test of a served system: steady load for minutes, with reloads (book ch. 8, serving).

A production server must not leak memory, slow down or fail as it runs. This benchmark builds a
tiny ad-click run with the real CLI (``mlsd run``), serves it in its own process (``mlsd serve``
on a free port of 127.0.0.1), and sends scoring requests one after another for ``SOAK_S``
seconds (2 minutes; 20 s with ``--quick``), with ``RELOADS`` ``POST /v1/ad-click/reload`` under
load in the first window. It reports, per window of ``WINDOW_S`` seconds: requests, errors (any
status but 200), failed reloads, p50 / p99 latency and the server's resident memory; and over the
run: the error count and the RSS slope in MB per minute after the first window (a leak shows as a
steady positive slope). The reloads come first because each of the first few raises RSS once
(the allocator keeps the replaced model's memory) before it plateaus: 20 reloads in 60 s
plateaued at ~620 MB here, so a slope measured across reloads would read as a leak.
The client is bounded in count and time and talks only to the loopback address.
"""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd

from benchmarks import BenchResult, latency_stats_ms
from mlsd.rng import rng as named_rng

log = logging.getLogger(__name__)

SOAK_S, QUICK_SOAK_S = 120.0, 20.0
WINDOW_S, QUICK_WINDOW_S = 30.0, 5.0
N_CANDIDATES = 50
MAX_REQUESTS = 200_000  # a bound on the loop whatever the machine's speed
RELOADS, RELOAD_EVERY = 5, 100  # reloads under load, all in the first window
CLI = [sys.executable, "-c", "from mlsd.cli import main; main()"]


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024.0
    return float("nan")


def _build_run(root: Path) -> Path:
    run_dir = root / "run"
    subprocess.run(
        [*CLI, "run", "ad-click", "--scale", "tiny", "--seed", "0", "--out", str(run_dir)],
        check=True,
        capture_output=True,
        timeout=600,
    )
    return run_dir


def _requests(run_dir: Path, n: int) -> list[dict[str, Any]]:
    online = run_dir / "artifacts" / "online"
    users = pd.read_parquet(online / "user.parquet")["key"].astype(np.int64).to_numpy()
    ads = pd.read_parquet(online / "ad.parquet")["key"].astype(np.int64).to_numpy()
    rng = named_rng(0, "benchmarks/soak/requests")
    k = min(N_CANDIDATES, len(ads))
    return [
        {
            "user_id": int(rng.choice(users)),
            "context": {"hour": int(rng.integers(24)), "device": "ios"},
            "ad_ids": [int(a) for a in rng.choice(ads, size=k, replace=False)],
        }
        for _ in range(n)
    ]


def _wait_ready(client: httpx.Client, server: subprocess.Popen[bytes], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"mlsd serve exited with {server.returncode} before it was ready")
        try:
            if client.get("/readyz").status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"mlsd serve was not ready within {timeout_s} s")


def _soak(
    client: httpx.Client, pid: int, requests: list[dict[str, Any]], soak_s: float, window_s: float
) -> tuple[list[dict[str, Any]], list[tuple[float, float]]]:
    """Send the requests in a loop for ``soak_s``; per-window rows and (t, rss) samples."""
    samples: list[tuple[float, float]] = []
    stop = threading.Event()
    start = time.monotonic()

    def sample_rss() -> None:
        while not stop.is_set():
            samples.append((time.monotonic() - start, _rss_mb(pid)))
            stop.wait(1.0)

    sampler = threading.Thread(target=sample_rss, name="rss-sampler", daemon=True)
    sampler.start()
    rows: list[dict[str, Any]] = []
    i = 0
    try:
        for w in range(int(np.ceil(soak_s / window_s))):
            times: list[float] = []
            errors, reload_failures = 0, 0
            window_end = start + min((w + 1) * window_s, soak_s)
            while time.monotonic() < window_end and i < MAX_REQUESTS:
                if w == 0 and i % RELOAD_EVERY == 0 and i // RELOAD_EVERY < RELOADS:
                    reload_failures += client.post("/v1/ad-click/reload").status_code != 200
                t0 = time.perf_counter()
                resp = client.post("/v1/ad-click/score", json=requests[i % len(requests)])
                times.append(time.perf_counter() - t0)
                errors += resp.status_code != 200
                i += 1
            stats = latency_stats_ms(times) if times else {"p50_ms": None, "p99_ms": None}
            rows.append(
                {
                    "window": w,
                    "from_s": round(w * window_s, 1),
                    "requests": len(times),
                    "errors": errors,
                    "reload_failures": reload_failures,
                    "p50_ms": stats["p50_ms"],
                    "p99_ms": stats["p99_ms"],
                    "rss_mb": _rss_mb(pid),
                }
            )
            log.info("soak window %d: %s", w, rows[-1])
    finally:
        stop.set()
        sampler.join(timeout=5)
    return rows, samples


def _rss_slope_mb_per_min(samples: list[tuple[float, float]], after_s: float) -> float:
    pts = np.array([(t, r) for t, r in samples if t >= after_s and np.isfinite(r)])
    if len(pts) < 3:
        return float("nan")
    return float(np.polyfit(pts[:, 0] / 60.0, pts[:, 1], 1)[0])


def run(quick: bool = False) -> BenchResult:
    soak_s = QUICK_SOAK_S if quick else SOAK_S
    window_s = QUICK_WINDOW_S if quick else WINDOW_S
    with tempfile.TemporaryDirectory(prefix="mlsd-soak-") as tmp:
        t0 = time.perf_counter()
        run_dir = _build_run(Path(tmp))
        setup_s = time.perf_counter() - t0
        requests = _requests(run_dir, 500)
        port = _free_port()
        env = {**os.environ, "MLSD_API_KEYS": "", "MLSD_LOG_LEVEL": "warning"}
        server = subprocess.Popen(
            [*CLI, "serve", "ad-click", "--run", str(run_dir), "--port", str(port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=env,
        )
        try:
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30.0) as client:
                _wait_ready(client, server, timeout_s=120.0)
                rss_start = _rss_mb(server.pid)
                rows, samples = _soak(client, server.pid, requests, soak_s, window_s)
        finally:
            server.terminate()
            try:
                server.wait(timeout=10)
            except subprocess.TimeoutExpired:
                server.kill()
    total = sum(r["requests"] for r in rows)
    summary = {
        "seconds": soak_s,
        "requests": total,
        "requests_per_s": total / soak_s,
        "errors": sum(r["errors"] for r in rows),
        "reloads": RELOADS,
        "reload_failures": sum(r["reload_failures"] for r in rows),
        "p99_ms_worst_window": max((r["p99_ms"] or 0.0) for r in rows),
        "rss_mb_start": rss_start,
        "rss_mb_end": rows[-1]["rss_mb"] if rows else float("nan"),
        "rss_mb_max": max((r for _, r in samples), default=float("nan")),
        "rss_slope_mb_per_min": _rss_slope_mb_per_min(samples, after_s=window_s),
    }
    return BenchResult(
        name="soak",
        description=f"ad-click server soak: {soak_s:.0f} s of scoring, a reload per window",
        rows=rows,
        summary=summary,
        params={
            "candidates": N_CANDIDATES,
            "window_s": window_s,
            "server": "mlsd serve in its own process, 127.0.0.1, one client, keep-alive",
            "setup_s": round(setup_s, 2),
            "quick": quick,
        },
    )
