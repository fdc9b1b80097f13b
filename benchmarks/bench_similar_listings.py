"""Similar listings: exact vs HNSW search per region, and in-process vs HTTP carousels.

Book ch. 9 ("Serving"): the carousel looks the viewed listing up, searches its region's index
and re-ranks by the guest's filters (availability included). This benchmark measures, on the
vectors of a skip-gram trained for one epoch on a few days of the world (the index does not
care how good the embedding is, only how it is distributed; the vectors are the served
asymmetric ones: the query is the listing's centre vector, the index holds context vectors
and the output bias):

(a) per region, FAISS exact inner product against HNSW: recall@10 against exact, build time,
    bytes and per-query latency (one query at a time), ratios against exact;
(b) one carousel end to end, :meth:`SimilarListings.similar` in-process against
    ``GET /v1/similar-listings/listings/{id}/similar`` on a live uvicorn (paired, one after
    the other), without and with a stay (the availability filter widens the search), ratios
    against the in-process call without filters.
"""

from __future__ import annotations

import logging
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd

from benchmarks import BenchResult, latency_stats_ms
from mlsd.api.main import background_server, create_app
from mlsd.api.routes.similar_listings import make_served_system
from mlsd.index import VectorIndex, faiss_threads, recall_at_k
from mlsd.rng import rng
from mlsd.settings import Settings
from mlsd.systems.similar_listings.features import sessions_from_log
from mlsd.systems.similar_listings.model_skipgram import SkipGramEmbeddings
from mlsd.systems.similar_listings.serving import (
    Filters,
    ListingVectors,
    build_indexes,
    load_similar,
    save_serving_artifacts,
)
from mlsd.systems.similar_listings.serving_availability import Stay, simulated_calendar
from mlsd.systems.similar_listings.world import SimilarListingsConfig, SimilarListingsWorld
from mlsd.training import torch_threads
from mlsd.world import Scale

log = logging.getLogger(__name__)

K = 10
WARMUP = 5
NIGHTS = 60


def catalogue(quick: bool) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """The listings of a few simulated days and the served vectors (item, query)."""
    cfg = SimilarListingsConfig.for_scale(Scale.SMALL).with_(
        n_days=2,
        sessions_per_day=500 if quick else 2_000,
        listings_per_region=300 if quick else 1_500,
        n_regions=4,
    )
    world = SimilarListingsWorld(Scale.SMALL, 0, cfg)
    sessions = sessions_from_log(pd.concat(list(world.iter_log()), ignore_index=True))
    listings = world.listings.drop(columns=["quality"]).reset_index(drop=True)
    listings.insert(0, "listing_id", np.arange(len(listings), dtype=np.int64))
    model = SkipGramEmbeddings(
        dim=16,
        window=2,
        negatives=0,
        region_negatives=10,
        booked_global=True,
        scoring="dot",
        output_bias=True,
        epochs=1,
    ).fit(sessions, listings)
    return listings, model.vectors(), model.query_vectors()


def bench_indexes(
    vectors: np.ndarray, queries: np.ndarray, region: np.ndarray, n_queries: int
) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    exact: dict[int, np.ndarray] = {}
    for kind in ("flat", "hnsw"):
        build_s, size = 0.0, 0
        times: list[float] = []
        tops, refs = [], []
        for g in np.unique(region):
            members = np.flatnonzero(region == g)
            t0 = time.perf_counter()
            index = VectorIndex.build(kind, vectors[members], members)
            build_s += time.perf_counter() - t0
            size += index.nbytes()
            q = rng(0, f"bench/similar-listings/queries/{g}").choice(members, n_queries)
            top = []
            for i in q:
                t1 = time.perf_counter()
                top.append(index.search(queries[i : i + 1], K)[1][0])
                times.append(time.perf_counter() - t1)
            got = np.stack(top)
            exact.setdefault(int(g), got)
            tops.append(got)
            refs.append(exact[int(g)])
        rows.append(
            {
                "case": f"index: {kind}",
                "recall_at_10_vs_exact": recall_at_k(np.concatenate(tops), np.concatenate(refs)),
                "build_s": build_s,
                "bytes": size,
                **latency_stats_ms(times),
            }
        )
    exact_p50 = float(rows[0]["p50_ms"])
    for r in rows:
        r["speedup_p50_vs_exact"] = exact_p50 / max(float(r["p50_ms"]), 1e-9)
    return rows


