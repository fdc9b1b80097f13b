"""Step 6 measured: ANN exact vs approximate, request latency by stage, a large catalogue, and the
batch (precomputed) mode's staleness vs latency trade-off (book ch. 6, "Serving")."""

from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np

from mlsd import metrics as mm
from mlsd.systems.video_rec.candidates import AnnIndex, ann_recall
from mlsd.systems.video_rec.features import Demographics, ranking_frame
from mlsd.systems.video_rec.pipeline import Recommender
from mlsd.systems.video_rec.rerank import rerank
from mlsd.training import torch_threads

log = logging.getLogger(__name__)


def compare_indexes(
    emb: np.ndarray,
    queries: np.ndarray,
    k: int,
    seed: int,
    kinds: tuple[str, ...] = ("exact", "ivf", "hnsw"),
) -> dict[str, Any]:
    """Build each index over ``emb``; recall@k against exact search, build time, memory, query."""
    out: dict[str, Any] = {}
    exact_ids = None
    for kind in kinds:
        idx = AnnIndex(kind).build(emb, seed=seed)
        times = []
        ids_all = []
        for q in queries:
            t0 = time.perf_counter()
            _, ids = idx.search(q[None, :], k)
            times.append((time.perf_counter() - t0) * 1000.0)
            ids_all.append(ids[0])
        ids_arr = np.stack(ids_all)
        if kind == "exact":
            exact_ids = ids_arr
        out[kind] = {
            "build_s": idx.build_seconds_,
            "memory_mb": idx.memory_bytes() / 2**20,
            "query_ms": mm.latency_summary(times),
            f"recall@{k}": ann_recall(ids_arr, exact_ids) if exact_ids is not None else None,
        }
    return out


def request_latency(rec: Recommender, users: np.ndarray, k: int = 20) -> dict[str, Any]:
    """One request per user, in-process: latency per stage and total (ms)."""
    stages: dict[str, list[float]] = {"retrieval": [], "ranking": [], "reranking": [], "total": []}
    for u in users:
        t0 = time.perf_counter()
        r = rec.recommend_users(np.array([u]), k)
        stages["total"].append((time.perf_counter() - t0) * 1000.0)
        for s in ("retrieval", "ranking", "reranking"):
            stages[s].append(r.timings_ms[s])
    return {s: mm.latency_summary(v) for s, v in stages.items()}


def large_catalogue(
    rec: Recommender, n_videos: int, n_requests: int, seed: int, n_candidates: int = 500
) -> dict[str, Any]:
    """p50/p99 of a request against a synthetic catalogue of ``n_videos`` random unit embeddings.

    Retrieval searches an IVF index over the synthetic embeddings with the real user tower's
    query; the ``n_candidates`` ids are mapped onto real videos (id mod catalogue size) so that
    ranking and re-ranking run the real feature pipeline and models on that many candidates.
    """
    rng = np.random.default_rng(seed)
    dim = rec.index.index_.d
    emb = rng.normal(size=(n_videos, dim)).astype(np.float32)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    idx = AnnIndex("ivf", nlist=min(1024, n_videos // 64), nprobe=8).build(emb, seed=seed)
    del emb
    n_real = len(rec.cat.videos)
    users = rng.choice(len(rec.users), n_requests + 1)  # the first one warms caches, untimed
    dem = {c: rec.users[c].to_numpy() for c in ("age_bucket", "country", "language", "signup_day")}
    assert rec.ranker is not None
    stages: dict[str, list[float]] = {"retrieval": [], "ranking": [], "reranking": [], "total": []}
    for i, u in enumerate(users):
        t0 = time.perf_counter()
        keys = np.array([u])
        demo = Demographics(*(dem[c][keys] for c in dem))
        with torch_threads(1):
            q = rec.tower.user_embeddings(rec.cat, rec._tower_inputs(rec.us, keys, demo, True))
        _, ids = idx.search(q, n_candidates)
        cand = np.unique(ids[0][ids[0] >= 0] % n_real)
        t1 = time.perf_counter()
        rows = Demographics(*(np.repeat(a, len(cand)) for a in vars(demo).values()))
        X = ranking_frame(rec.cat, rec.us, rec.vs, rows, np.repeat(keys, len(cand)), cand, rec.day)
        _, value = rec.ranker.predict(X)
        t2 = time.perf_counter()
        rerank(cand, value, rec.cat.category_idx[cand], rec.day - rec.cat.upload_day[cand], 20)
        t3 = time.perf_counter()
        if i == 0:
            continue
        for s, dt in (
            ("retrieval", t1 - t0),
            ("ranking", t2 - t1),
            ("reranking", t3 - t2),
            ("total", t3 - t0),
        ):
            stages[s].append(dt * 1000.0)
    return {
        "videos": n_videos,
        "candidates": n_candidates,
        "index": {
            "kind": "ivf",
            "nlist": idx.index_.nlist,
            "nprobe": idx.index_.nprobe,
            "build_s": idx.build_seconds_,
            "memory_mb": idx.memory_bytes() / 2**20,
        },
        "latency_ms": {s: mm.latency_summary(v) for s, v in stages.items()},
    }


def batch_precompute(rec: Recommender, users: np.ndarray, k: int = 20) -> dict[str, Any]:
    """Precompute every user's feed in batches; the lookup latency of a precomputed feed."""
    t0 = time.perf_counter()
    table: dict[int, np.ndarray] = {}
    for s in range(0, len(users), 256):
        chunk = users[s : s + 256]
        r = rec.recommend_users(chunk, k)
        table.update({int(u): ids for u, ids in zip(chunk, r.ids, strict=True)})
    seconds = time.perf_counter() - t0
    lookups = []
    for u in users[:2000]:
        t1 = time.perf_counter()
        _ = table[int(u)]
        lookups.append((time.perf_counter() - t1) * 1000.0)
    return {
        "users": len(users),
        "seconds": seconds,
        "table": table,
        "lookup_ms": mm.latency_summary(lookups),
    }
