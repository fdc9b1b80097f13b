"""Step 4 for video recommendation, model development: fit every stage of the recommender.

The log has one row per impression (user_id, video_id, day, position, click, watch_min,
watch_frac); users and videos are tables whose row index is the id. The stages, each in its own
module: the candidate sources (``model_candidates``: popular and co-watch), the two-tower
network (``model_two_tower``), trained on the clicks with each click's point-in-time watch
history and searched through an ANN index, and the ranking models (``model_ranking``), trained
on the impressions before the last logged day and validated on that day (a time split).
:func:`contract_cases` puts every one of them under the contract of :mod:`mlsd.contracts`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mlsd.contracts import ModelCase, click_frame
from mlsd.report import Blueprint
from mlsd.rng import rng
from mlsd.systems.video_rec.features import Catalogue, UserSide, VideoSide
from mlsd.systems.video_rec.model_candidates import CoWatchSource, PopularSource
from mlsd.systems.video_rec.model_cf import CFSource
from mlsd.systems.video_rec.model_ease import EaseSource
from mlsd.systems.video_rec.model_lightgcn import LightGcnSource
from mlsd.systems.video_rec.model_mf import AlsSource, BprSource
from mlsd.systems.video_rec.model_ranking import RankingModel, fit_ranker
from mlsd.systems.video_rec.model_two_tower import (
    TowerInputs,
    TwoTowerRetriever,
    tower_training_pairs,
)
from mlsd.systems.video_rec.model_vae import VaeSource
from mlsd.systems.video_rec.serving import Recommender, build_ann_index
from mlsd.systems.video_rec.world import VideoRecWorld
from mlsd.systems.video_rec.world_entities import CATEGORIES
from mlsd.text import CachedEncoder, make_encoder

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


@dataclass(frozen=True)
class FitReport:
    """What fitting the stages measured: seconds per stage and each model's own figures."""

    seconds: dict[str, float]
    tower_pairs: int
    tower_losses: list[float]
    ranking: dict[str, Any] = field(default_factory=dict)  # empty without a ranker
    click_nce_oracle: float | None = None  # the world's true probabilities on the same day


def fit_recommender(
    cat: Catalogue,
    users: pd.DataFrame,
    log_df: pd.DataFrame,
    cfg: FitConfig,
    with_ranker: bool = True,
) -> tuple[Recommender, FitReport]:
    """Fit the sources, the two towers, the ANN index and the ranking models."""
    seconds: dict[str, float] = {}
    u, v, d = (log_df[c].to_numpy().astype(np.int64) for c in ("user_id", "video_id", "day"))
    click = log_df["click"].to_numpy()
    t0 = time.perf_counter()
    us = UserSide.build(cat, u, v, d, click, cat.n_creators)
    frac = log_df["watch_frac"].to_numpy() if "watch_frac" in log_df else click.astype(float)
    vs = VideoSide.build(v, d, click, frac)
    t1 = time.perf_counter()
    popular = PopularSource().fit(v, d, click, len(cat.videos))
    t2 = time.perf_counter()
    cowatch = CoWatchSource().fit(u, v, click, len(cat.videos))
    t3 = time.perf_counter()
    seconds |= {"point_in_time_indexes": t1 - t0, "popular": t2 - t1, "cowatch": t3 - t2}

    x, pos = tower_training_pairs(us, users, log_df, cfg.hist_len)
    tower = TwoTowerRetriever(
        dim=cfg.tower_dim,
        out_dim=cfg.tower_dim,
        epochs=cfg.tower_epochs,
        logq=cfg.logq,
        seed=cfg.seed,
    ).fit(cat, x, pos, len(users))
    seconds["two_tower"] = tower.train_seconds_

    t0 = time.perf_counter()
    index = build_ann_index(tower.video_embeddings(cat), cfg.index_kind, cfg.seed)
    seconds["ann_index"] = time.perf_counter() - t0

    ranker: RankingModel | None = None
    info: dict[str, Any] = {}
    oracle: float | None = None
    if with_ranker:
        ranker, info, oracle = fit_ranker(cat, us, vs, users, log_df, cfg.ranker_trees, cfg.seed)
        seconds["ranking"] = ranker.train_seconds_
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
    return rec, FitReport(seconds, int(click.astype(bool).sum()), tower.losses_, info, oracle)


