"""Step 6 for video recommendation, without HTTP: the served recommender and its artifacts.

The multi-stage recommender (book ch. 6, "Serving"): retrieve → rank → re-rank. One object
serves a user id (its history and features come from the log's indexes) or an unseen user
described inline (a watch history and demographics), one user or a batch of users at a time.
``mode`` selects how much of the stack runs, so the offline evaluation, the online tests and the
server all go through the same code: ``popular`` and ``cowatch`` are the baselines,
``two_tower`` is retrieval alone, ``ranked`` adds the ranking model, ``full`` adds re-ranking.

Artifacts (in the run's ``artifacts/``): the recommender without its ANN index, saved as data
(``recommender/``: tables as Parquet, arrays as ``.npz``, the two-tower's weights as a state
dict, the ranker's boosters as LightGBM text, the rest JSON; :mod:`mlsd.model_io`), the index in
FAISS's own format (``ann_index/``, see :class:`mlsd.index.VectorIndex`), ``serving.json`` and
``manifest.json`` (the hash of every file); :func:`load_scorer` checks the manifest, then reads
them back. Nothing is a pickle.
The HTTP routes are in :mod:`mlsd.api.routes.video_rec`.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mlsd.artifacts import artifacts_dir_of, verify_manifest, write_json, write_manifest
from mlsd.index import VectorIndex
from mlsd.model_io import ModelFileError, load_value, save_value
from mlsd.rng import seed_of
from mlsd.serving import ServingArtifactError
from mlsd.settings import Settings
from mlsd.systems.video_rec.features import (
    Catalogue,
    Demographics,
    UserSide,
    VideoSide,
    ranking_frame,
)
from mlsd.systems.video_rec.model_candidates import (
    CoWatchSource,
    PopularSource,
    merge_candidates,
)
from mlsd.systems.video_rec.model_cf import CFSource
from mlsd.systems.video_rec.model_ease import EaseSource
from mlsd.systems.video_rec.model_ranking import RankingModel
from mlsd.systems.video_rec.model_two_tower import TowerInputs, TwoTowerRetriever, vocab_index
from mlsd.systems.video_rec.serving_rerank import rerank
from mlsd.systems.video_rec.world_entities import AGE_BUCKETS, COUNTRIES, LANGUAGES
from mlsd.training import torch_threads

log = logging.getLogger(__name__)

SYSTEM = "video-rec"
MODEL_DIR = "recommender"
INDEX_DIR = "ann_index"
SERVING_FILE = "serving.json"

#: The ANN index of the two-tower's video embeddings, by kind (``exact`` is FAISS's flat).
ANN_PARAMS: dict[str, dict[str, Any]] = {
    "exact": {},
    "ivf": {"nprobe": 16},
    "hnsw": {"hnsw_m": 32, "ef_construction": 80, "ef_search": 64},
}


def build_ann_index(embeddings: np.ndarray, kind: str, seed: int) -> VectorIndex:
    """The served index of ``kind`` over the video embeddings (row number = video id)."""
    if kind not in ANN_PARAMS:
        raise ValueError(f"unknown index kind {kind!r}; use one of {', '.join(ANN_PARAMS)}")
    return VectorIndex.build(
        kind, embeddings, seed=seed_of(seed, "video-rec/ann-index"), **ANN_PARAMS[kind]
    )


MODES = ("popular", "cowatch", "two_tower", "ranked", "full")


@dataclass
class Recs:
    """Recommendations of a batch of users, and the time each stage took (ms, whole batch)."""

    ids: list[np.ndarray]
    scores: list[np.ndarray]
    p_click: list[np.ndarray]
    sources: list[list[list[str]]]
    timings_ms: dict[str, float] = field(default_factory=dict)


@dataclass
class Recommender:
    """Everything a served home feed needs, fitted on the log up to ``day`` (exclusive)."""

    cat: Catalogue
    users: pd.DataFrame
    us: UserSide
    vs: VideoSide
    tower: TwoTowerRetriever
    index: VectorIndex
    popular: PopularSource
    cowatch: CoWatchSource
    ranker: RankingModel | None
    day: int
    n_tower: int = 200
    n_popular: int = 50
    n_cowatch: int = 100
    hist_len: int = 20
    rerank_method: str = "cap"
    category_cap: int = 3
    freshness: float = 0.3
    # collaborative learners (EASE, ALS, Mult-VAE, ...) merged in as further sources; a name is
    # also a mode (that source alone); empty unless a run adds them (``evaluation_sources``)
    learned: dict[str, CFSource | EaseSource] = field(default_factory=dict)
    n_learned: int = 100

    def moved_to(self, cat: Catalogue, users: pd.DataFrame, day: int, seed: int) -> Recommender:
        """The same models serving a later day: today's catalogue (new videos get content-tower
        embeddings and join a rebuilt index of the same kind) and today's users."""
        kind = "exact" if self.index.kind == "flat" else self.index.kind
        index = build_ann_index(self.tower.video_embeddings(cat), kind, seed)
        return dataclasses.replace(self, cat=cat, users=users, index=index, day=day)

    # ---- inputs -----------------------------------------------------------------------
    def known_user(self, user_id: int) -> bool:
        return 0 <= user_id < len(self.users)

    def watched(self, us: UserSide, keys: np.ndarray) -> list[set[int]]:
        hist = us.history(keys, self.day, 10_000) if len(keys) else np.zeros((0, 1))
        return [set(int(v) for v in row[row >= 0]) for row in hist]

    def _tower_inputs(
        self, us: UserSide, keys: np.ndarray, demo: Demographics, known: bool
    ) -> TowerInputs:
        return TowerInputs(
            user=(keys + 1) if known else np.zeros(len(keys), np.int64),
            history=us.history(keys, self.day, self.hist_len),
            age=vocab_index(demo.age_bucket, AGE_BUCKETS),
            country=vocab_index(demo.country, COUNTRIES),
            language=vocab_index(demo.language, LANGUAGES),
        )

    def inline_user(
        self, history: list[int], age_bucket: str, country: str, language: str
    ) -> tuple[UserSide, Demographics]:
        """Point-in-time indexes for an unseen user from an inline watch history (key 0)."""
        h = np.asarray(history, dtype=np.int64)
        n = len(h)
        us = UserSide.build(
            self.cat,
            np.zeros(n, np.int64),
            h,
            np.full(n, self.day - 1),
            np.ones(n, np.int8),
            self.us.n_creators,
            basis=self.us.content_basis,
        )
        demo = Demographics(
            np.array([age_bucket]), np.array([country]), np.array([language]), np.array([self.day])
        )
        return us, demo

    def user_embeddings(self, user_ids: np.ndarray) -> np.ndarray:
        """The user tower's embeddings of known users (ids of the user table), as served."""
        keys = np.asarray(user_ids, dtype=np.int64)
        x = self._tower_inputs(self.us, keys, Demographics.of(self.users, keys), True)
        with torch_threads(1):
            return self.tower.user_embeddings(self.cat, x)

    # ---- stages -----------------------------------------------------------------------
    def sources(
        self,
        us: UserSide,
        keys: np.ndarray,
        demo: Demographics,
        known: bool,
        n_tower: int,
        n_popular: int,
        n_cowatch: int,
        n_learned: int | None = None,
        only: list[str] | None = None,
    ) -> dict[str, list[np.ndarray]]:
        """Each source's ranked candidates per user (watched videos removed): the learned
        sources too (``n_learned`` each, ``self.n_learned`` when None, none when 0), or just
        those named in ``only``."""
        x = self._tower_inputs(us, keys, demo, known)
        watched = self.watched(us, keys)
        out: dict[str, list[np.ndarray]] = {"two_tower": [], "popular": [], "cowatch": []}
        if n_tower:
            with torch_threads(1):  # a few users: intra-op threads only contend for the cores
                emb = self.tower.user_embeddings(self.cat, x)
            _, ids = self.index.search(emb, n_tower + self.hist_len)
            out["two_tower"] = [
                r[(r >= 0) & ~np.isin(r, list(w))][:n_tower]
                for r, w in zip(ids, watched, strict=True)
            ]
        if n_popular:
            out["popular"] = [self.popular.recommend(n_popular, w) for w in watched]
        if n_cowatch:
            full_hist = us.history(keys, self.day, self.hist_len)
            recs = self.cowatch.recommend([h[h >= 0] for h in full_hist], n_cowatch + 50)
            out["cowatch"] = [
                r[~np.isin(r, list(w))][:n_cowatch] for r, w in zip(recs, watched, strict=True)
            ]
        names = list(self.learned) if only is None else only
        n_each = self.n_learned if n_learned is None else n_learned
        for name in names if n_each else []:
            out[name] = self._learned(name, keys, watched, known, n_each)
        return {k: v for k, v in out.items() if v}

    def _learned(
        self, name: str, keys: np.ndarray, watched: list[set[int]], known: bool, n: int
    ) -> list[np.ndarray]:
        """Learned source ``name``'s top ``n`` per user: fitted users from their learned
        parameters, others from their history; today's new videos cannot appear."""
        hist = [np.fromiter(w, np.int64, len(w)) for w in watched]
        src = self.learned[name]
        if isinstance(src, EaseSource):
            lists = src.recommend(hist, n)
        else:
            lists = src.recommend(hist, n, users=keys if known else None)
        return [np.asarray(x, np.int64) for x in lists]

    def recommend(
        self,
        us: UserSide,
        keys: np.ndarray,
        demo: Demographics,
        known: bool,
        k: int,
        mode: str = "full",
    ) -> Recs:
        """Top ``k`` per user under ``mode`` (see :data:`MODES`, or a learned source's name)."""
        if mode not in MODES and mode not in self.learned:
            raise ValueError(f"unknown mode {mode!r}; one of {(*MODES, *self.learned)}")
        t0 = time.perf_counter()
        n = len(keys)
        single = mode in ("popular", "cowatch", "two_tower") or mode in self.learned
        if mode == "popular":
            src = self.sources(us, keys, demo, known, 0, max(k, 100), 0, 0)
        elif mode == "cowatch":
            src = self.sources(us, keys, demo, known, 0, 0, max(k, 100), 0)
        elif mode == "two_tower":
            src = self.sources(us, keys, demo, known, max(k, 100), 0, 0, 0)
        elif mode in self.learned:
            src = self.sources(us, keys, demo, known, 0, 0, 0, max(k, 100), [mode])
        else:
            src = self.sources(us, keys, demo, known, self.n_tower, self.n_popular, self.n_cowatch)
        merged = [merge_candidates({s: lists[i] for s, lists in src.items()}) for i in range(n)]
        t1 = time.perf_counter()
        timings = {"retrieval": (t1 - t0) * 1000.0, "ranking": 0.0, "reranking": 0.0}
        if single or self.ranker is None:
            ids = [m[0][:k] for m in merged]
            scores = [np.linspace(1.0, 0.0, len(i)) for i in ids]  # the source's own order
            return Recs(
                ids,
                scores,
                [np.full(len(i), np.nan) for i in ids],
                [m[1][:k] for m in merged],
                timings,
            )
        lengths = [len(m[0]) for m in merged]
        all_ids = np.concatenate([m[0] for m in merged]) if n else np.zeros(0, np.int64)
        rows = np.repeat(np.arange(n), lengths)
        demo_rows = Demographics(*(np.asarray(a)[rows] for a in vars(demo).values()))
        X = ranking_frame(self.cat, us, self.vs, demo_rows, keys[rows], all_ids, self.day, 0)
        p, value = self.ranker.predict(X) if len(X) else (np.zeros(0), np.zeros(0))
        t2 = time.perf_counter()
        timings["ranking"] = (t2 - t1) * 1000.0
        out = Recs([], [], [], [], timings)
        bounds = np.concatenate([[0], np.cumsum(lengths)])
        age = self.day - self.cat.upload_day
        for i in range(n):
            sl = slice(bounds[i], bounds[i + 1])
            ids_i, val_i, p_i = all_ids[sl], value[sl], p[sl]
            if mode == "ranked":
                order = np.argsort(-val_i, kind="stable")[:k]
                top, top_val = ids_i[order], val_i[order]
            else:
                top, top_val = rerank(
                    ids_i,
                    val_i,
                    self.cat.category_idx[ids_i],
                    age[ids_i],
                    k,
                    method=self.rerank_method,
                    cap=self.category_cap,
                    boost=self.freshness,
                )
            pos = {int(v): j for j, v in enumerate(ids_i.tolist())}
            sel = np.asarray([pos[int(v)] for v in top], dtype=np.int64)
            out.ids.append(top)
            out.scores.append(top_val)
            out.p_click.append(p_i[sel] if len(sel) else np.zeros(0))
            out.sources.append([merged[i][1][j] for j in sel.tolist()])
        timings["reranking"] = (time.perf_counter() - t2) * 1000.0
        return out

    def recommend_users(self, user_ids: np.ndarray, k: int, mode: str = "full") -> Recs:
        """Recommendations for known users (ids of the user table)."""
        keys = np.asarray(user_ids, dtype=np.int64)
        return self.recommend(self.us, keys, Demographics.of(self.users, keys), True, k, mode)

    def recommend_inline(
        self,
        history: list[int],
        age_bucket: str,
        country: str,
        language: str,
        k: int,
        mode: str = "full",
    ) -> Recs:
        """Recommendations for an unseen user from an inline watch history and demographics."""
        us, demo = self.inline_user(history, age_bucket, country, language)
        return self.recommend(us, np.zeros(1, np.int64), demo, False, k, mode)


