"""Step 6: the video searcher and its artifacts (no HTTP: that is
``mlsd.api.routes.video_search``). The offline evaluation and the online test rank with the
same class, so what is measured is what is served.

A search runs, each stage timed:

1. **encode**: the query's sentence embedding (MiniLM), once: semantic retrieval and the dual
   encoder's query tower both start from it;
2. **text** and **visual**, in parallel (two threads): BM25 and semantic retrieval of the
   top ``depth`` videos; the query tower and the visual index's top ``depth``;
3. **fusion**: the union of the candidates, their features (:mod:`.features`), and the served
   ranker (the learned fusion, or reciprocal-rank fusion);
4. **rerank**: unsafe videos (the platform's safety flag) removed, re-uploads of a video ranked
   higher removed (visual embeddings within ``DUPLICATE_COSINE``), top ``k``.

New videos are indexed without a restart (:meth:`VideoSearcher.add_videos`): their text goes
into a rebuilt BM25 index, their embeddings into both vector indexes (FAISS adds in place).
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mlsd.artifacts import (
    artifacts_dir_of,
    verify_manifest,
    write_json,
    write_manifest,
    write_npy,
)
from mlsd.data import read_parquet, write_parquet
from mlsd.index import VectorIndex
from mlsd.model_io import ModelFileError
from mlsd.serving import ServingArtifactError, read_artifact_json
from mlsd.settings import Settings
from mlsd.systems.video_search.features import (
    RETRIEVERS,
    Candidates,
    candidate_frame,
    documents,
    rrf,
)
from mlsd.systems.video_search.model import TextSearch
from mlsd.systems.video_search.model_dual import DualEncoder
from mlsd.systems.video_search.model_fusion import FusionRanker
from mlsd.text import CachedEncoder, make_encoder

SYSTEM = "video-search"
SERVING_FILE = "serving.json"
VIDEOS_FILE = "videos.parquet"
DUPLICATE_COSINE = 0.995
META = ("video_id", "upload_day", "popularity", "duration_s", "flagged", "title")
TEXT_COLS = ("description", "tags")
METHODS = ("bm25", "semantic", "visual", "rrf_text", "rrf_all", "fusion", "final")


@dataclass(frozen=True)
class Hit:
    video_id: int
    score: float
    title: str
    upload_day: int


@dataclass(frozen=True)
class SearchResult:
    query: str
    ranker: str
    hits: list[Hit]
    candidates: int
    timings_ms: dict[str, float]


class VideoSearcher:
    """Both halves, their fusion and the re-ranking over one catalogue (``videos``)."""

    def __init__(
        self,
        videos: pd.DataFrame,
        text: TextSearch,
        encoder: CachedEncoder,
        doc_vectors: np.ndarray,
        dual: DualEncoder | None = None,
        video_vectors: np.ndarray | None = None,
        fusion: FusionRanker | None = None,
        ranker: str = "rrf_all",
        day: int = 0,
        depth: int = 50,
    ) -> None:
        self.videos = videos.reset_index(drop=True)
        self.text = text
        self.encoder = encoder
        self.dual = dual
        self.fusion = fusion
        self.ranker = ranker
        self.day = int(day)
        self.depth = int(depth)
        self.doc_vectors = np.ascontiguousarray(doc_vectors, np.float32)
        self.semantic = VectorIndex.build("flat", self.doc_vectors)
        self.video_vectors = (
            None if video_vectors is None else np.ascontiguousarray(video_vectors, np.float32)
        )
        self.visual = (
            None if self.video_vectors is None else VectorIndex.build("flat", self.video_vectors)
        )
        self._arrays()
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(2, thread_name_prefix="video-search")

    def _arrays(self) -> None:
        v = self.videos
        self.upload_day = v["upload_day"].to_numpy(np.int64)
        self.popularity = v["popularity"].to_numpy(np.float64)
        self.duration = v["duration_s"].to_numpy(np.float64)
        self.flagged = v["flagged"].to_numpy(bool)
        self.ids = v["video_id"].to_numpy(np.int64)

    @property
    def retrievers(self) -> tuple[str, ...]:
        return tuple(r for r in RETRIEVERS if r != "visual" or self.visual is not None)

    # ---- candidates ------------------------------------------------------------------------
    def _text_half(self, query: str, qvec: np.ndarray, max_day: int | None) -> dict[str, Any]:
        bm = self.text.scores(query)
        hit = np.flatnonzero(bm > 0)
        if max_day is not None:
            hit = hit[self.upload_day[hit] <= max_day]
        bm_top = hit[np.argsort(-bm[hit], kind="stable")[: self.depth]]
        sem_top = self._ann(self.semantic, qvec, max_day)
        return {"bm25": (bm_top, bm), "semantic": (sem_top, None)}

    def _ann(self, index: VectorIndex, q: np.ndarray, max_day: int | None) -> np.ndarray:
        want = self.depth if max_day is None else min(len(index), 4 * self.depth)
        _, ids = index.search(q[None, :], want)
        rows = ids[0][ids[0] >= 0]
        if max_day is not None:
            rows = rows[self.upload_day[rows] <= max_day]
        return rows[: self.depth]

    def _visual_half(self, qvec: np.ndarray, max_day: int | None) -> tuple[np.ndarray, np.ndarray]:
        assert self.dual is not None and self.visual is not None
        qv = self.dual.encode_queries(qvec[None, :])[0]
        return self._ann(self.visual, qv, max_day), qv

    def candidates(
        self, query: str, qvec: np.ndarray, max_day: int | None = None, parallel: bool = False
    ) -> tuple[Candidates, dict[str, float]]:
        """The union of every retriever's top ``depth``, each scored by every retriever."""
        t0 = time.perf_counter()
        vis: tuple[np.ndarray, np.ndarray] | None = None
        if parallel and self.visual is not None:
            vis_future = self._pool.submit(self._visual_half, qvec, max_day)
            text = self._text_half(query, qvec, max_day)
            t1 = time.perf_counter()
            vis = vis_future.result()
        else:
            text = self._text_half(query, qvec, max_day)
            t1 = time.perf_counter()
            vis = self._visual_half(qvec, max_day) if self.visual is not None else None
        t2 = time.perf_counter()
        tops = {"bm25": text["bm25"][0], "semantic": text["semantic"][0]}
        if vis is not None:
            tops["visual"] = vis[0]
        rows = np.unique(np.concatenate(list(tops.values())))
        scores = {
            "bm25": text["bm25"][1][rows].astype(np.float64),
            "semantic": (self.doc_vectors[rows] @ qvec).astype(np.float64),
        }
        if vis is not None and self.video_vectors is not None:
            scores["visual"] = (self.video_vectors[rows] @ vis[1]).astype(np.float64)
        ranks = {}
        for name, top in tops.items():
            r = np.full(len(rows), np.inf)
            r[np.searchsorted(rows, top)] = np.arange(1, len(top) + 1)
            ranks[name] = r
        ms = {"text": (t1 - t0) * 1e3, "visual": (t2 - t0) * 1e3 if parallel else (t2 - t1) * 1e3}
        return Candidates(rows, scores, ranks), ms

    def features(self, cands: Candidates, query: str, day: int) -> pd.DataFrame:
        ids, n = self.text.token_ids(query)
        return candidate_frame(
            cands,
            day,
            self.upload_day,
            self.popularity,
            self.duration,
            self.text.doc_len_,
            n,
            1.0 - len(ids) / n if n else 0.0,
            self.depth,
        )

    # ---- ranking ---------------------------------------------------------------------------
    def order(
        self, method: str, cands: Candidates, X: pd.DataFrame | None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Candidate rows (catalogue positions) best first and their scores, for one of
        :data:`METHODS` (a retriever's own list, a fusion of the lists, the learned fusion)."""
        if method in cands.ranks:
            r = cands.ranks[method]
            keep = np.flatnonzero(np.isfinite(r))
            keep = keep[np.argsort(r[keep], kind="stable")]
            return cands.rows[keep], cands.scores[method][keep]
        if method in ("rrf_text", "rrf_all"):  # only what the fused lists retrieved
            used = ("bm25", "semantic") if method == "rrf_text" else self.retrievers
            s = rrf([cands.ranks[n] for n in used])
            o = np.flatnonzero(s > 0)
            o = o[np.argsort(-s[o], kind="stable")]
            return cands.rows[o], s[o]
        if method in ("fusion", "final"):
            if self.fusion is None or X is None:
                raise ValueError("no learned fusion in this searcher")
            s = self.fusion.score(X)
        else:
            raise ValueError(f"unknown method {method!r}; the methods are {METHODS}")
        o = np.argsort(-s, kind="stable")
        return cands.rows[o], s[o]

    def rerank(self, rows: np.ndarray, k: int) -> np.ndarray:
        """Positions in ``rows`` kept by the safety filter and de-duplication, top ``k``."""
        keep = np.flatnonzero(~self.flagged[rows])
        if self.video_vectors is None:
            return keep[:k]
        kept: list[int] = []
        for i in keep:
            v = self.video_vectors[rows[i]]
            if kept and float(np.max(self.video_vectors[rows[kept]] @ v)) >= DUPLICATE_COSINE:
                continue
            kept.append(int(i))
            if len(kept) == k:
                break
        return np.asarray(kept, np.int64)

    def rank_many(
        self,
        queries: list[str],
        days: np.ndarray,
        methods: tuple[str, ...],
        k: int = 100,
        max_day: bool = False,
    ) -> dict[str, list[np.ndarray]]:
        """Each method's ranked catalogue rows for each query (offline evaluation, online test);
        with ``max_day`` a query sees only videos uploaded by its day."""
        qvecs = self.encoder.encode(queries)
        out: dict[str, list[np.ndarray]] = {m: [] for m in methods}
        for q, vec, d in zip(queries, qvecs, days, strict=True):
            cands, _ = self.candidates(q, vec, int(d) if max_day else None)
            X = self.features(cands, q, int(d)) if self.fusion is not None else None
            for m in methods:
                rows = self.order(self.final_base if m == "final" else m, cands, X)[0]
                out[m].append(rows[self.rerank(rows, k)] if m == "final" else rows[:k])
        return out

    @property
    def final_base(self) -> str:
        return "fusion" if self.fusion is not None else "rrf_all"

    def search(self, query: str, k: int = 20) -> SearchResult:
        """The served search: both halves in parallel, the served ranker, re-ranking."""
        t0 = time.perf_counter()
        with self._lock:
            qvec = self.encoder.encode([query])[0]
            t1 = time.perf_counter()
            cands, ms = self.candidates(query, qvec, parallel=True)
            t2 = time.perf_counter()
            base = self.ranker if self.ranker != "final" else self.final_base
            X = self.features(cands, query, self.day) if base in ("fusion",) else None
            rows, scores = self.order(base, cands, X)
            t3 = time.perf_counter()
            top = self.rerank(rows, k)
            t4 = time.perf_counter()
            titles = self.videos["title"].to_numpy()
            hits = [
                Hit(int(self.ids[r]), float(s), str(titles[r]), int(self.upload_day[r]))
                for r, s in zip(rows[top], scores[top], strict=True)
            ]
        return SearchResult(
            query,
            self.ranker,
            hits,
            len(cands.rows),
            {
                "encode": (t1 - t0) * 1e3,
                "text": ms["text"],
                "visual": ms["visual"],
                "retrieval": (t2 - t1) * 1e3,
                "fusion": (t3 - t2) * 1e3,
                "rerank": (t4 - t3) * 1e3,
                "total": (time.perf_counter() - t0) * 1e3,
            },
        )

    # ---- new videos ------------------------------------------------------------------------
    def add_videos(self, new: pd.DataFrame, frames: np.ndarray | None = None) -> np.ndarray:
        """Index new videos now (no restart); returns their ids. ``new`` has the catalogue's
        text and metadata columns; ``frames`` ``(n, F, 3, S, S)`` or None (no visual signal)."""
        with self._lock:
            start = int(self.ids.max()) + 1 if len(self.ids) else 0
            new = new.assign(video_id=np.arange(start, start + len(new), dtype=np.int64))
            videos = pd.concat([self.videos, new[self.videos.columns]], ignore_index=True)
            text = TextSearch(k1=self.text.k1, b=self.text.b).fit(documents(videos))
            docs = self.encoder.encode(documents(new))
            self.semantic.add(docs, np.arange(len(self.videos), len(videos)))
            self.doc_vectors = np.concatenate([self.doc_vectors, docs])
            if self.visual is not None and self.dual is not None and self.video_vectors is not None:
                vv = (
                    self.dual.encode_videos(frames)
                    if frames is not None
                    else np.zeros((len(new), self.video_vectors.shape[1]), np.float32)
                )
                self.visual.add(vv, np.arange(len(self.videos), len(videos)))
                self.video_vectors = np.concatenate([self.video_vectors, vv])
            self.videos, self.text = videos, text
            self._arrays()
            return new["video_id"].to_numpy()


# ---- artifacts --------------------------------------------------------------------------------
def save_serving_artifacts(artifacts_dir: Path, s: VideoSearcher, encoder_kind: str) -> None:
    out = Path(artifacts_dir)
    out.mkdir(parents=True, exist_ok=True)
    s.text.save(out / "text")
    write_parquet(
        s.videos[[*META, *TEXT_COLS]] if "tags" in s.videos else s.videos, out / VIDEOS_FILE
    )
    write_npy(out / "doc_vectors.npy", s.doc_vectors)
    if s.dual is not None and s.video_vectors is not None:
        s.dual.save(out / "dual")
        write_npy(out / "video_vectors.npy", s.video_vectors)
    if s.fusion is not None:
        s.fusion.save(out / "fusion")
    write_json(
        out / SERVING_FILE,
        {
            "system": SYSTEM,
            "ranker": s.ranker,
            "text_encoder": encoder_kind,
            "day": s.day,
            "depth": s.depth,
        },
    )
    write_manifest(out)


def _vectors(path: Path, rows: int) -> np.ndarray:
    try:
        x = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise ServingArtifactError(f"{path}: unreadable vectors: {exc}") from exc
    if x.ndim != 2 or len(x) != rows:
        raise ServingArtifactError(f"{path}: shape {x.shape}, expected ({rows}, d)")
    return x


def load_scorer(run_dir: Path, settings: Settings | None = None) -> VideoSearcher:
    """The searcher of a run directory (or its bare artifacts folder), every file checked
    against the manifest before it is read."""
    art = artifacts_dir_of(Path(run_dir))
    verify_manifest(art, required=(SERVING_FILE, VIDEOS_FILE, "text", "doc_vectors.npy"))
    path = art / SERVING_FILE
    meta = read_artifact_json(path)
    if not isinstance(meta, dict) or meta.get("ranker") not in METHODS:
        raise ServingArtifactError(f"{path}: field 'ranker' missing or not one of {METHODS}")
    kind = meta.get("text_encoder")
    if kind not in ("minilm", "hashing"):
        raise ServingArtifactError(f"{path}: field 'text_encoder' is not minilm or hashing")
    for key in ("day", "depth"):
        if not isinstance(meta.get(key), int) or isinstance(meta.get(key), bool):
            raise ServingArtifactError(f"{path}: field {key!r} missing or not an integer")
    try:
        videos = read_parquet(art / VIDEOS_FILE)
        text = TextSearch.load(art / "text")
        dual = DualEncoder.load(art / "dual") if (art / "dual").exists() else None
        fusion = FusionRanker.load(art / "fusion") if (art / "fusion").exists() else None
    except (ModelFileError, OSError, ValueError) as exc:
        raise ServingArtifactError(f"{art}: unreadable model or table: {exc}") from exc
    docs = _vectors(art / "doc_vectors.npy", len(videos))
    vv = _vectors(art / "video_vectors.npy", len(videos)) if dual is not None else None
    if meta["ranker"] in ("fusion",) and fusion is None:
        raise ServingArtifactError(f"{art / 'fusion'}: the served ranker's model is missing")
    try:
        return VideoSearcher(
            videos,
            text,
            make_encoder(kind),
            docs,
            dual,
            vv,
            fusion,
            meta["ranker"],
            meta["day"],
            meta["depth"],
        )
    except (KeyError, ValueError, IndexError, TypeError) as exc:
        raise ServingArtifactError(f"{art}: inconsistent serving artifacts: {exc!r}") from exc