# ---- step 4 --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ModelsResult:
    """The fitted recommender (as of the day after the log), the cached title encoder it reads
    titles with, and what fitting measured."""

    rec: Recommender
    encoder: CachedEncoder
    config: FitConfig
    report: FitReport
    encoder_name: str
    titles_encoded: int
    encoder_seconds: float

    def metrics(self) -> dict[str, Any]:
        rep, s = self.report, self.report.seconds
        ranking = {k: v for k, v in rep.ranking.items() if k != "features"}
        out: dict[str, Any] = {
            "models": {
                "title_encoder": {
                    "name": self.encoder_name,
                    "titles_encoded": self.titles_encoded,
                    "seconds": self.encoder_seconds,
                },
                "popular": {"train_seconds": s["popular"]},
                "cowatch": {"train_seconds": s["cowatch"]},
                "two_tower": {
                    "pairs": rep.tower_pairs,
                    "losses": rep.tower_losses,
                    "train_seconds": s["two_tower"],
                },
                "ann_index": {"kind": self.config.index_kind, "build_seconds": s["ann_index"]},
                "ranking": {**ranking, "train_seconds": s.get("ranking")},
            },
            "features": {
                "ranking": rep.ranking.get("features", []),
                "index_seconds": s["point_in_time_indexes"],
            },
        }
        if rep.click_nce_oracle is not None:
            out["oracle"] = {"click_nce": rep.click_nce_oracle}
        return out


def compute_models(
    world: VideoRecWorld, log_df: pd.DataFrame, seed: int, title_encoder: str
) -> ModelsResult:
    """Encode the titles, then fit every stage on the world's log."""
    encoder = make_encoder(title_encoder)
    cat = Catalogue(
        world.videos.copy(), encoder.encode(world.videos["title"].tolist()), list(CATEGORIES)
    )
    cfg = FitConfig(seed=seed)
    rec, rep = fit_recommender(cat, world.users.copy(), log_df, cfg)
    return ModelsResult(
        rec, encoder, cfg, rep, encoder.name, encoder.encoded, round(encoder.seconds, 3)
    )


def report_models(bp: Blueprint, result: ModelsResult) -> None:
    rep, rinfo = result.report, result.report.ranking
    bp.section("Model development")
    bp.text(
        f"**Title embeddings.** {result.titles_encoded:,} distinct titles encoded once with "
        f"{result.encoder_name} in {result.encoder_seconds:.1f} s and cached (titles repeat). "
        f"**Two-tower.** {rep.tower_pairs:,} (user, clicked video) pairs; in-batch "
        "negatives with the logQ correction; id dropout so that both towers work for new users "
        "and new videos. Loss by epoch: "
        + ", ".join(f"{x:.3f}" for x in rep.tower_losses)
        + ". **Other sources.** Trending (decayed clicks) and co-watch (item-to-item counts). "
        f"**Ranking.** LightGBM P(click) on {rinfo['train_rows']:,} impressions (early stopping "
        f"on a held-out tenth: {rinfo['trees']} trees) and LightGBM "
        "minutes-given-click on the clicked ones; score = P(click) × E[minutes | click]. "
        f"{len(rinfo['features'])} features: " + ", ".join(f"`{f}`" for f in rinfo["features"])
    )
    bp.table(
        ["ranking model, validated on the last logged day", "value", "oracle / baseline"],
        [
            ["click ROC-AUC", rinfo["click_auc"], "—"],
            ["click NCE (lower is better)", rinfo["click_nce"], rep.click_nce_oracle],
            [
                "watch minutes MAE (given a click)",
                rinfo.get("watch_mae_min"),
                rinfo.get("watch_mae_baseline_min"),
            ],
        ],
        caption="NCE of the world's true probabilities is the oracle; the watch-time baseline "
        "predicts the mean minutes of the training clicks.",
    )
    bp.table(
        ["stage", "seconds"],
        [[k, v] for k, v in rep.seconds.items()],
        caption="Training time per stage.",
    )


