"""Step 6 for similar listings, measured: the index per region and the served path's latency.

Builds the served artifacts (:func:`.serving.save_serving_artifacts`) for the chosen model's
vectors, compares exact search with an approximate index (HNSW) on the regions (recall@k
against exact, build time, memory, query time), loads the scorer back from the folder exactly
as ``mlsd serve`` does, and times single requests through it (lookup, search, re-rank).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mlsd.index import VectorIndex, exact_top_k, faiss_threads, recall_at_k
from mlsd.metrics import latency_summary
from mlsd.report import Blueprint
from mlsd.rng import rng
from mlsd.systems.similar_listings.serving import (
    ListingVectors,
    build_indexes,
    load_similar,
    save_serving_artifacts,
)

K = 10
LATENCY_REQUESTS = 500
HNSW_MIN_REGION = 256  # below this a region is served by exact search


@dataclass(frozen=True)
class ServingResult:
    model: str
    index_kind: str
    comparison: list[dict[str, Any]]
    latency_ms: dict[str, dict[str, float]]
    listings: int
    regions: int
    blocked_nights: int = 0

    def metrics(self) -> dict[str, Any]:
        return {
            "serving": {
                "model": self.model,
                "index_kind": self.index_kind,
                "index_comparison": self.comparison,
                "latency_ms": self.latency_ms,
                "listings": self.listings,
                "regions": self.regions,
                "calendar_blocked_nights": self.blocked_nights,
            }
        }


def _compare(
    vectors: np.ndarray, queries: np.ndarray, region: np.ndarray, seed: int
) -> list[dict[str, Any]]:
    """Exact vs HNSW over the regions: recall@K of HNSW against exact, build s, bytes, query
    ms (200 queries a region at most)."""
    ids = np.arange(len(vectors))
    out = []
    for kind in ("flat", "hnsw"):
        build = size = 0.0
        times: list[float] = []
        recalls: list[float] = []
        for g in np.unique(region):
            rows = np.flatnonzero(region == g)
            idx = VectorIndex.build(kind, vectors[rows], ids[rows])
            build += idx.build_seconds
            size += idx.nbytes()
            q = rng(seed, f"similar-listings/serving/queries/{g}").choice(
                rows, min(200, len(rows)), replace=False
            )
            t0 = time.perf_counter()
            _, found = idx.search(queries[q], K + 1)
            times.append((time.perf_counter() - t0) * 1e3 / len(q))
            exact = rows[exact_top_k(vectors[rows], queries[q], K + 1)[1]]
            recalls.append(recall_at_k(found, exact))
        out.append(
            {
                "kind": kind,
                f"recall@{K}": float(np.mean(recalls)),
                "build_seconds": round(build, 4),
                "bytes": int(size),
                "query_ms": float(np.mean(times)),
            }
        )
    return out


def compute_serving(
    artifacts_dir: Path,
    model_name: str,
    vectors: np.ndarray,
    listings: pd.DataFrame,
    seed: int,
    requests: int = LATENCY_REQUESTS,
    calendar: pd.DataFrame | None = None,
    query_vectors: np.ndarray | None = None,
) -> ServingResult:
    """Write the artifacts (HNSW for regions of at least ``HNSW_MIN_REGION`` listings, exact
    below), load them back and time ``requests`` single requests."""
    region = listings["region"].to_numpy()
    ids = listings["listing_id"].to_numpy(np.int64)
    with faiss_threads(1):
        queries = vectors if query_vectors is None else query_vectors
        comparison = _compare(vectors, queries, region, seed)
        big = np.bincount(region).max() >= HNSW_MIN_REGION
        indexes = build_indexes(vectors, ids, region, "hnsw" if big else "flat")
        save_serving_artifacts(
            artifacts_dir,
            ListingVectors(ids, vectors, model_name, query_vectors),
            listings,
            indexes,
            calendar,
        )
        scorer = load_similar(artifacts_dir)
        queries = rng(seed, "similar-listings/serving/requests").choice(ids, requests)
        parts: dict[str, list[float]] = {"lookup": [], "search": [], "rerank": [], "total": []}
        for q in queries:
            t0 = time.perf_counter()
            res = scorer.similar([int(q)], K)
            parts["total"].append((time.perf_counter() - t0) * 1e3)
            parts["lookup"].append(res.lookup_ms)
            parts["search"].append(res.search_ms)
            parts["rerank"].append(res.rerank_ms)
    latency = {k: latency_summary(v) for k, v in parts.items()}
    return ServingResult(
        model_name,
        scorer.index_kind,
        comparison,
        latency,
        len(ids),
        len(indexes),
        scorer.availability.blocked_nights,
    )


def report_serving(bp: Blueprint, result: ServingResult, budget_ms: float) -> None:
    bp.section("Serving")
    bp.text(
        f"Served: **{result.model}**'s vectors, one index per region ({result.regions} regions, "
        f"{result.listings:,} listings; {result.index_kind} where a region holds at least "
        f"{HNSW_MIN_REGION} listings). A request looks the listing up, searches its region for "
        f"{K} × 4 neighbours and re-ranks: drops the listing itself and what fails the user's "
        "filters (price, capacity, type) and every listing not available for all nights of "
        f"the requested stay ({result.blocked_nights:,} blocked nights in the calendar), "
        "widening the search until k listings pass."
    )
    bp.table(
        ["index", f"recall@{K} vs exact", "build s (all regions)", "bytes", "ms / query"],
        [
            [c["kind"], c[f"recall@{K}"], c["build_seconds"], c["bytes"], c["query_ms"]]
            for c in result.comparison
        ],
    )
    lat = result.latency_ms
    bp.table(
        ["part", "p50 ms", "p99 ms"],
        [[k, v["p50"], v["p99"]] for k, v in lat.items()],
        caption=f"{int(lat['total']['n'])} single requests through the loaded scorer; budget "
        f"{budget_ms:g} ms p99.",
    )
