"""Step 6a for visual search: the catalogue index (book ch. 2, "Serving", "Indexing pipeline").

Three measurements on the served encoder's catalogue embeddings:

* **exact vs approximate** (:func:`mlsd.index.compare_indexes` over
  :func:`mlsd.index.default_configs`): FAISS ``IndexFlatIP`` against IVF (several ``nprobe``),
  HNSW (several ``ef_search``) and, from 10,000 vectors, IVF-PQ: recall@k of each approximate
  index against the exact top-k, build time, memory (serialised bytes) and query time, one query
  at a time as a server sends them. The served index (:func:`choose_index`) is the fastest
  approximate one with recall@k >= ``MIN_ANN_RECALL`` (PQ too, but only when it qualifies);
  exact search when none qualifies, or when the catalogue is too small for ANN to pay;
* **incremental indexing**: the index is built from part of the catalogue and the rest is added
  later (``VectorIndex.add``, no rebuild); the new images' products are then found as well as by
  a full rebuild;
* **near-duplicate removal**: re-uploads of catalogue images (JPEG re-encoded, shifted, a little
  brighter) are injected; pairs above a cosine threshold are detected
  (:func:`~.features.near_duplicate_pairs`) and all but the first of each group dropped;
  precision and recall of the detection against the injected truth, for the pixel fingerprint
  and for the learned embedding.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from mlsd.index import (
    IVF_TRAIN_PER_CELL,
    IndexConfig,
    IndexTradeoff,
    VectorIndex,
    compare_indexes,
    default_configs,
    default_nlist,
    exact_top_k,
)
from mlsd.report import Blueprint
from mlsd.rng import rng
from mlsd.runner import ProgressFn
from mlsd.systems.visual_search.datasets_split import RetrievalSet
from mlsd.systems.visual_search.evaluation import K, retrieval_metrics
from mlsd.systems.visual_search.features import dedupe_mask, fingerprint, near_duplicate_pairs
from mlsd.systems.visual_search.model import ImageEncoder
from mlsd.systems.visual_search.world import near_duplicate

log = logging.getLogger(__name__)

MIN_ANN_RECALL = 0.95
MIN_ANN_SIZE = 5_000  # below this exact search is fast enough; ANN is shown, not served
DUPLICATE_THRESHOLD = {"fingerprint": 0.93, "embedding": 0.97}
DUPLICATE_SHARE = 0.05
HNSW_MAX_SIZE = 200_000
LATENCY_QUERIES = 200
ANN_QUERIES = 2_000  # recall vs exact is measured on at most this many queries
NEAR_DUP_MAX = 20_000  # near-duplicate detection runs on the first this many catalogue images


# ---- exact vs approximate ----------------------------------------------------------------------
def index_configs(n: int, dim: int) -> list[IndexConfig]:
    """The indexes compared for ``n`` vectors of ``dim`` dimensions (HNSW up to
    ``HNSW_MAX_SIZE`` vectors: its graph build is the slowest of all on a CPU)."""
    return default_configs(n, dim, hnsw_max_size=HNSW_MAX_SIZE)


def compare_catalogue_indexes(
    emb: np.ndarray, queries: np.ndarray, ids: np.ndarray, seed: int
) -> list[IndexTradeoff]:
    """Every index of :func:`index_configs` over ``emb``, measured against exact search."""
    configs = index_configs(len(emb), int(emb.shape[1]))
    return compare_indexes(
        emb, queries, K, configs, ids=ids, seed=seed, latency_queries=LATENCY_QUERIES
    )


def choose_index(rows: list[IndexTradeoff], n: int) -> IndexTradeoff:
    """The fastest approximate index with recall@k >= ``MIN_ANN_RECALL`` (IVF, HNSW or PQ
    alike: an index that misses the bar is never served); exact search when none reaches it or
    when the catalogue has fewer than ``MIN_ANN_SIZE`` images."""
    exact = next(r for r in rows if r.kind == "flat")
    ok = [r for r in rows if r.kind != "flat" and r.recall >= MIN_ANN_RECALL]
    if n < MIN_ANN_SIZE or not ok:
        return exact
    return min(ok, key=lambda r: r.query_ms)


# ---- incremental adds --------------------------------------------------------------------------
def incremental_indexing(
    emb_index: np.ndarray, emb_query: np.ndarray, rs: RetrievalSet, seed: int
) -> dict[str, Any]:
    """Index a fifth of the products later, by ``add``; compare their queries' mAP@k with a
    rebuilt index, for an exact and an IVF index."""
    groups = np.unique(rs.index_groups)
    n_new = max(1, len(groups) // 5)
    new_groups = rng(seed, "index/incremental-products").choice(groups, n_new, replace=False)
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
    rebuilt = ids[exact_top_k(emb_index, emb_query[q_new], K)[1]]  # = a rebuilt flat index
    out["map_new_rebuilt"] = retrieval_metrics(rebuilt, sub)["map"]
    return out


# ---- near-duplicates ---------------------------------------------------------------------------
def near_duplicates(encoder: ImageEncoder, rs: RetrievalSet, seed: int) -> dict[str, Any]:
    """Inject re-uploads, detect them with the fingerprint and with the learned embedding."""
    r = rng(seed, "index/near-duplicates")
    n = min(rs.n_index, NEAR_DUP_MAX)
    catalog = rs.index_source.take(np.arange(n))
    src = r.choice(n, size=max(1, int(n * DUPLICATE_SHARE)), replace=False)
    dups = np.stack([near_duplicate(catalog[i], r) for i in src])
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


# ---- step 6a ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class IndexResult:
    """Step 6a: the trade-off table, the served index, incremental adds, near-duplicates."""

    model: str
    dim: int
    n_index: int
    n_queries: int  # queries the recall against exact search is measured on
    compared: tuple[IndexTradeoff, ...]
    chosen: IndexTradeoff
    incremental: dict[str, Any]
    near_duplicates: dict[str, Any]

    def metrics(self) -> dict[str, Any]:
        return {
            "index": {
                "compared": [t.metrics() for t in self.compared],
                "served": self.chosen.label,
                "min_ann_recall": MIN_ANN_RECALL,
                "incremental": self.incremental,
                "near_duplicates": self.near_duplicates,
            }
        }


def compute_index(
    rs: RetrievalSet,
    model: str,
    encoder: ImageEncoder,
    embeddings: tuple[np.ndarray, np.ndarray],
    seed: int,
    progress: ProgressFn | None = None,
) -> IndexResult:
    """The three measurements of the module docstring on ``model``'s embeddings."""
    emb_index, emb_query = embeddings
    if progress is not None:
        progress("exact vs approximate", 0, 3)
    order = rng(seed, "index/ann-queries").permutation(len(emb_query))
    sample = np.sort(order[:ANN_QUERIES])
    rows = compare_catalogue_indexes(emb_index, emb_query[sample], rs.index_ids, seed)
    if progress is not None:
        progress("incremental indexing", 1, 3)
    incremental = incremental_indexing(emb_index, emb_query, rs, seed)
    if progress is not None:
        progress("near-duplicates", 2, 3)
    dedup = near_duplicates(encoder, rs, seed)
    return IndexResult(
        model=model,
        dim=encoder.dim,
        n_index=len(emb_index),
        n_queries=len(sample),
        compared=tuple(rows),
        chosen=choose_index(rows, len(emb_index)),
        incremental=incremental,
        near_duplicates=dedup,
    )


