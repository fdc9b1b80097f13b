"""How the skip-gram's settings were chosen: on validation days, never on the test days.

``python -m mlsd.systems.similar_listings.model_tuning --scale small --seed 0 [--only N,M]``
plays the world, holds out the last ``VALIDATION_DAYS`` days *before* the test days, trains
the baselines and every skip-gram of :data:`GRID` on the days before them and prints the
validation figures (booked-listing rank, HR@10 of the booked listing and of the next click).
The test days are never read.

What it found on the small world, seed 0 (validation days 10-11, trained on days 0-9; the
columns: booked-listing rank (lower is better), booked HR@10, next-click HR@10):

====================================================  ======  =====  =====
co-occurrence                                           65.2  0.283  0.491
region popularity                                       76.4  0.197  0.126
oracle (the world's true style + price similarity)      79.8  0.185  0.464
skip-gram, cosine of the vectors, plain                 83.9  0.200  0.449
skip-gram, cosine, + booked global context              83.0  0.201  0.445
skip-gram, cosine, + 3 region negatives (5 random)      78.9  0.211  0.469
skip-gram, dot (centre . context), plain                89.4  0.136  0.306
skip-gram, dot, + booked                                87.3  0.143  0.310
skip-gram, dot, + 3 region negatives (5 random)         71.3  0.241  0.443
skip-gram, dot, + booked, 10 region negatives only      68.1  0.256  0.456
... + output bias (GRID row 3, the served model)        64.2  0.257  0.457
... + output bias, 10 epochs (GRID row 4)               63.7  0.261  0.466
... + output bias, window 30: whole sessions (row 5)    64.3  0.255  0.417
... + output bias, learning rate 0.05 (row 6)           67.5  0.233  0.395
... + output bias, 64 dimensions (row 8)                65.3  0.249  0.443
... + output bias, 5 random + 5 region negatives (9)    67.5  0.242  0.447
... + output bias, 20 region negatives (row 10)         64.5  0.261  0.460
gensim 4.4 Word2Vec, plain, 5 epochs, cosine / dot     116.7 / 90.8
gensim 4.4 Word2Vec, plain, 20 epochs, cosine / dot     93.0 / 83.0  (next HR 0.488)
====================================================  ======  =====  =====

Why: the booked listing is the clicked listing of highest utility (taste, price against the
budget, *quality*), so which listing gets booked is partly a property of the listing that
counts keep and a similarity of two listings does not: the world's true similarity ranks it
behind popularity. The cosine of the vectors normalises that away; the model's own score with
unigram negatives is a PMI, which divides popularity out. With negatives drawn uniformly from
the region the score's optimum is ``log P(candidate | viewed)`` within the region, the quantity
co-occurrence counts estimate, and the output bias learns the candidate's log-popularity.
That setting edges co-occurrence on the booked rank and stays behind it on both hit rates: on
this world the sessions are short (7 clicks) among ~360 listings a region with ~60 training
clicks per listing, so co-occurrence observes most pairs directly and low-rank smoothing has
little to add. Fewer data does not change that: trained on 2 days (12.5 clicks per listing),
co-occurrence ranks the booked listing at 65.1 (it leans on popularity) and the skip-gram at
67.9. gensim trains plain skip-gram faster but has no hook for the booked global context,
region negatives or the bias; our implementation is better at equal settings, so it stays.
What the world would need for the skip-gram to win clearly (not measured here): bookings
driven by the session's own intent rather than by a listing's appeal to everyone (the quality
and price terms of the utility), and co-clicks much sparser than the listings (many more
listings a region than clicks a listing), so that listings are related only through others,
which counts cannot see and embeddings can. No other row beats row 3 by more than half a
rank (row 7, 16 dimensions, was not run); 10 epochs or 20 region negatives gain that half rank
at twice the cost, so the run keeps row 3.
"""

from __future__ import annotations

import argparse
import logging
import time
from typing import Any

import numpy as np
import pandas as pd

from mlsd.systems.similar_listings.evaluation import K, build_cases, score_model
from mlsd.systems.similar_listings.features import Sessions, sessions_from_log
from mlsd.systems.similar_listings.model import (
    CoOccurrence,
    ListingSimilarity,
    OracleSimilarity,
    RegionPopular,
)
from mlsd.systems.similar_listings.model_skipgram import SkipGramEmbeddings
from mlsd.systems.similar_listings.world import SimilarListingsWorld

log = logging.getLogger(__name__)

VALIDATION_DAYS = 2
BASE: dict[str, Any] = dict(
    dim=32,
    window=4,
    epochs=5,
    lr=0.02,
    batch_size=1024,
    booked_global=True,
    negatives=0,
    region_negatives=10,
    scoring="dot",
    output_bias=True,
)
GRID: list[dict[str, Any]] = [
    dict(scoring="cosine", negatives=5, region_negatives=3, output_bias=False),
    dict(negatives=5, region_negatives=3, output_bias=False),
    dict(output_bias=False),
    dict(),
    dict(epochs=10),
    dict(window=30),
    dict(lr=0.05),
    dict(dim=16),
    dict(dim=64),
    dict(negatives=5, region_negatives=5),
    dict(region_negatives=20),
]


def validation_split(
    sessions: Sessions, test_day: int, days: int = VALIDATION_DAYS
) -> tuple[Sessions, Sessions]:
    """Train on the days before ``test_day - days``; validate on the ``days`` days before the
    test days (the test days are dropped)."""
    cut = test_day - days
    return sessions.subset(sessions.day < cut), sessions.subset(
        (sessions.day >= cut) & (sessions.day < test_day)
    )


def figures(
    model: ListingSimilarity, train: Sessions, valid: Sessions, region: np.ndarray, seed: int
) -> dict[str, Any]:
    trained = np.bincount(train.items, minlength=len(region))[: len(region)] > 0
    s = score_model(model, build_cases(valid, seed), region, ~trained)
    return {
        "booked_rank": s["booked_rank"],
        f"booked_hr@{K}": s[f"booked_hr@{K}"],
        f"next_hr@{K}": s[f"next_hr@{K}"],
        "cold_booked_rank": s["cold_start"]["booked_rank"],
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", default="small")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--only", default="", help="comma-separated rows of GRID")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    world = SimilarListingsWorld(args.scale, args.seed)
    sessions = sessions_from_log(pd.concat(list(world.iter_log()), ignore_index=True))
    listings = world.listings.drop(columns=["quality"]).reset_index(drop=True)
    region = listings["region"].to_numpy()
    train, valid = validation_split(sessions, world.config.n_days - world.config.test_days)
    n = len(listings)
    rows: list[tuple[str, ListingSimilarity]] = [
        ("cooccurrence", CoOccurrence().fit(train, n)),
        ("region_popular", RegionPopular().fit(train, n)),
        ("oracle", OracleSimilarity().fit(world)),
    ]
    for name, model in rows:
        log.info("%s %s", name, figures(model, train, valid, region, args.seed))
    only = {int(x) for x in args.only.split(",") if x}
    for i, change in enumerate(GRID):
        if only and i not in only:
            continue
        t0 = time.perf_counter()
        m = SkipGramEmbeddings(**(BASE | change), seed=args.seed).fit(train, listings)
        log.info(
            "grid %d %s (%.0f s): %s",
            i,
            change,
            time.perf_counter() - t0,
            figures(m, train, valid, region, args.seed),
        )


if __name__ == "__main__":
    main()