def bench_http(
    root: Path, listings: pd.DataFrame, vectors: np.ndarray, queries: np.ndarray, n: int
) -> dict[str, dict[str, float]]:
    ids = listings["listing_id"].to_numpy(np.int64)
    region = listings["region"].to_numpy()
    indexes = build_indexes(vectors, ids, region, "hnsw")
    calendar = simulated_calendar(ids, 0, NIGHTS, seed=0)
    save_serving_artifacts(
        root / "artifacts",
        ListingVectors(ids, vectors, "skipgram", queries),
        listings,
        indexes,
        calendar,
    )
    (root / "metrics.json").write_text("{}")
    settings = Settings()
    scorer = load_similar(root / "artifacts")
    r = rng(0, "bench/similar-listings/requests")
    asked = r.choice(ids, n)
    stays = r.integers(0, NIGHTS - 7, n)
    timings: dict[str, list[float]] = {
        k: [] for k in ("in_process", "in_process_stay", "http", "http_stay")
    }
    app = create_app(settings, [make_served_system(root, settings)])
    with background_server(app) as url, httpx.Client(base_url=url, timeout=30.0) as client:
        for i, (lid, night) in enumerate(zip(asked, stays, strict=True)):
            stay = {"check_in": int(night), "check_out": int(night) + 3}
            path = f"/v1/similar-listings/listings/{int(lid)}/similar"
            t0 = time.perf_counter()
            scorer.similar([int(lid)], K)
            t1 = time.perf_counter()
            scorer.similar([int(lid)], K, Filters(stay=Stay(**stay)))
            t2 = time.perf_counter()
            client.get(path, params={"k": K}).raise_for_status()
            t3 = time.perf_counter()
            client.get(path, params={"k": K} | stay).raise_for_status()
            t4 = time.perf_counter()
            if i >= WARMUP:
                for key, dt in zip(timings, (t1 - t0, t2 - t1, t3 - t2, t4 - t3), strict=True):
                    timings[key].append(dt)
    return {k: latency_stats_ms(v) for k, v in timings.items()}


def run(quick: bool = False) -> BenchResult:
    t0 = time.perf_counter()
    with torch_threads(1), faiss_threads(1):
        listings, vectors, queries = catalogue(quick)
        setup_s = time.perf_counter() - t0
        region = listings["region"].to_numpy()
        rows = bench_indexes(vectors, queries, region, 50 if quick else 300)
        with tempfile.TemporaryDirectory(prefix="mlsd-bench-sl-") as tmp:
            lat = bench_http(Path(tmp), listings, vectors, queries, 60 if quick else 400)
    base = lat["in_process"]["p50_ms"]
    for stage, stats in lat.items():
        rows.append(
            {"case": f"carousel: {stage}", **stats, "p50_vs_in_process": stats["p50_ms"] / base}
        )
    summary = {
        "listings": len(listings),
        "regions": len(np.unique(region)),
        "hnsw_recall_at_10": rows[1]["recall_at_10_vs_exact"],
        "hnsw_speedup_p50_vs_exact": rows[1]["speedup_p50_vs_exact"],
        "http_over_in_process_p50": lat["http"]["p50_ms"] / base,
        "stay_filter_over_no_filter_p50": lat["in_process_stay"]["p50_ms"] / base,
        "http_p99_ms": lat["http"]["p99_ms"],
        "http_stay_p99_ms": lat["http_stay"]["p99_ms"],
    }
    params = {
        "quick": quick,
        "k": K,
        "dim": int(vectors.shape[1]),
        "threads": 1,
        "setup_s": round(setup_s, 2),
        "vectors": "skip-gram, 1 epoch on 2 days, dot score (context + bias; centre + 1)",
        "stay": "3 nights on a simulated calendar (Beta(2, 3) occupancy)",
    }
    return BenchResult(
        name="similar_listings",
        description=f"similar listings over {len(listings):,} listings: exact vs HNSW per "
        "region, in-process vs HTTP, with and without the availability filter",
        rows=rows,
        summary=summary,
        params=params,
    )