def report_index(bp: Blueprint, result: IndexResult) -> None:
    n, chosen = result.n_index, result.chosen
    bp.section("Indexing: exact vs approximate nearest neighbours")
    no_hnsw = (
        ""
        if n <= HNSW_MAX_SIZE
        else f" HNSW is not built above {HNSW_MAX_SIZE:,} vectors (its graph build is the "
        "slowest on a CPU)."
    )
    pq = (
        " IVF-PQ stores each vector as a few bytes of product-quantisation codes: the "
        "memory-lean choice, served only if its recall reaches the bar."
        if any(r.kind == "pq" for r in result.compared)
        else ""
    )
    bp.text(
        f"The {n:,} catalogue embeddings of **{result.model}** ({result.dim} dims) in "
        f"FAISS. Recall@{K} is the share of the exact top-{K} that the approximate index "
        f"returns for {result.n_queries:,} queries (exact top-{K} by batched brute force); query "
        f"time is one query at a time over {min(LATENCY_QUERIES, result.n_queries)} of them. "
        "Build time includes IVF's k-means, trained on a seeded sample of at most "
        f"{IVF_TRAIN_PER_CELL} vectors per cell; memory is the serialised index.{no_hnsw}{pq}"
    )
    bp.table(
        IndexTradeoff.HEADER,
        [r.row() for r in result.compared],
        caption="The approximate-index trade-off: recall against speed and memory.",
    )
    if n < MIN_ANN_SIZE:
        why = (
            f"the catalogue has fewer than {MIN_ANN_SIZE:,} images, where exact search is fast "
            "enough and loses nothing"
        )
    elif chosen.kind != "flat":
        why = f"the fastest index with recall@{K} ≥ {MIN_ANN_RECALL}"
    else:
        why = f"no approximate index reached recall@{K} ≥ {MIN_ANN_RECALL}"
    bp.text(f"Served: **{chosen.label}**, because {why}.")
    _report_pipeline(bp, result)


def _report_pipeline(bp: Blueprint, result: IndexResult) -> None:
    inc, d = result.incremental, result.near_duplicates
    bp.section("Indexing pipeline: incremental adds and near-duplicates")
    bp.text(
        f"Incremental indexing: an index built from {inc['initial_images']:,} images, then "
        f"{inc['added_images']:,} new images added without a rebuild "
        f"({inc['add_ms_per_image']:.3f} ms per image). Queries for the new products: "
        f"mAP@{K} {inc['map_new_incremental']:.3f} incrementally vs "
        f"{inc['map_new_rebuilt']:.3f} after a full rebuild (IVF keeps its trained cells: "
        f"{inc['map_new_ivf_incremental']:.3f})."
    )
    bp.text(
        f"Near-duplicate removal: {d['injected']:,} re-uploads (JPEG re-encoded, shifted a "
        f"pixel, brightened) injected among {d['catalog_images']:,} catalogue images; pairs "
        "above a cosine threshold are detected (FAISS range search) and all but the first "
        "image of each group dropped. The learned embedding is trained to be invariant to "
        "exactly such changes *and* to the change between two photos of one product, so it "
        "cannot tell a re-upload from a sibling photo; a pixel fingerprint (8×8 colour "
        "thumbnail, mean-centred) can, and is the one used."
    )
    methods = ("fingerprint", "embedding")
    bp.table(
        ["detector", "cosine threshold", "pairs found", "precision", "recall", "images dropped"],
        [
            [
                m,
                d[m]["threshold"],
                d[m]["pairs_found"],
                d[m]["precision"],
                d[m]["recall"],
                d[m]["removed"],
            ]
            for m in methods
        ],
        caption="Detection against the injected re-uploads.",
    )
