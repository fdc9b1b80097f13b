"""Step 6a for visual search: the catalogue index (book ch. 2, "Serving", "Indexing pipeline").

Three measurements on the served encoder's catalogue embeddings:

* **exact vs approximate**: FAISS ``IndexFlatIP`` against IVF (several ``nprobe``) and HNSW
  (several ``ef_search``): recall@k of each approximate index against the exact top-k, build
  time, memory (serialised bytes) and mean query time, one query at a time as a server sends
  them. The served index is the fastest approximate one with recall@k >= ``MIN_ANN_RECALL``
  (exact search when none qualifies, or when the catalogue is too small for ANN to pay);
* **incremental indexing**: the index is built from part of the catalogue and the rest is added
  later (``VectorIndex.add``, no rebuild); the new images' products are then found as well as by
  a full rebuild;
* **near-duplicate removal**: re-uploads of catalogue images (JPEG re-encoded, shifted, a little
  brighter) are injected; pairs above a cosine threshold are detected and all but the first of
  each group dropped; precision and recall of the detection against the injected truth.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np

from mlsd.runner import RunContext
from mlsd.systems.visual_search.evaluation import K, RetrievalSet, retrieval_metrics
from mlsd.systems.visual_search.index import (
    IVF_TRAIN_PER_CELL,
    NLIST_MAX,
    VectorIndex,
    dedupe_mask,
    default_nlist,
    fingerprint,
    near_duplicate_pairs,
    recall_against,
    time_search,
)
from mlsd.systems.visual_search.model import ImageEncoder
from mlsd.systems.visual_search.streaming import exact_search
from mlsd.systems.visual_search.world import near_duplicate

log = logging.getLogger(__name__)

MIN_ANN_RECALL = 0.95
MIN_ANN_SIZE = 5_000  # below this exact search is fast enough; ANN is shown, not served
DUPLICATE_THRESHOLD = {"fingerprint": 0.93, "embedding": 0.97}
DUPLICATE_SHARE = 0.05
HNSW_MAX_SIZE = 200_000
SEARCH_PARAMS = ("nprobe", "ef_search")
LATENCY_QUERIES = 200
ANN_QUERIES = 2_000  # recall vs exact is measured on at most this many queries
NEAR_DUP_MAX = 20_000  # near-duplicate detection runs on the first this many catalogue images


def ann_configs(n: int) -> list[tuple[str, str, dict[str, Any]]]:
    """(label, kind, params) of the indexes compared for a catalogue of ``n`` vectors.

    HNSW is left out above ``HNSW_MAX_SIZE`` vectors: its graph build is the slowest of all on
    a CPU (IVF, trained on a sample, is what a large catalogue is served with here).
    """
    nlist = max(4, min(int(4 * np.sqrt(n)), n // 39 or 4, NLIST_MAX))
    out: list[tuple[str, str, dict[str, Any]]] = [("exact (Flat)", "flat", {})]
    for nprobe in (1, 4, 16):
        out.append((f"IVF{nlist}, nprobe={nprobe}", "ivf", {"nlist": nlist, "nprobe": nprobe}))
    if n <= HNSW_MAX_SIZE:
        for ef in (16, 64):
            out.append((f"HNSW32, efSearch={ef}", "hnsw", {"hnsw_m": 32, "ef_search": ef}))
    return out


def _set_search_params(index: VectorIndex, params: dict[str, Any]) -> None:
    raw: Any = index.index
    if index.kind == "ivf" and "nprobe" in params:
        raw.nprobe = min(int(params["nprobe"]), int(raw.nlist))
    elif index.kind == "hnsw" and "ef_search" in params:
        raw.hnsw.efSearch = int(params["ef_search"])


def compare_indexes(
    emb: np.ndarray, queries: np.ndarray, ids: np.ndarray, k: int, seed: int
) -> list[dict[str, Any]]:
    """Build every index of :func:`ann_configs` and measure it against exact search.

    Exact top-k is batched brute force over ``emb``; an index is built once per build
    configuration and searched at each of its search settings (``nprobe``, ``efSearch``); query
    time is one query at a time over the first ``LATENCY_QUERIES`` queries.
    """
    exact_top = ids[exact_search(emb, queries, k)[1]]
    rows: list[dict[str, Any]] = []
    built: tuple[tuple[str, str], VectorIndex, float, int] | None = None
    for label, kind, params in ann_configs(len(emb)):
        build_params = {p: v for p, v in params.items() if p not in SEARCH_PARAMS}
        key = (kind, repr(sorted(build_params.items())))
        if built is None or built[0] != key:
            built = None  # free the previous index first
            t0 = time.perf_counter()
            index = VectorIndex.build(kind, emb, ids, seed=seed, **build_params)
            built = (key, index, time.perf_counter() - t0, index.nbytes())
        _, index, build_s, nbytes = built
        _set_search_params(index, params)
        top = index.search(queries, k)[1]
        _, ms = time_search(index, queries[:LATENCY_QUERIES], k)
        rows.append({"index": label, "kind": kind, "params": params,
                     "recall_vs_exact": recall_against(top, exact_top), "build_s": build_s,
                     "bytes": nbytes, "query_ms": ms})  # fmt: skip
    return rows


def choose_index(rows: list[dict[str, Any]], n: int) -> dict[str, Any]:
    ok = [r for r in rows if r["kind"] != "flat" and r["recall_vs_exact"] >= MIN_ANN_RECALL]
    if n < MIN_ANN_SIZE or not ok:
        return rows[0]
    return min(ok, key=lambda r: r["query_ms"])


def step_index(ctx: RunContext) -> None:
    rs: RetrievalSet = ctx.state["retrieval"]
    name = ctx.metrics["chosen_model"]
    encoder: ImageEncoder = ctx.state["encoders"][name]
    emb_index, emb_query = ctx.state["embeddings"][name]
    seed = ctx.options.seed
    ctx.progress("exact vs approximate", 0, 3)
    sample = np.sort(np.random.default_rng(seed + 3).permutation(len(emb_query))[:ANN_QUERIES])
    rows = compare_indexes(emb_index, emb_query[sample], rs.index_ids, K, seed)
    chosen = choose_index(rows, len(emb_index))
    ctx.progress("incremental indexing", 1, 3)
    incremental = _incremental(emb_index, emb_query, rs, seed)
    ctx.progress("near-duplicates", 2, 3)
    dedup = _near_duplicates(encoder, rs, seed)
    ctx.state["served_index"] = chosen
    ctx.metrics["index"] = {"compared": rows, "served": chosen["index"],
                            "min_ann_recall": MIN_ANN_RECALL, "incremental": incremental,
                            "near_duplicates": dedup}  # fmt: skip

    bp = ctx.blueprint
    bp.section("Indexing: exact vs approximate nearest neighbours")
    bp.text(
        f"The {len(emb_index):,} catalogue embeddings of **{name}** ({encoder.dim} dims) in "
        f"FAISS. Recall@{K} is the share of the exact top-{K} that the approximate index "
        f"returns for {len(sample):,} queries (exact top-{K} by batched brute force); query "
        f"time is one query at a time over {min(LATENCY_QUERIES, len(sample))} of them. Build "
        "time includes IVF's k-means, trained on a seeded sample of at most "
        f"{IVF_TRAIN_PER_CELL} vectors per cell; memory is the serialised index."
        + ("" if len(emb_index) <= HNSW_MAX_SIZE else f" HNSW is not built above "
           f"{HNSW_MAX_SIZE:,} vectors (its graph build is the slowest on a CPU).")
    )  # fmt: skip
    bp.table(
        ["index", f"recall@{K} vs exact", "build s", "memory bytes", "query ms"],
        [[r["index"], r["recall_vs_exact"], r["build_s"], r["bytes"], r["query_ms"]]
         for r in rows],
        caption="The approximate-index trade-off: recall against speed and memory.",
    )  # fmt: skip
    why = (
        f"the catalogue has fewer than {MIN_ANN_SIZE:,} images, where exact search is fast "
        "enough and loses nothing"
        if len(emb_index) < MIN_ANN_SIZE
        else f"the fastest index with recall@{K} ≥ {MIN_ANN_RECALL}"
        if chosen["kind"] != "flat"
        else f"no approximate index reached recall@{K} ≥ {MIN_ANN_RECALL}"
    )
    bp.text(f"Served: **{chosen['index']}**, because {why}.")
    bp.section("Indexing pipeline: incremental adds and near-duplicates")
    inc = incremental
    bp.text(
        f"Incremental indexing: an index built from {inc['initial_images']:,} images, then "
        f"{inc['added_images']:,} new images added without a rebuild "
        f"({inc['add_ms_per_image']:.3f} ms per image). Queries for the new products: "
        f"mAP@{K} {inc['map_new_incremental']:.3f} incrementally vs "
        f"{inc['map_new_rebuilt']:.3f} after a full rebuild (IVF keeps its trained cells: "
        f"{inc['map_new_ivf_incremental']:.3f})."
    )
    d = dedup
    bp.text(
        f"Near-duplicate removal: {d['injected']:,} re-uploads (JPEG re-encoded, shifted a "
        f"pixel, brightened) injected among {d['catalog_images']:,} catalogue images; pairs "
        "above a cosine threshold are detected (FAISS range search) and all but the first "
        "image of each group dropped. The learned embedding is trained to be invariant to "
        "exactly such changes *and* to the change between two photos of one product, so it "
        "cannot tell a re-upload from a sibling photo; a pixel fingerprint (8×8 colour "
        "thumbnail, mean-centred) can, and is the one used."
    )
    bp.table(
        ["detector", "cosine threshold", "pairs found", "precision", "recall", "images dropped"],
        [[m, d[m]["threshold"], d[m]["pairs_found"], d[m]["precision"], d[m]["recall"],
          d[m]["removed"]] for m in ("fingerprint", "embedding")],
        caption="Detection against the injected re-uploads.",
    )  # fmt: skip


def _incremental(
    emb_index: np.ndarray, emb_query: np.ndarray, rs: RetrievalSet, seed: int
) -> dict[str, Any]:
    groups = np.unique(rs.index_groups)
    new_groups = np.random.default_rng(seed + 5).choice(groups, size=max(1, len(groups) // 5),
                                                        replace=False)  # fmt: skip
    is_new = np.isin(rs.index_groups, new_groups)
    ids = rs.index_ids
    q_new = np.isin(rs.query_groups, new_groups)
    sub = rs.with_queries(q_new)
    out: dict[str, Any] = {
        "initial_images": int((~is_new).sum()),
        "added_images": int(is_new.sum()),
    }
    for kind in ("flat", "ivf"):
        params = {"nlist": default_nlist(int((~is_new).sum()))} if kind == "ivf" else {}
        index = VectorIndex.build(kind, emb_index[~is_new], ids[~is_new], seed=seed, **params)
        t0 = time.perf_counter()
        index.add(emb_index[is_new], ids[is_new])
        add_ms = (time.perf_counter() - t0) * 1000.0 / max(int(is_new.sum()), 1)
        top = index.search(emb_query[q_new], K)[1]
        label = "map_new_incremental" if kind == "flat" else "map_new_ivf_incremental"
        out[label] = retrieval_metrics(top, sub)["map"]
        if kind == "flat":
            out["add_ms_per_image"] = add_ms
    rebuilt = ids[exact_search(emb_index, emb_query[q_new], K)[1]]  # = a rebuilt flat index
    out["map_new_rebuilt"] = retrieval_metrics(rebuilt, sub)["map"]
    return out


def _near_duplicates(encoder: ImageEncoder, rs: RetrievalSet, seed: int) -> dict[str, Any]:
    """Inject re-uploads, detect them with the fingerprint and with the learned embedding."""
    rng = np.random.default_rng(seed + 9)
    n = min(rs.n_index, NEAR_DUP_MAX)
    catalog = rs.index_source.take(np.arange(n))
    src = rng.choice(n, size=max(1, int(n * DUPLICATE_SHARE)), replace=False)
    dups = np.stack([near_duplicate(catalog[i], rng) for i in src])
    images = np.concatenate([catalog, dups])
    del catalog
    truth = {(int(s), n + j) for j, s in enumerate(src)}
    out: dict[str, Any] = {"catalog_images": n, "injected": len(src), "used": "fingerprint"}
    for method, emb in (
        ("fingerprint", fingerprint(images)),
        ("embedding", encoder.encode(images)),
    ):
        pairs = near_duplicate_pairs(emb, DUPLICATE_THRESHOLD[method])
        found = {(int(a), int(b)) for a, b in pairs}
        tp = len(found & truth)
        out[method] = {
            "threshold": DUPLICATE_THRESHOLD[method],
            "pairs_found": len(found),
            "precision": tp / len(found) if found else float("nan"),
            "recall": tp / len(truth),
            "removed": int((~dedupe_mask(len(images), pairs)).sum()),
        }
    return out
