"""Similar listings, step 6's trade-off table: which similarity model a latency budget buys.

Every model the serving step could serve is timed on the query path (the similar listings of
one viewed listing, with the user's filters: a price cap and a minimum capacity) for k = 10,
100 and 1,000 results, and the rule "the best validation figure whose p99 meets the budget"
is re-made per budget (:mod:`mlsd.tradeoffs`):

* ``region_popular`` and ``cooccurrence``: the model's score row for the listing, kept to its
  region, the top ``k x`` :data:`~.serving.OVERFETCH` by ``argpartition``, then the filters
  (widening while fewer than ``k`` pass), as the server would for a model without vectors;
* ``attributes`` (content) and the served skip-gram: the scorer's own path
  (:meth:`.serving.SimilarListings.similar`) over one index per region, exact search for
  both, and HNSW for the skip-gram as well (regions under 256 listings stay exact).

Quality is each model's **validation** figure, as :mod:`.model_tuning` measures it: the
models refitted on the training days before the last ``VALIDATION_DAYS`` (the run's
settings), scored on those days (booked-listing rank on the world, lower is better; next-click
HR@10 on a click log, which has no bookings). The test days are never read here. The HNSW row
shares the exact skip-gram's figure (its recall against exact is in the serving section).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import partial
from itertools import cycle

import numpy as np
import pandas as pd

from mlsd.index import faiss_threads
from mlsd.latency import Timer, machine_load, time_calls
from mlsd.rng import rng
from mlsd.systems.similar_listings.features import Sessions
from mlsd.systems.similar_listings.model import (
    AttributeSimilarity,
    CoOccurrence,
    ListingSimilarity,
    RegionPopular,
    SkipGramEmbeddings,
)
from mlsd.systems.similar_listings.model_tuning import figures, validation_split
from mlsd.systems.similar_listings.serving import (
    OVERFETCH,
    Filters,
    ListingVectors,
    SimilarListings,
    build_indexes,
)
from mlsd.tradeoffs import BudgetSweep, measure_by_candidates, sweep_budgets

log = logging.getLogger(__name__)

SWEEP_COUNTS = (10, 100, 1000)
SWEEP_REQUESTS = {"tiny": 5, "small": 25, "medium": 40, "large": 40}
SWEEP_ROUNDS = {"tiny": 2, "small": 3, "medium": 3, "large": 3}
WARMUP = 2


def _validation_models(
    models: dict[str, ListingSimilarity], train: Sessions, listings: pd.DataFrame
) -> dict[str, ListingSimilarity]:
    """The swept models refitted on ``train`` (the validation split's training days)."""
    n = len(listings)
    out: dict[str, ListingSimilarity] = {}
    for name, model in models.items():
        if isinstance(model, RegionPopular):
            out[name] = RegionPopular(model.booking_weight).fit(train, n)
        elif isinstance(model, CoOccurrence):
            out[name] = CoOccurrence(model.tie_weight).fit(train, n)
        elif isinstance(model, AttributeSimilarity):
            out[name] = model  # no training: the listings' attributes only
        elif isinstance(model, SkipGramEmbeddings):
            out[name] = SkipGramEmbeddings(**model.get_params()).fit(train, listings)
    return out


def validation_figures(
    models: dict[str, ListingSimilarity],
    train: Sessions,
    listings: pd.DataFrame,
    split_day: int,
    seed: int,
    metric: str,
) -> dict[str, float]:
    """Each model's ``metric`` on the validation days (refitted on the days before them)."""
    fit_on, valid = validation_split(train, split_day)
    region = listings["region"].to_numpy()
    out = {}
    for name, m in _validation_models(models, fit_on, listings).items():
        value = figures(m, fit_on, valid, region, seed)[metric]
        if value is not None:
            out[name] = float(value)
    return out


def _scored_path(
    model: ListingSimilarity,
    listings: pd.DataFrame,
    region: np.ndarray,
    row: int,
    k: int,
    filters: Filters,
) -> list[int]:
    """A model without vectors served: its score row, the region, top-k x overfetch, filters."""
    scores = model.similarity(np.array([row]))[0]
    cand = np.flatnonzero(region == region[row])
    cand = cand[cand != row]
    fetch = k * OVERFETCH
    while True:
        take = min(fetch, len(cand))
        top = cand[np.argpartition(-scores[cand], take - 1)[:take]] if take else cand[:0]
        top = top[np.argsort(-scores[top], kind="stable")]
        kept = top[filters.keep(listings.iloc[top])]
        if len(kept) >= k or take >= len(cand):
            return [int(i) for i in kept[:k]]
        fetch *= OVERFETCH


def compute_budget_sweep(
    models: dict[str, ListingSimilarity],
    chosen: str,
    train: Sessions,
    listings: pd.DataFrame,
    split_day: int,
    *,
    world: bool,
    scale: str,
    seed: int,
) -> BudgetSweep | None:
    """Popularity, co-occurrence, content and the served skip-gram (exact and HNSW) at
    k = 10, 100 and 1,000; the rule per budget on the validation figures (None: the validation
    days hold no case, so no model has a figure)."""
    swept = {
        name: m
        for name, m in models.items()
        if name in ("region_popular", "cooccurrence", "attributes", chosen)
    }
    metric, higher = ("booked_rank", False) if world else ("next_hr@10", True)
    val = validation_figures(swept, train, listings, split_day, seed, metric)
    ids = listings["listing_id"].to_numpy(np.int64)
    region = listings["region"].to_numpy()
    filters = Filters(
        max_price=float(listings["price"].quantile(0.9)), min_capacity=2, listing_type=None
    )
    n = SWEEP_REQUESTS[scale]
    rows = rng(seed, "similar-listings/tradeoffs/requests").choice(len(ids), n + WARMUP)
    paths: dict[str, Callable[[int, int], object]] = {}
    accuracy: dict[str, float] = {}
    for name, m in swept.items():
        if name not in val:
            continue
        vectors = m.vectors()
        if vectors is None:
            paths[name] = partial(_scored_path, m, listings, region, filters=filters)
            accuracy[name] = val[name]
            continue
        lv = ListingVectors(ids, vectors, name, m.query_vectors())
        kinds = ("flat", "hnsw") if name == chosen else ("flat",)
        for kind in kinds:
            label = f"{name} ({'exact' if kind == 'flat' else 'HNSW'})"
            with faiss_threads(1):
                indexes = build_indexes(vectors, ids, region, kind)
            if kind == "hnsw" and all(ix.kind != "hnsw" for ix in indexes.values()):
                continue  # every region under 256 listings: the "HNSW" row would be exact
            scorer = SimilarListings(lv, listings, indexes)

            def via_index(row: int, k: int, scorer: SimilarListings = scorer) -> object:
                return scorer.similar([int(ids[row])], k, filters)

            paths[label] = via_index
            accuracy[label] = val[name]

    if not paths:
        log.warning("tradeoffs: no model has a validation %s; nothing to sweep", metric)
        return None

    def timer_for(label: str, k: int) -> Timer:
        calls = cycle(rows)
        path = paths[label]
        return partial(time_calls, lambda: path(int(next(calls)), k), n, WARMUP)

    before = machine_load()
    with faiss_threads(1):
        lat = measure_by_candidates(timer_for, list(paths), SWEEP_COUNTS, SWEEP_ROUNDS[scale])
    log.info("tradeoffs: swept %s at k=%s", list(paths), SWEEP_COUNTS)
    return sweep_budgets(
        accuracy,
        lat,
        metric="booked rank" if world else "next-click HR@10",
        higher_is_better=higher,
        measured="similar listings for one viewed listing with a price cap and a minimum "
        "capacity: score row + region top-k for the models without vectors, the scorer's "
        "index search + filters for the others; validation = refitted on the days before the "
        "validation days; the HNSW row (absent where every region is under 256 listings and "
        "so served exactly) shares the exact skip-gram's figure",
        rounds=SWEEP_ROUNDS[scale],
        load={"before": before, "after": machine_load()},
        unit="results (k)",
    )


__all__ = ["compute_budget_sweep", "validation_figures"]
