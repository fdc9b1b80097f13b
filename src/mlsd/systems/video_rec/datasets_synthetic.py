"""A synthetic ratings file in MovieLens-100k's layout and shape, for benchmarks and tests.

The real ``u.data`` is not shipped (its licence asks for it to be downloaded from GroupLens), so
the benchmark of the MovieLens protocol runs on a file written here with ml-100k's shape: 943
users, 1,682 items, 100,000 ratings, every user with at least 20 ratings and a long tail of heavy
users, item popularity long-tailed (a few items rated by hundreds, most by a handful). Who rates
what comes from latent tastes: user and item vectors in a few dimensions plus item popularity,
so the data carries collaborative structure that popularity alone does not capture; every user's
items are drawn without replacement by the Gumbel top-k trick. Figures measured on it are
labelled synthetic: they rank models, they do not stand in for the real file's numbers.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mlsd.artifacts import atomic_path
from mlsd.rng import rng

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SyntheticShape:
    users: int = 943
    items: int = 1682
    ratings: int = 100_000
    min_per_user: int = 20
    max_per_user: int = 737
    taste_dims: int = 8
    popularity_exponent: float = 0.8  # Zipf: item of rank r is picked ∝ r^-exponent
    taste_strength: float = 1.5  # how much tastes, rather than popularity, decide


ML100K = SyntheticShape()


def synthetic_ratings(shape: SyntheticShape, seed: int) -> np.ndarray:
    """``(ratings, 4)`` int64 rows ``user item rating timestamp`` (1-based ids, like u.data)."""
    if (
        shape.ratings > shape.users * min(shape.items, shape.max_per_user)
        or shape.ratings < shape.users * shape.min_per_user
    ):
        raise ValueError(
            f"{shape}: ratings must be between users × min_per_user and users × max_per_user"
        )
    g = rng(seed, "video-rec/synthetic-movielens")
    # per-user counts: the minimum plus a lognormal share of the rest, capped like ml-100k's
    extra = g.lognormal(0.0, 1.0, shape.users)
    cap = min(shape.items, shape.max_per_user)
    budget = shape.ratings - shape.users * shape.min_per_user
    counts = shape.min_per_user + np.floor(extra / extra.sum() * budget).astype(np.int64)
    counts = np.minimum(counts, cap)
    while (short := shape.ratings - int(counts.sum())) > 0:  # the capped and rounded remainder
        room = np.flatnonzero(counts < cap)
        counts[g.choice(room, min(short, len(room)), replace=False)] += 1
    # long-tailed popularity and latent tastes
    log_pop = (
        -shape.popularity_exponent
        * np.log(np.arange(1, shape.items + 1))[g.permutation(shape.items)]
    )
    tu = g.normal(size=(shape.users, shape.taste_dims)) / np.sqrt(shape.taste_dims)
    ti = g.normal(size=(shape.items, shape.taste_dims))
    rows = []
    for u in range(shape.users):
        logit = log_pop + shape.taste_strength * (ti @ tu[u])  # (items,)
        pick = np.argsort(-(logit + g.gumbel(size=shape.items)))[: counts[u]]
        affinity = ti[pick] @ tu[u]
        rating = np.clip(np.round(3.2 + affinity + g.normal(0.0, 0.7, len(pick))), 1, 5)
        ts = 874_724_710 + np.sort(g.integers(0, 18_000_000, len(pick)))
        rows.append(np.column_stack([np.full(len(pick), u + 1), pick + 1, rating, ts]))
    return np.vstack(rows).astype(np.int64)


def write_synthetic_movielens(
    directory: Path, shape: SyntheticShape = ML100K, seed: int = 0
) -> Path:
    """Write ``directory/u.data`` (tab-separated, like ml-100k's), atomically; return its path."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    r = synthetic_ratings(shape, seed)
    path = directory / "u.data"
    with atomic_path(path) as tmp:
        np.savetxt(tmp, r, fmt="%d", delimiter="\t")
    log.info(
        "wrote %d synthetic ratings (%d users, %d items) to %s",
        len(r),
        shape.users,
        shape.items,
        path,
    )
    return path
