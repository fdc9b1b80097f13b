"""Nearest-neighbour indexes for every system that retrieves by embedding (book ch. 2, 6, 9...).

The serving path of a retrieval system embeds the query and searches the catalogue's embeddings.
Exact search (``IndexFlatIP``: inner product, i.e. cosine on normalised vectors) is linear in the
catalogue; approximate nearest neighbours (ANN) trade a little recall for much less work:

* ``ivf`` (inverted file, ``IndexIVFFlat``): k-means cells, search only the ``nprobe`` nearest;
* ``hnsw`` (``IndexHNSWFlat``): a navigable small-world graph, beam width ``ef_search``;
* ``pq`` (``IndexIVFPQ``): IVF cells whose vectors are product-quantised to ``pq_m`` bytes each,
  the memory-lean choice for catalogues that do not fit in RAM as floats.

:class:`VectorIndex` pairs a FAISS index with the catalogue ids of its rows, supports incremental
adds (new items become searchable without a rebuild), and saves to a directory in FAISS's own
format (no pickle). :func:`compare_indexes` measures the chapter's trade-off: recall@k against
exact search, build time, memory and query time, one query at a time as a server sends them.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from mlsd.artifacts import atomic_path, write_json, write_npy
from mlsd.rng import rng

log = logging.getLogger(__name__)

KINDS = ("flat", "ivf", "hnsw", "pq")
INDEX_FILE = "index.faiss"
IDS_FILE = "index_ids.npy"
META_FILE = "index.json"
IVF_TRAIN_PER_CELL = 64
NLIST_MAX = 1024
SEARCH_PARAMS = ("nprobe", "ef_search")


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


def as_f32(x: np.ndarray) -> np.ndarray:
    """``x`` as a C-contiguous float32 (N, D) matrix, or ``ValueError`` naming its shape."""
    arr = np.ascontiguousarray(x, dtype=np.float32)
    if arr.ndim != 2:
        raise ValueError(f"embeddings must be 2-D (N, D), got shape {arr.shape}")
    return arr


def _kind(kind: str) -> str:
    kind = "flat" if kind == "exact" else kind
    if kind not in KINDS:
        raise ValueError(f"unknown index kind {kind!r}; use one of {', '.join(KINDS)} (or exact)")
    return kind


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
    ef_construction: int = 40,
    ef_search: int = 64,
    pq_m: int = 8,
    seed: int = 0,
    train_per_cell: int = IVF_TRAIN_PER_CELL,
) -> faiss.Index:
    """An empty (but trained, for IVF and PQ) FAISS inner-product index of ``kind``.

    IVF's k-means is trained on a seeded sample of at most ``train_per_cell`` vectors per cell
    (all of ``train`` when it is smaller), so training cost does not grow with the catalogue.
    """
    kind = _kind(kind)
    x = as_f32(train)
    d = x.shape[1]
    if kind == "flat":
        return faiss.IndexFlatIP(d)
    if kind == "hnsw":
        hnsw = faiss.IndexHNSWFlat(d, hnsw_m, faiss.METRIC_INNER_PRODUCT)
        hnsw.hnsw.efConstruction = ef_construction
        hnsw.hnsw.efSearch = ef_search
        return hnsw
    n_cells = nlist or default_nlist(len(x))
    quantizer = faiss.IndexFlatIP(d)
    index: Any
    if kind == "ivf":
        index = faiss.IndexIVFFlat(quantizer, d, n_cells, faiss.METRIC_INNER_PRODUCT)
    else:
        if d % pq_m:
            raise ValueError(f"pq_m={pq_m} must divide the embedding dimension {d}")
        nbits = 8 if len(x) >= 256 * 39 else 4  # 2**nbits centroids per sub-quantiser
        index = faiss.IndexIVFPQ(quantizer, d, n_cells, pq_m, nbits, faiss.METRIC_INNER_PRODUCT)
    index.cp.seed = seed
    index.cp.min_points_per_centroid = 1
    n_train = max(train_per_cell * n_cells, 256 * 39 if kind == "pq" else 0)
    if len(x) > n_train:
        rows = rng(seed, "index/ivf-train").choice(len(x), size=n_train, replace=False)
        x = x[np.sort(rows)]
    index.cp.max_points_per_centroid = train_per_cell
    index.train(x)
    index.nprobe = min(nprobe, n_cells)
    return index


class VectorIndex:
    """A FAISS index and the catalogue id of each of its rows."""

    def __init__(self, index: faiss.Index, ids: np.ndarray, kind: str) -> None:
        if index.ntotal != len(ids):
            raise ValueError(f"index holds {index.ntotal} vectors but {len(ids)} ids were given")
        self.index = index
        self.ids = np.asarray(ids, dtype=np.int64)
        self.kind = _kind(kind)
        self.build_seconds = 0.0

    @classmethod
    def build(
        cls, kind: str, embeddings: np.ndarray, ids: np.ndarray | None = None, **params: Any
    ) -> VectorIndex:
        """Build and fill an index of ``kind``; ``ids`` default to the row numbers."""
        x = as_f32(embeddings)
        t0 = time.perf_counter()
        index = make_faiss_index(kind, x, **params)
        index.add(x)
        out = cls(index, np.arange(len(x)) if ids is None else ids, kind)
        out.build_seconds = time.perf_counter() - t0
        return out

    @property
    def dim(self) -> int:
        return int(self.index.d)

    def __getstate__(self) -> dict[str, Any]:
        """Picklable in memory (an engine ships a recommender to its workers, mlsd.engine): the
        FAISS index travels as its serialised bytes. Files use :meth:`save`, never pickle."""
        state = dict(self.__dict__)
        state["index"] = faiss.serialize_index(self.index)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        state = dict(state)
        state["index"] = faiss.deserialize_index(state["index"])
        self.__dict__.update(state)

    def __len__(self) -> int:
        return int(self.index.ntotal)

    def set_search(self, nprobe: int | None = None, ef_search: int | None = None) -> None:
        """Change the search-time knobs (IVF/PQ ``nprobe``, HNSW ``ef_search``) in place."""
        raw: Any = self.index
        if self.kind in ("ivf", "pq") and nprobe is not None:
            raw.nprobe = min(int(nprobe), int(raw.nlist))
        elif self.kind == "hnsw" and ef_search is not None:
            raw.hnsw.efSearch = int(ef_search)

    def add(self, embeddings: np.ndarray, ids: np.ndarray) -> None:
        """Incremental indexing: ``embeddings`` become searchable now (no rebuild; IVF keeps
        its cells, so a catalogue that drifts far from them should be re-trained)."""
        x = as_f32(embeddings)
        if x.shape[1] != self.dim:
            raise ValueError(f"embeddings have {x.shape[1]} dims, the index {self.dim}")
        if len(x) != len(ids):
            raise ValueError(f"{len(x)} embeddings but {len(ids)} ids")
        self.index.add(x)
        self.ids = np.concatenate([self.ids, np.asarray(ids, dtype=np.int64)])

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """``(scores, ids)``, each ``(Q, min(k, len))``, best first; missing neighbours are -1."""
        q = as_f32(np.atleast_2d(queries))
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
        """FAISS's own file, the ids as ``.npy`` and the kind as JSON; each written atomically."""
        directory.mkdir(parents=True, exist_ok=True)
        with atomic_path(directory / INDEX_FILE) as tmp:
            faiss.write_index(self.index, str(tmp))
        write_npy(directory / IDS_FILE, self.ids)
        write_json(directory / META_FILE, {"kind": self.kind, "dim": self.dim, "size": len(self)})

    @classmethod
    def load(cls, directory: Path) -> VectorIndex:
        meta = json.loads((directory / META_FILE).read_text())
        index = faiss.read_index(str(directory / INDEX_FILE))
        ids = np.load(directory / IDS_FILE, allow_pickle=False)
        return cls(index, ids, str(meta["kind"]))


