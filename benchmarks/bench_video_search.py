"""Video search (book ch. 4): a search's stages as the catalogue grows, against the 200 ms budget.

The tiny world's models are fitted once (hashing text encoder, dual encoder, LambdaRank
fusion); the catalogue is then tiled to each size (documents repeated with new ids, embeddings
with a little noise), BM25 is rebuilt over it and both vector indexes are exact (flat). Each
size answers the same queries in-process, one torch and one FAISS thread: p50/p99 of encode,
the text half, the visual half, fusion, re-ranking and the whole search.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from benchmarks import BenchResult, latency_stats_ms
from mlsd.index import faiss_threads
from mlsd.rng import rng
from mlsd.systems.video_search.features import documents
from mlsd.systems.video_search.model import TextSearch
from mlsd.systems.video_search.model_fit import fit_models
from mlsd.systems.video_search.serving import VideoSearcher
from mlsd.systems.video_search.system import FIT
from mlsd.systems.video_search.world import VideoSearchWorld
from mlsd.text import make_encoder
from mlsd.training import torch_threads
from mlsd.world import Scale

BUDGET_MS = 200.0
STAGES = ("encode", "text", "visual", "fusion", "rerank", "total")


def tiled(base: VideoSearcher, n: int, seed: int) -> VideoSearcher:
    reps = -(-n // len(base.videos))
    videos = pd.concat([base.videos] * reps, ignore_index=True).head(n)
    videos["video_id"] = np.arange(n)
    gen = rng(seed, "bench/video-search/tile")

    def noisy(x: np.ndarray) -> np.ndarray:
        y = np.tile(x, (reps, 1))[:n] + gen.normal(0, 0.02, (n, x.shape[1])).astype(np.float32)
        return (y / np.linalg.norm(y, axis=1, keepdims=True)).astype(np.float32)

    assert base.video_vectors is not None
    return VideoSearcher(
        videos,
        TextSearch().fit(documents(videos)),
        base.encoder,
        noisy(base.doc_vectors),
        base.dual,
        noisy(base.video_vectors),
        base.fusion,
        "fusion",
        base.day,
        base.depth,
    )


def run(quick: bool = False) -> BenchResult:
    sizes = (2_000, 20_000) if quick else (10_000, 100_000, 300_000)
    n_requests = 50 if quick else 300
    world = VideoSearchWorld(Scale.TINY, 0)
    cfg = world.config
    v = world.videos
    catalogue = v[v["upload_day"] < cfg.n_days].reset_index(drop=True)
    frames = world.frames(catalogue["video_id"].to_numpy())
    searches = world.queries(0, 400)
    clicks = pd.DataFrame(
        {"text": searches["text"], "row": rng(0, "bench").integers(0, len(catalogue), 400)}
    )
    fitted = fit_models(
        world, catalogue, frames, clicks, searches, make_encoder("hashing"), FIT[Scale.TINY], 0
    )
    queries = world.queries(cfg.n_days, n_requests, "bench")["text"].tolist()
    rows: list[dict[str, object]] = []
    for n in sizes:
        s = tiled(fitted.searcher, n, 0)
        stages: dict[str, list[float]] = {k: [] for k in STAGES}
        with torch_threads(1), faiss_threads(1):
            s.search(queries[0])
            for q in queries:
                t = s.search(q, k=20).timings_ms
                for k in STAGES:
                    stages[k].append(t[k] / 1000.0)
        row: dict[str, object] = {"videos": n}
        for k, secs in stages.items():
            st = latency_stats_ms(secs)
            row[f"{k}_p50_ms"] = round(st["p50_ms"], 3)
            row[f"{k}_p99_ms"] = round(st["p99_ms"], 3)
        rows.append(row)
    largest = rows[-1]
    return BenchResult(
        name="video_search",
        description=__doc__.split("\n")[0] if __doc__ else "video-search",
        rows=rows,
        summary={
            "largest_catalogue": largest["videos"],
            "total_p99_ms": largest["total_p99_ms"],
            "budget_ms": BUDGET_MS,
            "within_budget": float(str(largest["total_p99_ms"])) <= BUDGET_MS,
        },
        params={"requests": n_requests, "sizes": list(sizes), "index": "flat (exact)"},
    )
