"""Step 6b for visual search: the served search path, its artifacts and its latency (book ch. 2).

The served pipeline is the one ``POST /v1/visual-search/search`` runs: PNG bytes are decoded,
resized and embedded (the embedding service), then the index is searched (the nearest-neighbour
service). The step builds the chosen index over the served encoder's catalogue embeddings,
writes the serving artifacts, and measures latency in-process over fresh query photos sent as
PNG bytes, one at a time, split into the two halves so the blueprint shows where the budget
goes.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mlsd import metrics as mm
from mlsd.index import IndexTradeoff, VectorIndex, faiss_threads
from mlsd.report import Blueprint
from mlsd.systems.visual_search import REQUIREMENTS
from mlsd.systems.visual_search.datasets_split import RetrievalSet
from mlsd.systems.visual_search.evaluation import K
from mlsd.systems.visual_search.features import png_bytes
from mlsd.systems.visual_search.model import CNNEncoder, ImageEncoder
from mlsd.systems.visual_search.serving import VisualSearcher, save_serving_artifacts
from mlsd.training import torch_threads

log = logging.getLogger(__name__)

LATENCY_REQUESTS = {"tiny": 60, "small": 200, "medium": 300, "large": 300}
WARMUP = 5


def time_searcher(searcher: VisualSearcher, payloads: list[bytes]) -> dict[str, dict[str, float]]:
    """p50/p90/p99 of decode+embed, search and total, over ``payloads`` (after a warm-up)."""
    embed, search = [], []
    for i, data in enumerate(payloads):
        r = searcher.search_bytes(data, K)
        if i >= WARMUP:
            embed.append(r.embed_ms)
            search.append(r.search_ms)
    e, s = np.asarray(embed), np.asarray(search)
    return {
        "decode_embed": mm.latency_summary(e),
        "search": mm.latency_summary(s),
        "total": mm.latency_summary(e + s),
    }


def index_labels(rs: RetrievalSet, class_names: list[str] | None) -> dict[int, str]:
    """A readable label per catalogue image id: its class (files) or product (world)."""
    if class_names is not None:
        return {i: class_names[int(g)] for i, g in enumerate(rs.index_groups)}
    cats = rs.index_cats if rs.index_cats is not None else np.zeros(len(rs.index_groups), int)
    return {
        i: f"product-{int(g)}/category-{int(c)}"
        for i, (g, c) in enumerate(zip(rs.index_groups, cats, strict=True))
    }


@dataclass(frozen=True)
class ServingResult:
    """Step 6b: what is served and how fast it answers."""

    model: str
    index: str
    index_size: int
    latency_ms: dict[str, dict[str, float]]
    threads: int
    requests: int

    @property
    def meets_budget(self) -> bool:
        return bool(self.latency_ms["total"]["p99"] <= REQUIREMENTS.latency_budget_ms)

    def metrics(self) -> dict[str, Any]:
        return {
            "serving": {
                "model": self.model,
                "index": self.index,
                "index_size": self.index_size,
                "latency_ms": self.latency_ms,
                "latency_budget_ms": REQUIREMENTS.latency_budget_ms,
                "meets_budget": self.meets_budget,
                "threads": self.threads,
            }
        }


def compute_serving(
    artifacts_dir: Path,
    rs: RetrievalSet,
    model: str,
    encoder: ImageEncoder,
    catalogue: np.ndarray,
    chosen: IndexTradeoff,
    *,
    image_size: int,
    class_names: list[str] | None,
    threads: int,
    requests: int,
    seed: int,
) -> ServingResult:
    """Build the chosen index over ``catalogue`` (the served encoder's embeddings), write the
    serving artifacts, and time ``requests`` uploads of query photos on ``threads`` threads."""
    index = VectorIndex.build(chosen.kind, catalogue, rs.index_ids, seed=seed, **chosen.params)
    labels = index_labels(rs, class_names)
    save_serving_artifacts(artifacts_dir, encoder, model, index, image_size, labels)
    if isinstance(encoder, CNNEncoder):
        encoder.num_threads = threads
    searcher = VisualSearcher(encoder, index, model, image_size, labels)
    n = requests + WARMUP
    payloads = [png_bytes(rs.query_images[i % len(rs.query_images)]) for i in range(n)]
    with torch_threads(threads), faiss_threads(threads):
        latency = time_searcher(searcher, payloads)
    return ServingResult(model, chosen.label, len(index), latency, threads, requests)


def report_serving(bp: Blueprint, result: ServingResult) -> None:
    budget, lat = REQUIREMENTS.latency_budget_ms, result.latency_ms
    bp.section("Serving")
    bp.text(
        f"Served: **{result.model}** over **{result.index}** ({result.index_size:,} images). "
        f"Latency of {result.requests} uploads (PNG bytes of query photos, one at a time, "
        f"{result.threads} thread), split as the chapter's prediction pipeline is: decoding + "
        "embedding, then search."
    )
    bp.table(
        ["stage", "p50 ms", "p90 ms", "p99 ms", "mean ms"],
        [[stage, v["p50"], v["p90"], v["p99"], v["mean"]] for stage, v in lat.items()],
        caption=f"The budget is {budget:g} ms p99 for the whole request "
        f"({'met' if result.meets_budget else 'missed'} on this machine).",
    )
    bp.text(
        "`mlsd serve visual-search --run <this directory>` serves it: `POST "
        "/v1/visual-search/search?k=10` with the image as the raw body (`Content-Type: "
        "image/png` or `image/jpeg`) or as a multipart upload in field `image` returns the top-k "
        "image ids, scores (cosine similarity) and labels. Wrong content type → 415, empty or "
        "corrupt bytes → 400, a body over 8 MiB or an image over 4096 px a side → 413."
    )