def exact_top_k(
    embeddings: np.ndarray, queries: np.ndarray, k: int, batch: int = 4096
) -> tuple[np.ndarray, np.ndarray]:
    """Brute-force top-``k`` rows by inner product, ``(scores, rows)``, in query batches."""
    index = faiss.IndexFlatIP(as_f32(embeddings).shape[1])
    index.add(as_f32(embeddings))
    q = as_f32(queries)
    parts = [index.search(q[i : i + batch], min(k, index.ntotal)) for i in range(0, len(q), batch)]
    if not parts:
        return np.zeros((0, k), np.float32), np.zeros((0, k), np.int64)
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def pairs_within(embeddings: np.ndarray, threshold: float) -> np.ndarray:
    """Every pair ``(i, j)``, ``i < j``, of rows whose inner product is at least ``threshold``:
    an exact range search (all neighbours above the threshold, not a fixed top-k), for
    near-duplicate groups of any size. ``(P, 2)`` int64, sorted by ``i``."""
    x = as_f32(embeddings)
    index = faiss.IndexFlatIP(x.shape[1])
    index.add(x)
    lims, _, nbrs = index.range_search(x, float(threshold))
    counts = np.diff(np.asarray(lims, dtype=np.int64)).astype(np.int64)
    rows = np.repeat(np.arange(len(x)), counts)
    keep = rows < nbrs
    return np.stack([rows[keep], nbrs[keep]], 1).astype(np.int64)


def recall_at_k(approx_ids: np.ndarray, exact_ids: np.ndarray) -> float:
    """ANN recall@k: the mean share of the exact top-k that the approximate top-k also holds
    (ids -1, for missing neighbours, never count)."""
    if len(approx_ids) != len(exact_ids):
        raise ValueError(f"{len(approx_ids)} approximate rows vs {len(exact_ids)} exact rows")
    hits = [
        len(np.intersect1d(a[a >= 0], e[e >= 0])) / max(int((e >= 0).sum()), 1)
        for a, e in zip(np.asarray(approx_ids), np.asarray(exact_ids), strict=True)
    ]
    return float(np.mean(hits)) if hits else float("nan")


