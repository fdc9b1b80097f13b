"""Step 4 for similar listings: the models side by side (book ch. 9, "Model development").

Every model answers one question, :meth:`ListingSimilarity.similarity`: how similar is each
listing to each query listing (``(Q, N)`` scores; the evaluation and the server keep the
query's region only). The line-up:

* :class:`RegionPopular`: the most clicked listings (the region is applied by the caller);
  the same list for every query.
* :class:`CoOccurrence`: item-to-item counts of listings clicked in one session (popularity
  breaks the ties, so a listing without co-clicks still gets a list).
* :class:`AttributeSimilarity`: the cosine of the listings' attribute vectors
  (:func:`~.features.attribute_matrix`: price, capacity, place, type, amenities).
* :class:`SkipGramEmbeddings` (:mod:`.model_skipgram`): the chapter's model, skip-gram with
  negative sampling over click sessions, with the booked listing as a global context and hard
  negatives from the region; new listings get :func:`cold_start_vectors`.

The base class and the ranking within a region are in :mod:`.model_similarity`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Self

import numpy as np
import pandas as pd
from scipy import sparse

from mlsd.contracts import ModelCase
from mlsd.rng import rng
from mlsd.systems.similar_listings.features import Sessions, attribute_matrix
from mlsd.systems.similar_listings.model_similarity import (
    ListingSimilarity,
    rank_of,
    region_top_k,
)
from mlsd.systems.similar_listings.model_skipgram import SkipGramEmbeddings, cold_start_vectors


class RegionPopular(ListingSimilarity):
    """The most clicked listings; the caller restricts them to the query's region."""

    def __init__(self, booking_weight: float = 5.0) -> None:
        self.booking_weight = booking_weight

    def fit(self, sessions: Sessions, n_listings: int) -> Self:
        pop = np.bincount(sessions.items, minlength=n_listings).astype(np.float64)
        bk = sessions.booked[sessions.booked >= 0]
        pop += self.booking_weight * np.bincount(bk, minlength=n_listings)
        self.popularity_ = np.log1p(pop[:n_listings])
        return self

    def similarity(self, query: np.ndarray) -> np.ndarray:
        return np.broadcast_to(self.popularity_, (len(query), len(self.popularity_))).copy()


class CoOccurrence(ListingSimilarity):
    """Item-to-item: how many sessions clicked both listings; popularity breaks ties."""

    def __init__(self, tie_weight: float = 1e-3) -> None:
        self.tie_weight = tie_weight

    def fit(self, sessions: Sessions, n_listings: int) -> Self:
        sess_of = np.repeat(np.arange(len(sessions)), np.diff(sessions.offsets))
        x = sparse.csr_matrix(
            (np.ones(len(sess_of)), (sess_of, sessions.items)),
            shape=(max(len(sessions), 1), n_listings),
        )
        x.data[:] = 1.0
        x.sum_duplicates()
        x.data[:] = 1.0
        co = (x.T @ x).tocsr()
        co.setdiag(0.0)
        co.eliminate_zeros()
        self.co_ = co.astype(np.float32)
        self.popularity_ = np.log1p(np.asarray(x.sum(axis=0)).ravel())
        return self

    def similarity(self, query: np.ndarray) -> np.ndarray:
        dense = np.asarray(self.co_[np.asarray(query)].todense(), dtype=np.float64)
        out: np.ndarray = dense + self.tie_weight * self.popularity_[None, :]
        return out


class AttributeSimilarity(ListingSimilarity):
    """Content similarity: the cosine of the listings' attribute vectors."""

    def __init__(self) -> None:
        pass

    def fit(self, listings: pd.DataFrame) -> Self:
        self.vectors_ = attribute_matrix(listings)
        return self

    def vectors(self) -> np.ndarray:
        return self.vectors_

    def similarity(self, query: np.ndarray) -> np.ndarray:
        out: np.ndarray = self.vectors_[np.asarray(query)] @ self.vectors_.T
        return out


class OracleSimilarity(ListingSimilarity):
    """The world's true similarity as a model (the oracle's line; never served)."""

    def __init__(self) -> None:
        pass

    def fit(self, world: Any) -> Self:
        self.world_ = world
        return self

    def similarity(self, query: np.ndarray) -> np.ndarray:
        out: np.ndarray = np.nan_to_num(self.world_.true_similarity(query), neginf=-1e9)
        return out


# ---- the contract ------------------------------------------------------------------------------
def _tiny_data() -> tuple[Sessions, pd.DataFrame]:
    r = rng(0, "similar-listings/contract/data")
    n = 40
    listings = pd.DataFrame(
        {
            "region": np.arange(n) % 2,
            "type": np.array(["entire_home", "private_room"])[(np.arange(n) // 2) % 2],
            "capacity": r.integers(1, 6, n),
            "price": r.uniform(40, 200, n).round(2),
            "amenities": r.integers(0, 256, n),
            "lat": r.normal(size=n),
            "lon": r.normal(size=n),
        }
    )
    lens = r.integers(2, 6, 60)
    items = np.concatenate([(r.integers(0, 15, k) * 2 + (s % 2)) for s, k in enumerate(lens)])
    booked = np.where(r.random(60) < 0.5, items[np.cumsum(lens) - 1], -1)
    sessions = Sessions(
        np.r_[0, np.cumsum(lens)].astype(np.int64),
        items.astype(np.int64),
        booked.astype(np.int64),
        np.zeros(60, np.int64),
    )
    return sessions, listings


def _case(name: str, make: Any, fit: Any) -> ModelCase:
    return ModelCase(
        name=name,
        kind="retriever",
        make=make,
        data=_tiny_data,
        fit=fit,
        output=lambda m, d: np.asarray(m.similarity(np.arange(len(d[1]))), dtype=np.float64),
        shape=lambda m, d: (len(d[1]), len(d[1])),
        save=lambda m, path: m.save(Path(path)),
        load=lambda path: ListingSimilarity.load(Path(path)),
        atol=1e-6,
    )


def contract_cases() -> list[ModelCase]:
    """The skip-gram (with both refinements) and the three baselines, on tiny seeded sessions."""
    return [
        _case(
            "similar_listings_skipgram",
            lambda seed: SkipGramEmbeddings(
                dim=8, epochs=1, batch_size=64, region_negatives=2, booked_global=True, seed=seed
            ),
            lambda m, d: m.fit(d[0], d[1]),
        ),
        _case(
            "similar_listings_skipgram_dot",
            lambda seed: SkipGramEmbeddings(
                dim=8,
                epochs=1,
                batch_size=64,
                negatives=0,
                region_negatives=3,
                booked_global=True,
                scoring="dot",
                output_bias=True,
                seed=seed,
            ),
            lambda m, d: m.fit(d[0], d[1]),
        ),
        _case(
            "similar_listings_region_popular",
            lambda seed: RegionPopular(),
            lambda m, d: m.fit(d[0], len(d[1])),
        ),
        _case(
            "similar_listings_cooccurrence",
            lambda seed: CoOccurrence(),
            lambda m, d: m.fit(d[0], len(d[1])),
        ),
        _case(
            "similar_listings_attributes",
            lambda seed: AttributeSimilarity(),
            lambda m, d: m.fit(d[1]),
        ),
    ]


__all__ = [
    "AttributeSimilarity",
    "CoOccurrence",
    "ListingSimilarity",
    "OracleSimilarity",
    "RegionPopular",
    "SkipGramEmbeddings",
    "cold_start_vectors",
    "contract_cases",
    "rank_of",
    "region_top_k",
]
