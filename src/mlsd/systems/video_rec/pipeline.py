"""The multi-stage recommender (book ch. 6, "Serving"): retrieve → rank → re-rank.

One object serves a user id (its history and features come from the log's indexes) or an unseen
user described inline (a watch history and demographics), one user or a batch of users at a
time. ``mode`` selects how much of the stack runs, so the offline evaluation, the online tests
and the server all go through the same code: ``popular`` and ``cowatch`` are the baselines,
``two_tower`` is retrieval alone, ``ranked`` adds the ranking model, ``full`` adds re-ranking.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from mlsd.systems.video_rec.candidates import (
    AnnIndex,
    CoWatchSource,
    PopularSource,
    merge_candidates,
)
from mlsd.systems.video_rec.features import (
    Catalogue,
    Demographics,
    UserSide,
    VideoSide,
    ranking_frame,
)
from mlsd.systems.video_rec.ranking import RankingModel
from mlsd.systems.video_rec.rerank import rerank
from mlsd.systems.video_rec.two_tower import TowerInputs, TwoTowerRetriever, vocab_index
from mlsd.systems.video_rec.world_entities import AGE_BUCKETS, COUNTRIES, LANGUAGES
from mlsd.training import torch_threads

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
    index: AnnIndex
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
    ) -> dict[str, list[np.ndarray]]:
        """Each source's ranked candidates per user (watched videos removed)."""
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
        return {k: v for k, v in out.items() if v}

    def recommend(
        self,
        us: UserSide,
        keys: np.ndarray,
        demo: Demographics,
        known: bool,
        k: int,
        mode: str = "full",
    ) -> Recs:
        """Top ``k`` per user under ``mode`` (see :data:`MODES`)."""
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}; one of {MODES}")
        t0 = time.perf_counter()
        n = len(keys)
        if mode == "popular":
            src = self.sources(us, keys, demo, known, 0, max(k, 100), 0)
        elif mode == "cowatch":
            src = self.sources(us, keys, demo, known, 0, 0, max(k, 100))
        elif mode == "two_tower":
            src = self.sources(us, keys, demo, known, max(k, 100), 0, 0)
        else:
            src = self.sources(us, keys, demo, known, self.n_tower, self.n_popular, self.n_cowatch)
        merged = [merge_candidates({s: lists[i] for s, lists in src.items()}) for i in range(n)]
        t1 = time.perf_counter()
        timings = {"retrieval": (t1 - t0) * 1000.0, "ranking": 0.0, "reranking": 0.0}
        if mode in ("popular", "cowatch", "two_tower") or self.ranker is None:
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