# ---- the contract ----------------------------------------------------------------------------
ContractCatalogue = tuple[Catalogue, TowerInputs, np.ndarray, int, TowerInputs]


def _tower_data() -> ContractCatalogue:
    """60 videos in 4 categories, 80 users who click videos near their favourite category."""
    r = rng(0, "contract/video-rec/two-tower")
    n_videos, n_users, cats = 60, 80, ["a", "b", "c", "d"]
    category = r.integers(0, 4, n_videos)
    videos = pd.DataFrame(
        {
            "video_id": np.arange(n_videos),
            "creator_id": r.integers(0, 10, n_videos),
            "category": [cats[c] for c in category],
            "duration_min": r.uniform(1.0, 20.0, n_videos),
            "upload_day": np.zeros(n_videos, np.int64),
            "title": [f"video {i}" for i in range(n_videos)],
        }
    )
    emb = r.normal(size=(n_videos, 384)) + 2.0 * np.eye(4, 384)[category]
    cat = Catalogue(
        videos, (emb / np.linalg.norm(emb, axis=1, keepdims=True)).astype(np.float32), cats
    )
    fav = r.integers(0, 4, n_users)
    pairs = 600
    user = r.integers(0, n_users, pairs)
    same = [np.flatnonzero(category == fav[u]) for u in user]
    pos = np.asarray([r.choice(s) if len(s) else 0 for s in same], dtype=np.int64)
    history = np.where(r.random((pairs, 5)) < 0.7, pos[r.permutation(pairs)][:, None], -1)

    def inputs(u: np.ndarray, hist: np.ndarray) -> TowerInputs:
        n = len(u)
        return TowerInputs(
            u + 1, hist, r.integers(0, 6, n), r.integers(0, 7, n), np.ones(n, np.int64)
        )

    test_users = np.arange(20)
    return cat, inputs(user, history), pos, n_users, inputs(test_users, np.full((20, 5), -1))


def _tower_output(model: TwoTowerRetriever, d: ContractCatalogue) -> np.ndarray:
    return np.vstack([model.video_embeddings(d[0]), model.user_embeddings(d[0], d[4])])


RankerData = tuple[pd.DataFrame, np.ndarray, np.ndarray, pd.DataFrame]


def _ranker_data() -> RankerData:
    """:func:`mlsd.contracts.click_frame` with watch minutes after each click."""
    X, y = click_frame(2000, 0)
    X_test, _ = click_frame(500, 1)
    minutes = np.where(y == 1, rng(0, "contract/video-rec/watch").gamma(2.0, 3.0, len(y)), 0.0)
    return X, y, minutes + 2.0 * (X["d_x1"].to_numpy() > 0) * y, X_test


LogData = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, int, list[np.ndarray]]


def _log_data() -> LogData:
    """A tiny click log: (user, video, day, click, n_videos, histories to score)."""
    r = rng(0, "contract/video-rec/log")
    n = 3000
    user, video, day = r.integers(0, 100, n), r.integers(0, 50, n), r.integers(0, 7, n)
    click = (r.random(n) < 0.2 + 0.4 * (video % 5 == user % 5)).astype(np.int8)
    histories = [r.integers(0, 50, k) for k in (0, 1, 3, 8, 20)]
    return user, video, day, click, 50, histories


