"""Step 5 on MovieLens: the top-k protocol of public recommender benchmarks.

Popular, co-watch (item-to-item), EASE (closed-form item-to-item, its ``l2`` chosen on a
validation split carved from the training part) and the two-tower model under the protocol of
microsoft/recommenders' benchmark notebook, so numbers are comparable: a random 75/25 split
stratified per item (seed 42), every held-out interaction relevant, items seen in training
removed from the lists, k = 10; MAP, nDCG@10, Precision@10, Recall@10 per model. Ratings carry
no impressions, so the ranking, online and serving steps are skipped.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from mlsd import metrics as mm
from mlsd.data import DataError
from mlsd.report import Blueprint
from mlsd.rng import rng
from mlsd.systems.video_rec.datasets import MovieLens, load_movielens
from mlsd.systems.video_rec.features import Catalogue, UserSide
from mlsd.systems.video_rec.model import FitConfig
from mlsd.systems.video_rec.model_candidates import CoWatchSource, PopularSource
from mlsd.systems.video_rec.model_ease import EaseSource
from mlsd.systems.video_rec.model_two_tower import TowerInputs, TwoTowerRetriever
from mlsd.text import CachedEncoder, make_encoder

log = logging.getLogger(__name__)

SEED = 42
K = 10
SKIPPED = (
    ("ranking", "ratings carry no impressions, so no click/watch labels"),
    ("online", "an A/B test needs a world to act in"),
    ("serving", "the served stack needs the ranking stage"),
    (
        "monitoring",
        "a ratings file has no world to watch: no later days to compare with the training "
        "window and no oracle to measure quality decay against",
    ),
)


def stratified_split(
    ratings: pd.DataFrame,
    ratio: float = 0.75,
    seed: int = SEED,
    stream: str = "video-rec/movielens-split",
) -> tuple[np.ndarray, np.ndarray]:
    """Boolean (train, test) masks: per item, a random ``ratio`` of its ratings go to train."""
    key = rng(seed, stream).random(len(ratings))
    item = ratings["item"].to_numpy()
    order = np.lexsort((key, item))
    counts = np.bincount(item)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    rank = np.empty(len(item), dtype=np.int64)
    rank[order] = np.arange(len(item)) - starts[item[order]]
    n_train = np.maximum(np.round(counts * ratio), 1)
    train = rank < n_train[item]
    return train, ~train


def evaluate_lists(recs: dict[int, list[int]], truth: dict[int, set[int]]) -> dict[str, float]:
    """MAP, nDCG@10, Precision@10, Recall@10 with every held-out item relevant."""
    graded = {u: {i: 1.0 for i in t} for u, t in truth.items()}
    return {
        "map": mm.mean_over_users(mm.average_precision_at_k, recs, truth, K),
        "ndcg@10": mm.mean_over_users(mm.ndcg_at_k, recs, graded, K),
        "precision@10": mm.mean_over_users(mm.precision_at_k, recs, truth, K),
        "recall@10": mm.mean_over_users(mm.recall_at_k, recs, truth, K),
    }


def top_k_unseen(scores: np.ndarray, seen: list[np.ndarray], k: int = K) -> list[list[int]]:
    """Top ``k`` items per row of ``scores`` (users × items) with the seen items removed."""
    s = scores.astype(np.float64, copy=True)
    for i, items in enumerate(seen):
        s[i, items] = -np.inf
    top = np.argpartition(-s, min(k, s.shape[1] - 1), axis=1)[:, :k]
    out = []
    for i, row in enumerate(top):
        row = row[np.argsort(-s[i, row], kind="stable")]
        out.append([int(x) for x in row if np.isfinite(s[i, x])])
    return out


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
    if not test.any():
        raise DataError(
            ml.source,
            f"too few ratings to split: {len(r)} {'rating' if len(r) == 1 else 'ratings'}, "
            "none held out for testing (the split holds out a quarter of each item's ratings, "
            "so some item needs 3 or more)",
        )
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

    t0 = time.perf_counter()
    l2, grid = choose_ease_l2(tr, n_items)
    ease = EaseSource(l2=l2).fit(tu, ti, ones, n_items)
    t_ease = time.perf_counter() - t0
    out["ease"] = {
        **evaluate_lists(ease_lists(ease, users, seen), truth),
        "train_seconds": t_ease,
        "l2": l2,
        "validation_ndcg@10": grid,
    }

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


#: microsoft/recommenders' README benchmark table, MovieLens 100k (MAP, nDCG@10, P@10, R@10).
PUBLISHED_ML100K = {
    "BiVAE (cornac)": (0.146126, 0.475077, 0.411771, 0.219145),
    "BPR (cornac)": (0.132478, 0.441997, 0.388229, 0.212522),
    "LightGCN": (0.088526, 0.419846, 0.379626, 0.144336),
}
EASE_L2 = (10.0, 50.0, 100.0, 250.0, 500.0, 1000.0)


def ease_lists(ease: EaseSource, users: np.ndarray, seen: list[np.ndarray]) -> dict[int, list[int]]:
    """Top ``K`` unseen items per user from EASE's scores, a block of users at a time."""
    recs: dict[int, list[int]] = {}
    for s in range(0, len(users), 512):
        lists = top_k_unseen(ease.scores(seen[s : s + 512]), seen[s : s + 512])
        recs.update(zip(users[s : s + 512].tolist(), lists, strict=True))
    return recs


