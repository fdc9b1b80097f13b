"""Indexing for visual search: FAISS exact and approximate indexes (book ch. 2, "Serving").

The chapter's serving path embeds the query and runs a nearest-neighbour search over the
catalogue's embeddings. Exact search (``IndexFlatIP``: inner product = cosine on normalised
vectors) is linear in the catalogue; approximate nearest neighbours trade a little recall for
much less work per query:

* IVF (inverted file, ``IndexIVFFlat``): k-means cells, search only the ``nprobe`` nearest;
* HNSW (``IndexHNSWFlat``): a navigable small-world graph, beam width ``ef_search``.

:class:`VectorIndex` pairs a FAISS index with the catalogue ids of its rows, supports
incremental adds (new images become searchable without a rebuild) and saves to a directory.
:func:`near_duplicate_pairs` / :func:`dedupe_mask` remove near-duplicates before indexing.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import cv2
import faiss
import numpy as np

log = logging.getLogger(__name__)

INDEX_FILE = "index.faiss"
IDS_FILE = "index_ids.npy"
META_FILE = "index.json"
IVF_TRAIN_PER_CELL = 64
NLIST_MAX = 1024


@contextmanager
def faiss_threads(n: int | None) -> Iterator[None]:
    """Use ``n`` OpenMP threads in FAISS inside the block; restore the previous count after."""
    if n is None:
        yield
        return
    previous = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(n)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(previous)


def _as_f32(x: np.ndarray) -> np.ndarray:
    arr = np.ascontiguousarray(x, dtype=np.float32)
    if arr.ndim != 2:
        raise ValueError(f"embeddings must be 2-D (N, D), got shape {arr.shape}")
    return arr


def default_nlist(n: int) -> int:
    """IVF cells for ``n`` vectors: about 4·sqrt(n), at least 39 vectors a cell, at most
    ``NLIST_MAX`` (more cells cost k-means training and assignment time for little gain)."""
    return max(1, min(int(4 * np.sqrt(n)), n // 39 or 1, NLIST_MAX))


def make_faiss_index(
    kind: str,
    train: np.ndarray,
    *,
    nlist: int | None = None,
    nprobe: int = 8,
    hnsw_m: int = 16,
    ef_search: int = 64,
    seed: int = 0,
    train_per_cell: int = IVF_TRAIN_PER_CELL,
) -> faiss.Index:
    """An empty (but trained, for IVF) FAISS inner-product index of ``kind`` flat/ivf/hnsw.

    IVF's k-means is trained on a seeded sample of at most ``train_per_cell`` vectors per cell
    (all of ``train`` when it is smaller), so training cost does not grow with the catalogue.
    """
    x = _as_f32(train)
    d = x.shape[1]
    if kind == "flat":
        return faiss.IndexFlatIP(d)
    if kind == "ivf":
        n_cells = nlist or default_nlist(len(x))
        quantizer = faiss.IndexFlatIP(d)
        index = faiss.IndexIVFFlat(quantizer, d, n_cells, faiss.METRIC_INNER_PRODUCT)
        index.cp.seed = seed
        index.cp.min_points_per_centroid = 1
        n_train = train_per_cell * n_cells
        if len(x) > n_train:
            rows = np.random.default_rng(seed).choice(len(x), size=n_train, replace=False)
            x = x[np.sort(rows)]
        index.cp.max_points_per_centroid = train_per_cell
        index.train(x)
        index.nprobe = min(nprobe, n_cells)
        return index
    if kind == "hnsw":
        hnsw = faiss.IndexHNSWFlat(d, hnsw_m, faiss.METRIC_INNER_PRODUCT)
        hnsw.hnsw.efConstruction = 40
        hnsw.hnsw.efSearch = ef_search
        return hnsw
    raise ValueError(f"unknown index kind {kind!r}; use flat, ivf or hnsw")


class VectorIndex:
    """A FAISS index and the catalogue id of each of its rows."""

    def __init__(self, index: faiss.Index, ids: np.ndarray, kind: str) -> None:
        if index.ntotal != len(ids):
            raise ValueError(f"index holds {index.ntotal} vectors but {len(ids)} ids were given")
        self.index = index
        self.ids = np.asarray(ids, dtype=np.int64)
        self.kind = kind

    @classmethod
    def build(
        cls, kind: str, embeddings: np.ndarray, ids: np.ndarray, **params: Any
    ) -> VectorIndex:
        x = _as_f32(embeddings)
        index = make_faiss_index(kind, x, **params)
        index.add(x)
        return cls(index, ids, kind)

    @property
    def dim(self) -> int:
        return int(self.index.d)

    def __len__(self) -> int:
        return int(self.index.ntotal)

    def add(self, embeddings: np.ndarray, ids: np.ndarray) -> None:
        """Incremental indexing: ``embeddings`` become searchable now (no rebuild; IVF keeps
        its cells, so a catalogue that drifts far from them should be re-trained)."""
        x = _as_f32(embeddings)
        if x.shape[1] != self.dim:
            raise ValueError(f"embeddings have {x.shape[1]} dims, the index {self.dim}")
        if len(x) != len(ids):
            raise ValueError(f"{len(x)} embeddings but {len(ids)} ids")
        self.index.add(x)
        self.ids = np.concatenate([self.ids, np.asarray(ids, dtype=np.int64)])

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """``(scores, ids)``, each ``(Q, k)``, best first; missing neighbours have id -1."""
        q = _as_f32(queries)
        if q.shape[1] != self.dim:
            raise ValueError(f"queries have {q.shape[1]} dims, the index {self.dim}")
        k = min(k, len(self))
        scores, pos = self.index.search(q, k)
        ids = np.where(pos >= 0, self.ids[np.maximum(pos, 0)], -1)
        return scores, ids

    def nbytes(self) -> int:
        """Serialised size of the FAISS index in bytes (its memory footprint, roughly)."""
        return len(faiss.serialize_index(self.index))

    def save(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        tmp = directory / (INDEX_FILE + ".tmp")
        faiss.write_index(self.index, str(tmp))
        tmp.replace(directory / INDEX_FILE)
        with (directory / (IDS_FILE + ".tmp")).open("wb") as fh:
            np.save(fh, self.ids)
        (directory / (IDS_FILE + ".tmp")).replace(directory / IDS_FILE)
        meta = {"kind": self.kind, "dim": self.dim, "size": len(self)}
        (directory / META_FILE).write_text(json.dumps(meta))

    @classmethod
    def load(cls, directory: Path) -> VectorIndex:
        meta = json.loads((directory / META_FILE).read_text())
        index = faiss.read_index(str(directory / INDEX_FILE))
        ids = np.load(directory / IDS_FILE)
        return cls(index, ids, str(meta["kind"]))


def recall_against(approx_ids: np.ndarray, exact_ids: np.ndarray) -> float:
    """Mean share of the exact top-k found by the approximate top-k (ANN recall@k)."""
    if approx_ids.shape != exact_ids.shape:
        raise ValueError(f"shapes differ: {approx_ids.shape} vs {exact_ids.shape}")
    k = exact_ids.shape[1]
    hits = [
        len(set(a.tolist()) & set(e.tolist())) for a, e in zip(approx_ids, exact_ids, strict=True)
    ]
    return float(np.mean(hits) / k)


def time_search(index: VectorIndex, queries: np.ndarray, k: int) -> tuple[np.ndarray, float]:
    """Search one query at a time (as a server does); return the ids and mean ms per query."""
    out = np.empty((len(queries), min(k, len(index))), dtype=np.int64)
    if len(queries):
        index.search(queries[:1], k)  # warm-up
    t0 = time.perf_counter()
    for i in range(len(queries)):
        out[i] = index.search(queries[i : i + 1], k)[1][0]
    return out, (time.perf_counter() - t0) * 1000.0 / max(len(queries), 1)


def near_duplicate_pairs(embeddings: np.ndarray, threshold: float) -> np.ndarray:
    """Pairs ``(i, j)``, ``i < j``, whose cosine similarity is at least ``threshold``."""
    x = _as_f32(embeddings)
    index = faiss.IndexFlatIP(x.shape[1])
    index.add(x)
    lims, _, nbrs = index.range_search(x, float(threshold))
    rows = np.repeat(np.arange(len(x)), np.diff(np.asarray(lims, dtype=np.int64)).astype(np.int64))
    keep = rows < nbrs
    return np.stack([rows[keep], nbrs[keep]], 1).astype(np.int64)


def fingerprint(images: np.ndarray, side: int = 8) -> np.ndarray:
    """A near-duplicate fingerprint: the ``side``×``side`` colour thumbnail, mean-centred and
    L2-normalised (robust to re-encoding, a pixel of shift and brightness changes)."""
    thumbs = (
        np.stack([cv2.resize(im, (side, side), interpolation=cv2.INTER_AREA) for im in images])
        .reshape(len(images), -1)
        .astype(np.float32)
    )
    thumbs -= thumbs.mean(axis=1, keepdims=True)
    norms = np.linalg.norm(thumbs, axis=1, keepdims=True)
    return np.ascontiguousarray(thumbs / np.maximum(norms, 1e-6), dtype=np.float32)


def dedupe_mask(n: int, pairs: np.ndarray) -> np.ndarray:
    """Keep the first image of every near-duplicate group (greedy, in index order)."""
    keep = np.ones(n, dtype=bool)
    for i, j in sorted((int(a), int(b)) for a, b in pairs):
        if keep[i]:
            keep[j] = False
    return keep
