"""Video recommendation (book ch. 6): FAISS exact vs approximate, and the stages of a request.

(a) Retrieval over a catalogue of random unit embeddings (50k quick, 300k full; HNSW builds are
    minutes beyond that on 2 shared cores): exact flat
    inner-product search is the reference; IVF and HNSW report recall@100 against it, build time,
    memory and query latency (ratios against exact measured in the same run). Random vectors
    have no cluster structure: the worst case for IVF, so its recall here is a lower bound.
(b) A home-feed request on a tiny world's fitted stack: retrieval, ranking and re-ranking p50/p99
    in-process, versus the same request through ``GET /v1/video-rec/users/{id}/recommendations``
    on a live uvicorn (the server runs in this process: an upper bound of the HTTP overhead).
"""

from __future__ import annotations

import logging
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
import torch

from benchmarks import BenchResult, latency_stats_ms
from mlsd.api.main import background_server, create_app
from mlsd.api.routes.video_rec import make_served_system
from mlsd.index import VectorIndex, recall_at_k
from mlsd.rng import rng
from mlsd.settings import Settings
from mlsd.systems.video_rec.features import Catalogue
from mlsd.systems.video_rec.model import FitConfig, fit_recommender
from mlsd.systems.video_rec.serving import ANN_PARAMS, save_recommender
from mlsd.systems.video_rec.world import VideoRecWorld
from mlsd.systems.video_rec.world_entities import CATEGORIES
from mlsd.text import make_encoder
from mlsd.world import Scale

log = logging.getLogger(__name__)


def bench_ann(n: int, dim: int, n_queries: int, seed: int = 0) -> list[dict[str, object]]:
    gen = rng(seed, "bench/video-rec/ann")
    x = gen.normal(size=(n, dim)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    q = x[gen.choice(n, n_queries, replace=False)] + 0.1 * gen.normal(size=(n_queries, dim))
    q = (q / np.linalg.norm(q, axis=1, keepdims=True)).astype(np.float32)
    rows: list[dict[str, object]] = []
    exact_ids = None
    exact_p50 = None
    for kind, params in (
        ("exact", ANN_PARAMS["exact"]),
        ("ivf", {**ANN_PARAMS["ivf"], "nlist": 1024}),
        ("hnsw", ANN_PARAMS["hnsw"]),
    ):
        idx = VectorIndex.build(kind, x, seed=seed, **params)
        times, ids = [], []
        for row in q:
            t0 = time.perf_counter()
            ids.append(idx.search(row[None, :], 100)[1][0])
            times.append(time.perf_counter() - t0)
        ids_arr = np.stack(ids)
        exact_ids = ids_arr if exact_ids is None else exact_ids
        stats = latency_stats_ms(times)
        exact_p50 = stats["p50_ms"] if exact_p50 is None else exact_p50
        rows.append(
            {
                "part": "ann",
                "index": kind,
                "catalogue": n,
                "recall@100": recall_at_k(ids_arr, exact_ids),
                "build_s": idx.build_seconds,
                "memory_mb": idx.nbytes() / 2**20,
                **stats,
                "speedup_vs_exact_p50": exact_p50 / stats["p50_ms"],
            }
        )
    return rows


def bench_request(n_requests: int) -> list[dict[str, object]]:
    torch.set_num_threads(1)
    w = VideoRecWorld(Scale.TINY, 0)
    log_df = w.log()
    cat = Catalogue(
        w.videos, make_encoder("hashing").encode(w.videos["title"].tolist()), list(CATEGORIES)
    )
    rec, _ = fit_recommender(cat, w.users, log_df, FitConfig(tower_epochs=3, ranker_trees=100))
    users = rng(0, "bench/video-rec/users").choice(len(w.users), n_requests)
    stages: dict[str, list[float]] = {
        "retrieval": [],
        "ranking": [],
        "reranking": [],
        "in_process_total": [],
        "http_total": [],
    }
    with tempfile.TemporaryDirectory() as tmp:
        save_recommender(Path(tmp) / "artifacts", rec, {})
        settings = Settings()
        app = create_app(settings, [make_served_system(Path(tmp), settings)])
        with background_server(app) as url, httpx.Client(base_url=url) as client:
            for u in users:
                t0 = time.perf_counter()
                r = rec.recommend_users(np.array([u]), 20)
                stages["in_process_total"].append(time.perf_counter() - t0)
                for s in ("retrieval", "ranking", "reranking"):
                    stages[s].append(r.timings_ms[s] / 1000.0)
                t0 = time.perf_counter()
                client.get(f"/v1/video-rec/users/{int(u)}/recommendations", params={"k": 20})
                stages["http_total"].append(time.perf_counter() - t0)
    rows: list[dict[str, object]] = [
        {"part": "request", "stage": s, **latency_stats_ms(v)} for s, v in stages.items()
    ]
    return rows


def run(quick: bool = False) -> BenchResult:
    n = 50_000 if quick else 300_000
    rows = bench_ann(n, 32, 100 if quick else 300)
    rows += bench_request(50 if quick else 300)
    by = {r.get("index"): r for r in rows if r["part"] == "ann"}
    req = {r.get("stage"): r for r in rows if r["part"] == "request"}
    summary = {
        "ivf_recall@100": by["ivf"]["recall@100"],
        "hnsw_recall@100": by["hnsw"]["recall@100"],
        "hnsw_speedup_vs_exact": by["hnsw"]["speedup_vs_exact_p50"],
        "request_p99_ms": req["in_process_total"]["p99_ms"],
        "http_over_in_process_p50": float(str(req["http_total"]["p50_ms"]))
        / float(str(req["in_process_total"]["p50_ms"])),
    }
    return BenchResult(
        name="video_rec",
        description="video-rec: FAISS exact vs IVF/HNSW; request stages, in-process vs HTTP",
        rows=rows,
        summary=summary,
        params={"catalogue": n, "dim": 32, "quick": quick},
    )