def time_search(index: VectorIndex, queries: np.ndarray, k: int) -> tuple[np.ndarray, list[float]]:
    """Search one query at a time (as a server does); the ids and each query's milliseconds."""
    out = np.full((len(queries), min(k, len(index))), -1, dtype=np.int64)
    if len(queries):
        index.search(queries[:1], k)  # warm-up
    times: list[float] = []
    for i in range(len(queries)):
        t0 = time.perf_counter()
        out[i] = index.search(queries[i : i + 1], k)[1][0]
        times.append((time.perf_counter() - t0) * 1000.0)
    return out, times


@dataclass(frozen=True)
class IndexConfig:
    """One index to compare: a label, a kind, build parameters and search parameters."""

    label: str
    kind: str
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def build_params(self) -> dict[str, Any]:
        return {p: v for p, v in self.params.items() if p not in SEARCH_PARAMS}

    @property
    def search_params(self) -> dict[str, Any]:
        return {p: v for p, v in self.params.items() if p in SEARCH_PARAMS}


def default_configs(n: int, dim: int, hnsw_max_size: int = 200_000) -> list[IndexConfig]:
    """The indexes compared for a catalogue of ``n`` vectors of ``dim`` dimensions: exact, IVF
    at three ``nprobe``, HNSW at two ``ef_search`` (up to ``hnsw_max_size`` vectors: its graph
    build is the slowest of all on a CPU) and IVF-PQ from 10,000 vectors."""
    nlist = max(4, min(int(4 * np.sqrt(n)), n // 39 or 4, NLIST_MAX))
    out = [IndexConfig("exact (Flat)", "flat")]
    for nprobe in (1, 4, 16):
        out.append(
            IndexConfig(f"IVF{nlist}, nprobe={nprobe}", "ivf", {"nlist": nlist, "nprobe": nprobe})
        )
    if n <= hnsw_max_size:
        for ef in (16, 64):
            out.append(
                IndexConfig(f"HNSW32, efSearch={ef}", "hnsw", {"hnsw_m": 32, "ef_search": ef})
            )
    pq_m = next((m for m in (16, 8, 4) if dim % m == 0 and dim // m >= 2), None)
    if n >= 10_000 and pq_m is not None:
        out.append(
            IndexConfig(
                f"IVF{nlist}-PQ{pq_m}, nprobe=16",
                "pq",
                {"nlist": nlist, "nprobe": 16, "pq_m": pq_m},
            )
        )
    return out


@dataclass(frozen=True)
class IndexTradeoff:
    """One row of the exact-vs-approximate table."""

    label: str
    kind: str
    params: dict[str, Any]
    recall: float  # recall@k against exact search
    build_s: float
    bytes: int
    query_ms: float  # mean, one query at a time
    query_p99_ms: float

    HEADER = ("index", "recall@k vs exact", "build s", "memory MB", "ms / query", "p99 ms")

    def row(self) -> list[Any]:
        return [
            self.label,
            round(self.recall, 4),
            round(self.build_s, 3),
            round(self.bytes / 2**20, 2),
            round(self.query_ms, 4),
            round(self.query_p99_ms, 4),
        ]

    def metrics(self) -> dict[str, Any]:
        return {
            "index": self.label,
            "kind": self.kind,
            "params": self.params,
            "recall_vs_exact": self.recall,
            "build_s": self.build_s,
            "bytes": self.bytes,
            "query_ms": self.query_ms,
            "query_p99_ms": self.query_p99_ms,
        }


def compare_indexes(
    embeddings: np.ndarray,
    queries: np.ndarray,
    k: int,
    configs: Sequence[IndexConfig],
    *,
    ids: np.ndarray | None = None,
    seed: int = 0,
    latency_queries: int = 200,
) -> list[IndexTradeoff]:
    """Build every index of ``configs`` over ``embeddings`` and measure it against exact search.

    An index is built once per build configuration and searched at each of its search settings
    (``nprobe``, ``ef_search``), so consecutive configs that differ only in those share a build.
    Recall uses every query; query time the first ``latency_queries``, one at a time.
    """
    row_ids = np.arange(len(embeddings)) if ids is None else np.asarray(ids, dtype=np.int64)
    exact_top = row_ids[exact_top_k(embeddings, queries, k)[1]]
    out: list[IndexTradeoff] = []
    built: tuple[tuple[str, str], VectorIndex] | None = None
    for cfg in configs:
        key = (_kind(cfg.kind), repr(sorted(cfg.build_params.items())))
        if built is None or built[0] != key:
            built = None  # free the previous index first
            built = (
                key,
                VectorIndex.build(cfg.kind, embeddings, row_ids, seed=seed, **cfg.build_params),
            )
        index = built[1]
        index.set_search(**cfg.search_params)
        top = index.search(queries, k)[1]
        _, times = time_search(index, queries[:latency_queries], k)
        out.append(
            IndexTradeoff(
                cfg.label,
                index.kind,
                dict(cfg.params),
                recall_at_k(top, exact_top),
                index.build_seconds,
                index.nbytes(),
                float(np.mean(times)) if times else float("nan"),
                float(np.percentile(times, 99)) if times else float("nan"),
            )
        )
        log.debug("index %s: recall %.3f", cfg.label, out[-1].recall)
    return out