def choose_ease_l2(train: pd.DataFrame, n_items: int) -> tuple[float, dict[str, float]]:
    """EASE's ``l2`` by nDCG@10 on a validation split carved from the training ratings only
    (the same per-item 75/25 protocol, its own stream); the test part is never looked at."""
    fit, val = stratified_split(train, stream="video-rec/movielens-validation-split")
    fu, fi = train["user"].to_numpy(np.int64)[fit], train["item"].to_numpy(np.int64)[fit]
    truth: dict[int, set[int]] = {}
    for u, i in zip(train["user"].to_numpy()[val], train["item"].to_numpy()[val], strict=True):
        truth.setdefault(int(u), set()).add(int(i))
    users = np.asarray(sorted(truth), dtype=np.int64)
    by_user = pd.Series(fi).groupby(fu).apply(np.asarray).to_dict()
    seen = [by_user.get(int(u), np.zeros(0, np.int64)) for u in users]
    ones = np.ones(len(fu), np.int8)
    grid = {}
    for l2 in EASE_L2:
        ease = EaseSource(l2=l2).fit(fu, fi, ones, n_items)
        grid[f"{l2:g}"] = evaluate_lists(ease_lists(ease, users, seen), truth)["ndcg@10"]
    best = max(grid, key=lambda k: grid[k])
    log.info("EASE: l2=%s chosen on validation (nDCG@10 %.4f)", best, grid[best])
    return float(best), grid


@dataclass(frozen=True)
class MovieLensResult:
    """The file read and every model's figures under the protocol."""

    source: str
    layout: str
    rows: int
    has_metadata: bool
    split: dict[str, int]
    models: dict[str, dict[str, Any]]  # popular, co_watch, ease, two_tower

    def metrics(self) -> dict[str, Any]:
        return {
            "data": {
                "source": "file",
                "format": self.layout,
                "path": self.source,
                "rows": self.rows,
                "metadata": self.has_metadata,
            },
            "models": self.models,
            "movielens": {"split": self.split},
        }


def compute_movielens(data: str, title_encoder: str, seed: int) -> MovieLensResult:
    """Read ``movielens:PATH`` and run the protocol on it."""
    fmt, _, path = data.partition(":")
    if fmt != "movielens" or not path:
        raise DataError(data, "expected --data movielens:PATH")
    ml = load_movielens(path)
    res = run_protocol(ml, make_encoder(title_encoder), seed)
    split = res.pop("split")
    return MovieLensResult(ml.source, ml.layout, len(ml.ratings), ml.has_metadata, split, res)


def report_movielens(bp: Blueprint, result: MovieLensResult) -> None:
    bp.section("MovieLens: the public benchmark protocol")
    sp = result.split
    bp.text(
        f"Read {result.rows:,} ratings from `{result.source}` ({result.layout} layout"
        f"{', with item metadata' if result.has_metadata else ''}). Random 75/25 split "
        f"stratified per item (seed {SEED}): {sp['train']:,} train, {sp['test']:,} test; every "
        "held-out interaction is relevant; items seen in training are removed; k = 10; "
        f"{sp['users_evaluated']:,} users evaluated."
    )
    bp.table(
        ["model", "MAP", "nDCG@10", "Precision@10", "Recall@10", "train s"],
        [
            [n, r["map"], r["ndcg@10"], r["precision@10"], r["recall@10"], r["train_seconds"]]
            for n, r in result.models.items()
        ],
    )
    ease = result.models.get("ease")
    if ease:
        grid = ", ".join(f"{k}: {v:.4f}" for k, v in ease["validation_ndcg@10"].items())
        bp.text(
            f"EASE's `l2` = {ease['l2']:g}, chosen by nDCG@10 on a validation split carved from "
            f"the training part (the same per-item 75/25 protocol; the test part unseen): {grid}."
        )
    if result.layout == "ml-100k":
        bp.table(
            ["published model (not re-run here)", "MAP", "nDCG@10", "Precision@10", "Recall@10"],
            [[n, *v] for n, v in PUBLISHED_ML100K.items()],
            caption="MovieLens 100k figures published by microsoft/recommenders (README "
            "benchmark table, 75/25 split, k = 10): the numbers to beat on the same file",
        )
