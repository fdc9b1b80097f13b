"""The MovieLens benchmark run: popular, co-watch (item-to-item) and the two-tower model under the
protocol of :mod:`mlsd.systems.video_rec.movielens` (stratified 75/25, seed 42, k = 10)."""

from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np
import pandas as pd

from mlsd.systems.video_rec.build import FitConfig
from mlsd.systems.video_rec.candidates import CoWatchSource, PopularSource
from mlsd.systems.video_rec.features import Catalogue, UserSide
from mlsd.systems.video_rec.movielens import (
    MovieLens,
    evaluate_lists,
    stratified_split,
    top_k_unseen,
)
from mlsd.systems.video_rec.titles import CachedEncoder
from mlsd.systems.video_rec.two_tower import TowerInputs, TwoTowerRetriever

log = logging.getLogger(__name__)


def movielens_catalogue(ml: MovieLens, encoder: CachedEncoder) -> Catalogue:
    genres = sorted(ml.items["genre"].unique())
    videos = pd.DataFrame(
        {
            "video_id": ml.items["item"].to_numpy(np.int64),
            "creator_id": 0,
            "category": ml.items["genre"],
            "title": ml.items["title"],
            "duration_min": 1.0,
            "upload_day": 0,
        }
    )
    return Catalogue(videos, encoder.encode(videos["title"].tolist()), genres)


def run_protocol(
    ml: MovieLens, encoder: CachedEncoder, seed: int, tower_epochs: int = 10
) -> dict[str, Any]:
    """Every model's MAP, nDCG@10, Precision@10, Recall@10 and training time."""
    r = ml.ratings
    train, test = stratified_split(r)
    tr = r[train]
    n_users, n_items = int(r["user"].max()) + 1, int(r["item"].max()) + 1
    truth: dict[int, set[int]] = {}
    for u, i in zip(r["user"].to_numpy()[test], r["item"].to_numpy()[test], strict=True):
        truth.setdefault(int(u), set()).add(int(i))
    users = np.asarray(sorted(truth), dtype=np.int64)
    tu, ti = tr["user"].to_numpy(np.int64), tr["item"].to_numpy(np.int64)
    seen_by_user = pd.Series(ti).groupby(tu).apply(np.asarray).to_dict()
    seen = [seen_by_user.get(int(u), np.zeros(0, np.int64)) for u in users]
    ones = np.ones(len(tu), np.int8)
    out: dict[str, Any] = {
        "split": {
            "train": int(train.sum()),
            "test": int(test.sum()),
            "users_evaluated": len(users),
            "items": n_items,
        }
    }

    t0 = time.perf_counter()
    pop = PopularSource(decay=1.0).fit(ti, np.zeros(len(ti), np.int64), ones, n_items)
    t_pop = time.perf_counter() - t0
    scores = np.broadcast_to(pop.score_, (len(users), n_items))
    out["popular"] = {
        **evaluate_lists(dict(zip(users.tolist(), top_k_unseen(scores, seen), strict=True)), truth),
        "train_seconds": t_pop,
    }

    t0 = time.perf_counter()
    co = CoWatchSource(history_len=10_000).fit(tu, ti, ones, n_items)
    t_co = time.perf_counter() - t0
    recs: dict[int, list[int]] = {}
    for s in range(0, len(users), 512):
        block = co.scores([seen[j] for j in range(s, min(s + 512, len(users)))]).toarray()
        lists = top_k_unseen(block, seen[s : s + 512])
        recs.update(zip(users[s : s + 512].tolist(), lists, strict=True))
    out["co_watch"] = {**evaluate_lists(recs, truth), "train_seconds": t_co}

    cat = movielens_catalogue(ml, encoder)
    order = np.argsort(tr["ts"].to_numpy(), kind="stable")
    us = UserSide.build(cat, tu[order], ti[order], np.zeros(len(tu), np.int64), ones, 1)
    cfg = FitConfig(tower_epochs=tower_epochs, seed=seed)
    zeros = np.zeros(len(tu), np.int64)
    x = TowerInputs(tu + 1, us.history(tu, 1, cfg.hist_len), zeros, zeros, zeros)
    t0 = time.perf_counter()
    tower = TwoTowerRetriever(
        dim=cfg.tower_dim, out_dim=cfg.tower_dim, epochs=cfg.tower_epochs, seed=seed
    ).fit(cat, x, ti, n_users)
    t_tower = time.perf_counter() - t0
    item_emb = tower.video_embeddings(cat)
    nu = len(users)
    xu = TowerInputs(
        users + 1,
        us.history(users, 1, cfg.hist_len),
        np.zeros(nu, np.int64),
        np.zeros(nu, np.int64),
        np.zeros(nu, np.int64),
    )
    user_emb = tower.user_embeddings(cat, xu)
    recs = {}
    for s in range(0, nu, 512):
        lists = top_k_unseen(user_emb[s : s + 512] @ item_emb.T, seen[s : s + 512])
        recs.update(zip(users[s : s + 512].tolist(), lists, strict=True))
    out["two_tower"] = {
        **evaluate_lists(recs, truth),
        "train_seconds": t_tower,
        "title_encoder": encoder.name,
        "titles_from_metadata": ml.has_metadata,
    }
    return out
