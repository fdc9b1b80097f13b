"""Visual search: exact vs approximate FAISS search, and in-process vs HTTP image search.

Book ch. 2 ("Serving"): the nearest-neighbour service must search millions of embeddings within
the latency budget, which is what approximate indexes are for, and the prediction pipeline
decodes and embeds an uploaded image before it searches. This benchmark measures, on
embeddings of procedurally rendered product photos (the visual-search world, untrained CNN
encoder: the index does not care how good the embedding is, only how it is distributed):

(a) FAISS ``IndexFlatIP`` (exact) against IVF and HNSW: recall@10 against exact, build time,
    serialised bytes and per-query latency (one query at a time), ratios against exact;
(b) one upload end to end, ``VisualSearcher.search_bytes`` in-process against
    ``POST /v1/visual-search/search`` on a live uvicorn (paired, one after the other), with
    the in-process time split into decode + embed and search.
"""

from __future__ import annotations

import logging
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from benchmarks import BenchResult, latency_stats_ms
from mlsd.api.main import background_server, create_app
from mlsd.api.routes.visual_search import make_served_system
from mlsd.index import VectorIndex, faiss_threads, recall_at_k
from mlsd.settings import Settings
from mlsd.systems.visual_search.features import png_bytes
from mlsd.systems.visual_search.model import CNNEncoder
from mlsd.systems.visual_search.serving import load_searcher, save_serving_artifacts
from mlsd.systems.visual_search.serving_index import index_configs
from mlsd.systems.visual_search.world import VisualSearchWorld, VisualWorldConfig
from mlsd.training import torch_threads
from mlsd.world import Scale

log = logging.getLogger(__name__)

K = 10
MIN_RECALL = 0.95
WARMUP = 5


def catalogue(quick: bool) -> tuple[np.ndarray, np.ndarray, CNNEncoder]:
    """Rendered catalogue photos and query photos, and an (untrained) encoder."""
    n_products = 400 if quick else 2_000
    cfg = VisualWorldConfig.for_scale(Scale.TINY).with_(
        n_train_products=10, n_eval_products=n_products, photos_per_product=5
    )
    world = VisualSearchWorld(Scale.TINY, 0, cfg)
    pids, idx = world.catalog("eval")
    images = world.photos(pids, idx)
    step = 5 * (2 if quick else 10)
    queries = world.photos(pids[::step], idx[::step] + 50)
    encoder = CNNEncoder(dim=64, train_steps=0).fit(images[:10], pids[:10])
    return images, queries, encoder


def bench_indexes(emb: np.ndarray, q: np.ndarray) -> list[dict[str, Any]]:
    ids = np.arange(len(emb))
    rows: list[dict[str, Any]] = []
    exact_top: np.ndarray | None = None
    for cfg in index_configs(len(emb), int(emb.shape[1])):
        t0 = time.perf_counter()
        index = VectorIndex.build(cfg.kind, emb, ids, **cfg.params)
        build_s = time.perf_counter() - t0
        times, tops = [], []
        for i in range(len(q)):
            t1 = time.perf_counter()
            tops.append(index.search(q[i : i + 1], K)[1][0])
            times.append(time.perf_counter() - t1)
        top = np.stack(tops)
        exact_top = top if exact_top is None else exact_top
        rows.append(
            {
                "index": cfg.label,
                "recall_at_10_vs_exact": recall_at_k(top, exact_top),
                "build_s": build_s,
                "bytes": index.nbytes(),
                **latency_stats_ms(times),
            }
        )
    exact_p50 = float(rows[0]["p50_ms"])
    for r in rows:
        r["speedup_p50_vs_exact"] = exact_p50 / max(float(r["p50_ms"]), 1e-9)
    return rows


def bench_http(
    root: Path, images: np.ndarray, queries: np.ndarray, encoder: CNNEncoder, emb: np.ndarray
) -> dict[str, dict[str, float]]:
    index = VectorIndex.build("flat", emb, np.arange(len(emb)))
    save_serving_artifacts(root / "artifacts", encoder, "untrained_cnn", index, 32)
    (root / "metrics.json").write_text("{}")
    settings = Settings()
    searcher = load_searcher(root / "artifacts")
    payloads = [png_bytes(im) for im in queries]
    embed, search, local, remote = [], [], [], []
    app = create_app(settings, [make_served_system(root, settings)])
    with background_server(app) as url, httpx.Client(base_url=url, timeout=30.0) as client:
        for i, data in enumerate(payloads):
            t0 = time.perf_counter()
            r = searcher.search_bytes(data, K)
            t1 = time.perf_counter()
            resp = client.post(
                "/v1/visual-search/search", content=data, headers={"content-type": "image/png"}
            )
            t2 = time.perf_counter()
            resp.raise_for_status()
            if i >= WARMUP:
                embed.append(r.embed_ms / 1000.0)
                search.append(r.search_ms / 1000.0)
                local.append(t1 - t0)
                remote.append(t2 - t1)
    return {
        "decode_embed": latency_stats_ms(embed),
        "search": latency_stats_ms(search),
        "in_process": latency_stats_ms(local),
        "http": latency_stats_ms(remote),
    }


def run(quick: bool = False) -> BenchResult:
    t0 = time.perf_counter()
    images, queries, encoder = catalogue(quick)
    with torch_threads(1), faiss_threads(1):
        emb = encoder.encode(images)
        q = encoder.encode(queries)
        setup_s = time.perf_counter() - t0
        rows = bench_indexes(emb, q)
        with tempfile.TemporaryDirectory(prefix="mlsd-bench-vs-") as tmp:
            lat = bench_http(Path(tmp), images, queries, encoder, emb)
    for stage, stats in lat.items():
        rows.append({"index": f"upload: {stage}", **stats})
    ann = rows[1 : len(index_configs(len(emb), int(emb.shape[1])))]
    good = [r for r in ann if r["recall_at_10_vs_exact"] >= MIN_RECALL] or ann
    best_ann = max(good, key=lambda r: r["speedup_p50_vs_exact"])
    summary = {
        "catalogue_images": len(emb),
        "exact_query_p50_ms": rows[0]["p50_ms"],
        "fastest_ann_with_recall_0.95": best_ann["index"],
        "fastest_ann_speedup_p50": best_ann["speedup_p50_vs_exact"],
        "fastest_ann_recall_at_10": best_ann["recall_at_10_vs_exact"],
        "upload_decode_embed_p99_ms": lat["decode_embed"]["p99_ms"],
        "upload_search_p99_ms": lat["search"]["p99_ms"],
        "http_over_in_process_p50": lat["http"]["p50_ms"] / lat["in_process"]["p50_ms"],
        "http_p99_ms": lat["http"]["p99_ms"],
    }
    params = {
        "quick": quick,
        "queries": len(q),
        "k": K,
        "dim": int(emb.shape[1]),
        "threads": 1,
        "setup_s": round(setup_s, 2),
        "encoder": "untrained CNN (width 16, 64 dims), 32x32 photos",
    }
    return BenchResult(
        name="visual_search",
        description=f"visual search over {len(emb):,} images: exact vs ANN, in-process vs HTTP",
        rows=rows,
        summary=summary,
        params=params,
    )
