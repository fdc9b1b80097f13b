"""How the skip-gram's settings were chosen: on validation days, never on the test days.

``python -m mlsd.systems.similar_listings.model_tuning --scale small --seed 0 [--only N,M]``
plays the world, holds out the last ``VALIDATION_DAYS`` days *before* the test days, trains
the baselines and every skip-gram of :data:`GRID` on the days before them and prints the
validation figures (booked-listing rank, HR@10 of the booked listing and of the next click).
The test days are never read.

What it found on the small world, seed 0 (validation days 10-11, trained on days 0-9; the
columns: booked-listing rank (lower is better), booked HR@10, next-click HR@10). The world as
it is now (first clicks follow the user's taste, the next click the listing just viewed, the
booked listing the user's fit; ~20 training clicks per listing, see :mod:`.world`), 16
dimensions, window 2, 10 epochs, dot score with the output bias:

====================================================  ======  =====  =====
co-occurrence                                           52.1  0.360  0.508
region popularity                                       78.9  0.167  0.127
oracle (the world's true style + price similarity)      48.6  0.274  0.542
skip-gram, plain (5 unigram negatives)                  55.1  0.251  0.413
skip-gram, + booked global context                      53.7  0.225  0.398
skip-gram, + 10 region negatives (hard negatives)       46.7  0.326  0.540
skip-gram, both refinements (the served model)          43.9  0.339  0.533
====================================================  ======  =====  =====

The dimension, window and epochs were chosen on the validation days of a half-size world (4
regions, 420 sessions a day: the same listings a region and clicks a listing), both
refinements on, figures as above. Dimensions (window 2, 10 epochs): 32 / 16 = 44.5 / 0.409 /
0.530 and 42.2 / 0.422 / 0.540 with the old booking rule; 16 / 8 = 41.7 / 0.393 / 0.539 and
42.2 / 0.422 / 0.531 with the new one (16 kept: the better next HR). Windows (32 dimensions,
15 epochs): 1 = 45.3 / 0.373 / 0.537, 4 = 43.9 / 0.392 / 0.498, 8 = 44.4 / 0.349 / 0.462
(window 2 kept as the compromise: 1 wins the next click, 4 the booked listing). 15 epochs
against 5 (window 4): 43.9 vs 41.5 booked rank, no gain. Repeating the booked pair 3 or 6
times (``booked_weight``, window 1) lost 4 and 6 ranks against once (44.2). Only the dot
score with negatives from the region beats co-occurrence: with unigram negatives the score
is a PMI that divides popularity out, and random negatives are mostly other regions'
listings, which the region filter removes anyway.

The world before (kept here as the diagnosis): first clicks nearly uniform over the region
(``SEARCH_TEMP`` 0.7), the next click as much the user's taste as the listing just viewed
(``INTENT_PREV`` 1.5), the booked listing chosen by everyone's appeal (quality) as much as by
fit, and ~60 training clicks per listing of a 300-listing region. There co-occurrence counts
saw most pairs directly and the oracle itself lost to them (booked rank 79.8 vs 65.2, next HR
0.464 vs 0.491), so no model of the listings' latent similarity could win: the best skip-gram
(32 dimensions, window 4, 5 epochs) reached 64.2 / 0.257 / 0.457. A truncated SVD of the
pair counts (ranks 8-64) did not beat the raw counts either. gensim's Word2Vec trains plain
skip-gram faster but has no hook for the booked global context, region negatives or the bias.
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
    dim=16,
    window=2,
    epochs=10,
    lr=0.02,
    batch_size=1024,
    booked_global=True,
    negatives=0,
    region_negatives=10,
    scoring="dot",
    output_bias=True,
)
GRID: list[dict[str, Any]] = [
    dict(booked_global=False, negatives=5, region_negatives=0),
    dict(negatives=5, region_negatives=0),
    dict(booked_global=False),
    dict(),
    dict(dim=8),
    dict(dim=32),
    dict(window=1),
    dict(window=4),
    dict(epochs=5),
    dict(epochs=15),
    dict(booked_weight=3),
    dict(scoring="cosine", output_bias=False),
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
