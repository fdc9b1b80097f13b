"""The collaborative learners under the MovieLens protocol: each tuned on a validation split
carved from the training part, refitted on the whole training part, then measured on the test
part once.

Models: ALS and BPR (``implicit``), the Mult-VAE and LightGCN (PyTorch). Each has a small grid
(:data:`GRIDS`): every point is fitted on three quarters of the training ratings (the same
per-item 75/25 protocol, its own named stream) and scored by nDCG@10 on the rest; the best point
is refitted on all the training ratings. The test part is never looked at before the final
measurement. ``train_seconds`` is the final fit; ``tuning_seconds`` the grid.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from mlsd.systems.video_rec.model_cf import CFSource
from mlsd.systems.video_rec.model_lightgcn import LightGcnSource
from mlsd.systems.video_rec.model_mf import AlsSource, BprSource
from mlsd.systems.video_rec.model_vae import VaeSource

log = logging.getLogger(__name__)

#: The learners of the protocol by result name: (class, fixed params, grid of the tuned ones).
GRIDS: dict[str, tuple[type[CFSource], dict[str, Any], list[dict[str, Any]]]] = {
    "als": (
        AlsSource,
        {"iterations": 15, "alpha": 10.0},
        [{"factors": f, "l2": r} for f in (64, 128) for r in (30.0, 100.0)],
    ),
    "bpr": (
        BprSource,
        {"iterations": 100, "learning_rate": 0.01},
        [{"factors": f, "l2": r} for f in (64, 128) for r in (0.02, 0.05)],
    ),
    "mult_vae": (
        VaeSource,
        {"hidden": 600, "epochs": 60, "dropout": 0.5},
        [{"latent": d, "beta": b} for d in (64, 200) for b in (0.2, 1.0)],
    ),
    "lightgcn": (
        LightGcnSource,
        {"dim": 64, "layers": 3, "epochs": 40},
        [{"l2": r} for r in (1e-3, 1e-2)],
    ),
}
CF_MODELS = tuple(GRIDS)


@dataclass(frozen=True)
class Split:
    """Training pairs and the users to score: their seen items and held-out truth."""

    user: np.ndarray  # training pairs
    item: np.ndarray
    users: np.ndarray  # evaluated users, sorted
    seen: list[np.ndarray]  # per evaluated user
    truth: dict[int, set[int]]

    @classmethod
    def of(cls, train: pd.DataFrame, held_out: pd.DataFrame) -> Split:
        tu, ti = train["user"].to_numpy(np.int64), train["item"].to_numpy(np.int64)
        truth: dict[int, set[int]] = {}
        for u, i in zip(held_out["user"].to_numpy(), held_out["item"].to_numpy(), strict=True):
            truth.setdefault(int(u), set()).add(int(i))
        users = np.asarray(sorted(truth), dtype=np.int64)
        by_user = pd.Series(ti).groupby(tu).apply(np.asarray).to_dict()
        seen = [by_user.get(int(u), np.zeros(0, np.int64)) for u in users]
        return cls(tu, ti, users, seen, truth)


def model_lists(model: CFSource, split: Split, k: int) -> dict[int, list[int]]:
    """Top ``k`` unseen items per evaluated user, from the user's learned parameters."""
    recs: dict[int, list[int]] = {}
    for s in range(0, len(split.users), 512):
        block = split.users[s : s + 512]
        lists = model.recommend(split.seen[s : s + 512], k, users=block)
        recs.update(zip(block.tolist(), [lst.tolist() for lst in lists], strict=True))
    return recs


def tune_and_fit(
    name: str,
    train: pd.DataFrame,
    test_split: Split,
    n_items: int,
    seed: int,
    evaluate: Callable[[dict[int, list[int]], dict[int, set[int]]], dict[str, float]],
    carve: Callable[[pd.DataFrame], tuple[np.ndarray, np.ndarray]],
    k: int,
) -> dict[str, Any]:
    """Grid on the validation split carved from ``train``, refit, measure on the test part."""
    cls, fixed, grid = GRIDS[name]
    fit_mask, val_mask = carve(train)
    val = Split.of(train[fit_mask], train[val_mask])
    t0 = time.perf_counter()
    scores = []
    for point in grid:
        m = cls(**fixed, **point, seed=seed).fit(
            val.user, val.item, np.ones(len(val.user)), n_items
        )
        scores.append(evaluate(model_lists(m, val, k), val.truth)["ndcg@10"])
        log.info("%s %s: validation nDCG@10 %.4f", name, point, scores[-1])
    tuning = time.perf_counter() - t0
    best = grid[int(np.argmax(scores))]
    t0 = time.perf_counter()
    model = cls(**fixed, **best, seed=seed).fit(
        test_split.user, test_split.item, np.ones(len(test_split.user)), n_items
    )
    train_seconds = time.perf_counter() - t0
    return {
        **evaluate(model_lists(model, test_split, k), test_split.truth),
        "train_seconds": train_seconds,
        "tuning_seconds": tuning,
        "params": {**fixed, **best},
        "validation_ndcg@10": {_label(p): s for p, s in zip(grid, scores, strict=True)},
    }


def _label(point: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in point.items())


def run_cf_models(
    names: Sequence[str],
    train: pd.DataFrame,
    test: pd.DataFrame,
    n_items: int,
    seed: int,
    evaluate: Callable[[dict[int, list[int]], dict[int, set[int]]], dict[str, float]],
    carve: Callable[[pd.DataFrame], tuple[np.ndarray, np.ndarray]],
    k: int,
) -> dict[str, dict[str, Any]]:
    """Every named learner's test figures, tuning record and seconds."""
    unknown = sorted(set(names) - set(GRIDS))
    if unknown:
        raise ValueError(f"unknown models {unknown}; known: {', '.join(GRIDS)}")
    test_split = Split.of(train, test)
    return {n: tune_and_fit(n, train, test_split, n_items, seed, evaluate, carve, k) for n in names}