def contract_cases() -> list[ModelCase]:
    """The two-tower (a retriever), the ranking model (a ranker) and the popular, co-watch,
    EASE, ALS, BPR, Mult-VAE and LightGCN candidate sources (retrievers), on tiny seeded data
    (the learners' scores: two fitted users, one unknown user folded in from its history)."""
    return [
        ModelCase(
            name="video_rec_two_tower",
            kind="retriever",
            make=lambda seed: TwoTowerRetriever(
                dim=8, out_dim=8, epochs=2, batch_size=64, seed=seed
            ),
            data=_tower_data,
            fit=lambda m, d: m.fit(d[0], d[1], d[2], d[3]),
            output=_tower_output,
            shape=lambda m, d: (len(d[0].videos) + len(d[4].user), 8),
            save=lambda m, path: m.save(path),
            load=TwoTowerRetriever.load,
        ),
        ModelCase(
            name="video_rec_ranker",
            kind="ranker",
            make=lambda seed: RankingModel(n_estimators=40, num_leaves=7, random_state=seed),
            data=_ranker_data,
            fit=lambda m, d: m.fit(d[0], d[1], d[2]),
            output=lambda m, d: np.column_stack(m.predict(d[3])),
            shape=lambda m, d: (len(d[3]), 2),
            save=lambda m, path: m.save(path),
            load=RankingModel.load,
        ),
        ModelCase(
            name="video_rec_popular",
            kind="retriever",
            make=lambda seed: PopularSource(decay=0.7),
            data=_log_data,
            fit=lambda m, d: m.fit(d[1], d[2], d[3], d[4]),
            output=lambda m, d: np.asarray(m.score_),
            shape=lambda m, d: (d[4],),
            save=lambda m, path: m.save(path),
            load=PopularSource.load,
        ),
        ModelCase(
            name="video_rec_cowatch",
            kind="retriever",
            make=lambda seed: CoWatchSource(history_len=10),
            data=_log_data,
            fit=lambda m, d: m.fit(d[0], d[1], d[3], d[4]),
            output=lambda m, d: m.scores(d[5]).toarray(),
            shape=lambda m, d: (len(d[5]), d[4]),
            save=lambda m, path: m.save(path),
            load=CoWatchSource.load,
        ),
        ModelCase(
            name="video_rec_ease",
            kind="retriever",
            make=lambda seed: EaseSource(l2=10.0),
            data=_log_data,
            fit=lambda m, d: m.fit(d[0], d[1], d[3], d[4]),
            output=lambda m, d: m.scores(d[5]),
            shape=lambda m, d: (len(d[5]), d[4]),
            save=lambda m, path: m.save(path),
            load=EaseSource.load,
        ),
        *(
            ModelCase(
                name=f"video_rec_{name}",
                kind="retriever",
                make=make,
                data=_log_data,
                fit=lambda m, d: m.fit(d[0], d[1], d[3], d[4]),
                output=lambda m, d: m.scores(d[5][1:], users=np.array([0, 1, 500, -1])),
                shape=lambda m, d: (len(d[5]) - 1, d[4]),
                save=lambda m, path: m.save(path),
                load=load,
            )
            for name, make, load in _CF_CASES
        ),
    ]


#: The collaborative learners, tiny: (case name, make(seed), load).
_CF_CASES: list[tuple[str, Callable[[int], CFSource], Callable[[Path], CFSource]]] = [
    ("als", lambda seed: AlsSource(factors=8, iterations=5, seed=seed), AlsSource.load),
    ("bpr", lambda seed: BprSource(factors=8, iterations=20, seed=seed), BprSource.load),
    (
        "mult_vae",
        lambda seed: VaeSource(hidden=16, latent=4, epochs=3, batch_size=32, seed=seed),
        VaeSource.load,
    ),
    (
        "lightgcn",
        lambda seed: LightGcnSource(dim=8, layers=2, epochs=3, batch_size=512, seed=seed),
        LightGcnSource.load,
    ),
]


__all__ = [
    "AlsSource",
    "BprSource",
    "CoWatchSource",
    "EaseSource",
    "FitConfig",
    "LightGcnSource",
    "PopularSource",
    "RankingModel",
    "TwoTowerRetriever",
    "VaeSource",
    "contract_cases",
    "fit_recommender",
]
