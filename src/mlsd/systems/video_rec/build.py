"""Fit every stage of the recommender from a logged impression table (book ch. 6, "Training").

The log has one row per impression (user_id, video_id, day, position, click, watch_min,
watch_frac); users and videos are tables whose row index is the id. The two-tower model trains on
the clicks with each click's point-in-time watch history; the ranking models train on the
impressions before the last logged day and are validated on that day (a time split).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from mlsd import metrics as mm
from mlsd.systems.video_rec.candidates import AnnIndex, CoWatchSource, PopularSource
from mlsd.systems.video_rec.features import (
    Catalogue,
    Demographics,
    UserSide,
    VideoSide,
    ranking_frame,
)
from mlsd.systems.video_rec.pipeline import Recommender
from mlsd.systems.video_rec.ranking import RankingModel
from mlsd.systems.video_rec.two_tower import TowerInputs, TwoTowerRetriever, vocab_index
from mlsd.systems.video_rec.world_entities import AGE_BUCKETS, COUNTRIES, LANGUAGES
from mlsd.training import torch_threads

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FitConfig:
    tower_epochs: int = 10
    tower_dim: int = 32
    logq: bool = True
    ranker_trees: int = 200
    index_kind: str = "hnsw"
    hist_len: int = 20
    seed: int = 0


@dataclass
class FitReport:
    seconds: dict[str, float] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)


def tower_training_pairs(
    us: UserSide, users: pd.DataFrame, log_df: pd.DataFrame, hist_len: int
) -> tuple[TowerInputs, np.ndarray]:
    """One pair per click: the user's inputs as of the click's day, and the clicked video."""
    c = log_df["click"].to_numpy().astype(bool)
    u = log_df["user_id"].to_numpy(np.int64)[c]
    d = log_df["day"].to_numpy(np.int64)[c]
    demo = Demographics.of(users, u) if "age_bucket" in users else None
    n = len(u)
    x = TowerInputs(
        user=u + 1,
        history=us.history(u, d, hist_len),
        age=vocab_index(demo.age_bucket, AGE_BUCKETS) if demo else np.zeros(n, np.int64),
        country=vocab_index(demo.country, COUNTRIES) if demo else np.zeros(n, np.int64),
        language=vocab_index(demo.language, LANGUAGES) if demo else np.zeros(n, np.int64),
    )
    return x, log_df["video_id"].to_numpy(np.int64)[c]


def fit_tower(
    cat: Catalogue, us: UserSide, users: pd.DataFrame, log_df: pd.DataFrame, cfg: FitConfig
) -> TwoTowerRetriever:
    x, pos = tower_training_pairs(us, users, log_df, cfg.hist_len)
    with torch_threads(1):  # small batches: one thread avoids contention on shared cores
        return TwoTowerRetriever(
            dim=cfg.tower_dim,
            out_dim=cfg.tower_dim,
            epochs=cfg.tower_epochs,
            logq=cfg.logq,
            seed=cfg.seed,
        ).fit(cat, x, pos, len(users))


def fit_recommender(
    cat: Catalogue,
    users: pd.DataFrame,
    log_df: pd.DataFrame,
    cfg: FitConfig,
    with_ranker: bool = True,
) -> tuple[Recommender, FitReport]:
    """Fit the sources, the two towers, the ANN index and the ranking models."""
    rep = FitReport()
    arr = {c: log_df[c].to_numpy() for c in ("user_id", "video_id", "day", "click")}
    u, v, d, click = (
        arr["user_id"].astype(np.int64),
        arr["video_id"].astype(np.int64),
        arr["day"].astype(np.int64),
        arr["click"],
    )
    t0 = time.perf_counter()
    us = UserSide.build(cat, u, v, d, click, cat.n_creators)
    frac = log_df["watch_frac"].to_numpy() if "watch_frac" in log_df else click.astype(float)
    vs = VideoSide.build(v, d, click, frac)
    popular = PopularSource().fit(v, d, click, len(cat.videos))
    cowatch = CoWatchSource().fit(u, v, click, len(cat.videos))
    rep.seconds["indexes_and_sources"] = time.perf_counter() - t0

    tower = fit_tower(cat, us, users, log_df, cfg)
    rep.seconds["two_tower"] = tower.train_seconds_
    rep.info["two_tower_losses"] = tower.losses_
    rep.info["two_tower_pairs"] = int(click.sum())

    t0 = time.perf_counter()
    emb = tower.video_embeddings(cat)
    index = AnnIndex(cfg.index_kind).build(emb, seed=cfg.seed)
    rep.seconds["ann_index"] = time.perf_counter() - t0

    ranker = None
    if with_ranker:
        ranker, rinfo = fit_ranker(cat, us, vs, users, log_df, cfg)
        rep.seconds["ranking"] = ranker.train_seconds_
        rep.info["ranking"] = rinfo
    rec = Recommender(
        cat,
        users,
        us,
        vs,
        tower,
        index,
        popular,
        cowatch,
        ranker,
        day=int(d.max()) + 1,
        hist_len=cfg.hist_len,
    )
    return rec, rep


def fit_ranker(
    cat: Catalogue,
    us: UserSide,
    vs: VideoSide,
    users: pd.DataFrame,
    log_df: pd.DataFrame,
    cfg: FitConfig,
) -> tuple[RankingModel, dict[str, Any]]:
    """Train on the days before the last logged day; validate on that day."""
    u = log_df["user_id"].to_numpy(np.int64)
    v = log_df["video_id"].to_numpy(np.int64)
    d = log_df["day"].to_numpy(np.int64)
    X = ranking_frame(
        cat, us, vs, Demographics.of(users, u), u, v, d, log_df["position"].to_numpy()
    )
    y = log_df["click"].to_numpy(np.int64)
    w = log_df["watch_min"].to_numpy(np.float64)
    last = int(d.max())
    tr, va = d < last, d == last
    model = RankingModel(n_estimators=cfg.ranker_trees, random_state=cfg.seed)
    model.fit(X[tr], y[tr], w[tr])
    p, _ = model.predict(X[va])
    info: dict[str, Any] = {
        "train_rows": int(tr.sum()),
        "validation_rows": int(va.sum()),
        "validation_day": last,
        "click_auc": mm.roc_auc(y[va], p),
        "click_nce": mm.normalized_cross_entropy(y[va], p),
        "features": list(X.columns),
    }
    c = va & (y == 1)
    if c.any():
        pred_w = np.maximum(model.watch_.predict(X[c]), 0.0)
        info["watch_mae_min"] = float(np.mean(np.abs(pred_w - w[c])))
        info["watch_mae_baseline_min"] = float(np.mean(np.abs(w[tr & (y == 1)].mean() - w[c])))
    if "p_true" in log_df:
        info["click_nce_oracle"] = mm.normalized_cross_entropy(
            y[va], log_df["p_true"].to_numpy()[va]
        )
    return model, info
