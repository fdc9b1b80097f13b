"""Step 6 for visual search: the served search path and its latency; then the run's summary.

The served pipeline is the one ``POST /v1/visual-search/search`` runs: PNG bytes are decoded,
resized and embedded (the embedding service), then the index is searched (the nearest-neighbour
service). Latency is measured in-process over fresh query photos sent as PNG bytes, one at a
time, and split into the two halves so the blueprint shows where the budget goes.
"""

from __future__ import annotations

import io
import logging
from typing import Any

import numpy as np
from PIL import Image

from mlsd import metrics as mm
from mlsd.runner import RunContext
from mlsd.systems.visual_search import REQUIREMENTS
from mlsd.systems.visual_search.evaluation import K, RetrievalSet
from mlsd.systems.visual_search.index import VectorIndex, faiss_threads
from mlsd.systems.visual_search.model import ImageEncoder
from mlsd.systems.visual_search.serving import VisualSearcher, save_serving_artifacts
from mlsd.training import torch_threads

log = logging.getLogger(__name__)

LATENCY_REQUESTS = {"tiny": 60, "small": 200, "medium": 300, "large": 300}
WARMUP = 5


def png_bytes(image: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG")
    return buf.getvalue()


def time_searcher(searcher: VisualSearcher, payloads: list[bytes]) -> dict[str, dict[str, float]]:
    """p50/p99 of decode+embed, search and total, over ``payloads`` (after a warm-up)."""
    embed, search = [], []
    for i, data in enumerate(payloads):
        r = searcher.search_bytes(data, K)
        if i >= WARMUP:
            embed.append(r.embed_ms)
            search.append(r.search_ms)
    e, s = np.asarray(embed), np.asarray(search)
    return {"decode_embed": mm.latency_summary(e), "search": mm.latency_summary(s),
            "total": mm.latency_summary(e + s)}  # fmt: skip


def step_serving(ctx: RunContext) -> None:
    rs: RetrievalSet = ctx.state["retrieval"]
    name = ctx.metrics["chosen_model"]
    encoder: ImageEncoder = ctx.state["encoders"][name]
    chosen = ctx.state["served_index"]
    emb_index = ctx.state["embeddings"][name][0]
    index = VectorIndex.build(chosen["kind"], emb_index, rs.index_ids, seed=ctx.options.seed,
                              **chosen["params"])  # fmt: skip
    labels = _labels(ctx, rs)
    size = int(ctx.state["image_size"])
    save_serving_artifacts(ctx.artifacts_dir, encoder, name, index, size, labels)
    threads = ctx.options.settings.torch_threads
    if hasattr(encoder, "num_threads"):
        encoder.num_threads = threads
    searcher = VisualSearcher(encoder, index, name, size, labels)
    n = LATENCY_REQUESTS[str(ctx.options.scale)] + WARMUP
    payloads = [png_bytes(rs.query_images[i % len(rs.query_images)]) for i in range(n)]
    with torch_threads(threads), faiss_threads(threads):
        lat = time_searcher(searcher, payloads)
    budget = REQUIREMENTS.latency_budget_ms
    ctx.metrics["serving"] = {
        "model": name, "index": chosen["index"], "index_size": len(index),
        "latency_ms": lat, "latency_budget_ms": budget,
        "meets_budget": bool(lat["total"]["p99"] <= budget), "threads": threads,
    }  # fmt: skip
    bp = ctx.blueprint
    bp.section("Serving")
    bp.text(
        f"Served: **{name}** over **{chosen['index']}** ({len(index):,} images). Latency of "
        f"{n - WARMUP} uploads (PNG bytes of query photos, one at a time, {threads} thread), "
        "split as the chapter's prediction pipeline is: decoding + embedding, then search."
    )
    bp.table(
        ["stage", "p50 ms", "p90 ms", "p99 ms", "mean ms"],
        [[stage, v["p50"], v["p90"], v["p99"], v["mean"]] for stage, v in lat.items()],
        caption=f"The budget is {budget:g} ms p99 for the whole request "
        f"({'met' if lat['total']['p99'] <= budget else 'missed'} on this machine).",
    )
    bp.text(
        "`mlsd serve visual-search --run <this directory>` serves it: `POST "
        "/v1/visual-search/search?k=10` with the image as the raw body (`Content-Type: "
        "image/png` or `image/jpeg`) or as a multipart upload in field `image` returns the top-k "
        "image ids, scores (cosine similarity) and labels. Wrong content type → 415, empty or "
        "corrupt bytes → 400, a body over 8 MiB or an image over 4096 px a side → 413."
    )


def _labels(ctx: RunContext, rs: RetrievalSet) -> dict[int, str]:
    """A readable label per catalogue image id: its product (world) or class (files)."""
    names: list[str] | None = ctx.state.get("class_names")
    if names is not None:
        return {i: names[int(g)] for i, g in enumerate(rs.index_groups)}
    cats = rs.index_cats if rs.index_cats is not None else np.zeros(len(rs.index_groups), int)
    return {i: f"product-{int(g)}/category-{int(c)}"
            for i, (g, c) in enumerate(zip(rs.index_groups, cats, strict=True))}  # fmt: skip


def step_summary(ctx: RunContext) -> None:
    mt: dict[str, Any] = ctx.metrics
    models = mt["models"]
    chosen, base = mt["chosen_model"], mt["best_baseline"]
    c_map, b_map = models["contrastive_cnn"]["map"], models[base]["map"]
    verdict = "beats every baseline" if c_map > b_map else "does NOT beat the best baseline"
    lines = [
        f"- The contrastive encoder {verdict}: mAP@{K} {c_map:.3f} vs {b_map:.3f} ({base}); "
        f"untrained CNN {models['untrained_cnn'].get('map', float('nan')):.3f}.",
        f"- Served: {chosen} over {mt['index']['served']}; p99 "
        f"{mt['serving']['latency_ms']['total']['p99']:.2f} ms "
        f"(embedding {mt['serving']['latency_ms']['decode_embed']['p99']:.2f} ms, search "
        f"{mt['serving']['latency_ms']['search']['p99']:.2f} ms) against a "
        f"{mt['serving']['latency_budget_ms']:g} ms budget.",
    ]
    ann = [r for r in mt["index"]["compared"] if r["kind"] != "flat"]
    if ann:
        best = max(ann, key=lambda r: r["recall_vs_exact"])
        lines.append(f"- Approximate search: {best['index']} keeps recall@{K} "
                     f"{best['recall_vs_exact']:.3f} of exact.")  # fmt: skip
    if mt.get("online"):
        lines.append(f"- A/B test: **{mt['online']['decision']}**: {mt['online']['reason']}")
    for s in mt.get("skipped", []):
        lines.append(f"- Skipped {s['step']}: {s['reason']}.")
    ctx.blueprint.section("What this run shows")
    ctx.blueprint.text("\n".join(lines))