# ---- artifacts ---------------------------------------------------------------------------------
def save_recommender(artifacts_dir: Path, rec: Recommender, info: dict[str, Any]) -> None:
    """Write ``recommender/`` (every field but the index, as data), ``ann_index/``,
    ``serving.json`` and, last, ``manifest.json``; each atomically."""
    out = Path(artifacts_dir)
    out.mkdir(parents=True, exist_ok=True)
    fields = {f.name: getattr(rec, f.name) for f in dataclasses.fields(rec) if f.name != "index"}
    rec.index.save(out / INDEX_DIR)
    save_value(fields, out / MODEL_DIR)
    meta = {
        "system": SYSTEM,
        "users": len(rec.users),
        "videos": len(rec.cat.videos),
        "day": rec.day,
        "index": {"kind": rec.index.kind, "size": len(rec.index), "dir": INDEX_DIR},
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        **info,
    }
    write_json(out / SERVING_FILE, meta)
    write_manifest(out)


def load_recommender(artifacts_dir: Path) -> Recommender:
    """The recommender of an ``artifacts/`` folder, after the folder is checked against its
    manifest, or :class:`ServingArtifactError` naming the file that is missing, changed or
    unreadable."""
    artifacts_dir = Path(artifacts_dir)
    verify_manifest(artifacts_dir, required=(MODEL_DIR, INDEX_DIR))
    path = artifacts_dir / MODEL_DIR
    try:
        fields = load_value(path)
    except (ModelFileError, OSError) as exc:
        raise ServingArtifactError(f"{path}: unreadable recommender: {exc}") from exc
    names = {f.name for f in dataclasses.fields(Recommender)} - {"index"}
    if not isinstance(fields, dict) or set(fields) != names:
        raise ServingArtifactError(f"{path}: holds a {type(fields).__name__}, not a Recommender")
    index_dir = artifacts_dir / INDEX_DIR
    try:
        index = VectorIndex.load(index_dir)
    except Exception as exc:  # a missing file, a FAISS read error: a bad artifact either way
        raise ServingArtifactError(f"{index_dir}: unreadable ANN index: {exc}") from exc
    return Recommender(**fields, index=index)


def load_scorer(run_dir: Path, settings: Settings) -> Recommender:
    """What video-rec serves, loaded from a run directory (or its bare ``artifacts/``); the
    recommender reads no settings (the signature is every system's)."""
    return load_recommender(artifacts_dir_of(run_dir))
