"""The skip-gram learns session structure; the cold start; the region filter."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from mlsd.rng import rng
from mlsd.systems.similar_listings.features import Sessions
from mlsd.systems.similar_listings.model import (
    CoOccurrence,
    RegionPopular,
    SkipGramEmbeddings,
    cold_start_vectors,
    rank_of,
    region_top_k,
)


def _two_groups() -> tuple[Sessions, pd.DataFrame]:
    """40 listings in one region; sessions click within group A (0-19) or B (20-39) only."""
    r = rng(0, "test/similar-listings/groups")
    n, lens = 40, r.integers(3, 7, 400)
    group = r.integers(0, 2, 400)
    items = np.concatenate(
        [g * 20 + r.integers(0, 20, k) for g, k in zip(group, lens, strict=True)]
    )
    listings = pd.DataFrame(
        {"region": np.zeros(n, np.int64), "type": "entire_home", "price": np.arange(n) + 50.0}
    )
    sessions = Sessions(
        np.r_[0, np.cumsum(lens)].astype(np.int64),
        items.astype(np.int64),
        np.full(400, -1, np.int64),
        np.zeros(400, np.int64),
    )
    return sessions, listings


def test_skipgram_puts_listings_clicked_together_close() -> None:
    sessions, listings = _two_groups()
    m = SkipGramEmbeddings(dim=8, epochs=3, batch_size=128, window=2).fit(sessions, listings)
    top = region_top_k(m, np.arange(40), listings["region"].to_numpy(), 5)
    same = (top // 20) == (np.arange(40)[:, None] // 20)
    assert same.mean() > 0.9
    np.testing.assert_allclose(np.linalg.norm(m.vectors(), axis=1), 1.0, atol=1e-5)


def test_cold_start_is_the_mean_of_the_nearest_trained_listings() -> None:
    listings = pd.DataFrame(
        {
            "region": [0, 0, 0, 1],
            "type": ["a", "a", "b", "a"],
            "price": [100.0, 110.0, 105.0, 100.0],
        }
    )
    v = np.eye(4, dtype=np.float32)
    trained = np.array([True, False, True, True])
    out = cold_start_vectors(v, trained, listings, k=1)
    np.testing.assert_allclose(out[1], v[0])  # same region and type beats the closer price
    np.testing.assert_allclose(out[[0, 2, 3]], v[[0, 2, 3]])


def test_region_top_k_and_rank_exclude_the_query_and_other_regions() -> None:
    sessions, _ = _two_groups()
    region = np.r_[np.zeros(20, np.int64), np.ones(20, np.int64)]
    pop = RegionPopular().fit(sessions, 40)
    top = region_top_k(pop, np.array([0, 25]), region, 30)
    assert (top[0][top[0] >= 0] < 20).all() and 0 not in top[0]
    assert (top[1][top[1] >= 0] >= 20).all() and (top[0] == -1).sum() == 11
    ranks = rank_of(pop, np.array([0]), np.array([top[0, 0]]), region)
    assert ranks[0] == 1.0
    co = CoOccurrence().fit(sessions, 40)
    assert co.similarity(np.array([0]))[0, 25] < co.similarity(np.array([0]))[0, 5]


def test_the_dot_score_keeps_what_is_clicked_most_and_serves_asymmetric_vectors() -> None:
    sessions, listings = _two_groups()
    items = sessions.items.copy()
    starts = sessions.offsets[:-1]
    group_a = items[starts] < 20
    items[starts[group_a]] = 0  # listing 0 opens every session of group A
    sessions = Sessions(sessions.offsets, items, sessions.booked, sessions.day)
    kw: dict[str, Any] = dict(
        dim=8, epochs=4, batch_size=128, window=3, negatives=0, region_negatives=5
    )
    dot = SkipGramEmbeddings(scoring="dot", output_bias=True, **kw).fit(sessions, listings)
    q, v = dot.query_vectors(), dot.vectors()
    assert q.shape == v.shape == (40, 10) and (q[:, -2] == 1.0).all() and (q[:, -1] == 0).all()
    np.testing.assert_allclose(dot.similarity(np.array([3])), q[[3]] @ v.T, rtol=1e-5)
    norms = np.linalg.norm(v, axis=1)
    np.testing.assert_allclose(norms, norms.max(), rtol=1e-4)  # equal norms: HNSW-friendly
    region = listings["region"].to_numpy()
    top = region_top_k(dot, np.arange(1, 20), region, 1)[:, 0]
    assert (top == 0).mean() > 0.9  # the popular listing of the group comes first
    same = region_top_k(dot, np.arange(20, 40), region, 5) >= 20
    assert same.mean() > 0.9


def test_new_listings_get_the_cold_start_vectors_without_retraining() -> None:
    sessions, listings = _two_groups()
    group_a = np.maximum.reduceat(sessions.items, sessions.offsets[:-1]) < 20
    m = SkipGramEmbeddings(dim=8, epochs=1, batch_size=128)
    m.fit(sessions.subset(group_a), listings.iloc[:30])
    assert m.n_listings_ == 30
    grown = m.with_listings(listings)
    assert grown.n_listings_ == 40 and not grown.trained_[30:].any()
    np.testing.assert_allclose(grown.vectors()[:30], m.vectors(), atol=1e-6)
    expected = cold_start_vectors(
        np.r_[m.vectors(), np.zeros((10, 8), np.float32)],
        np.r_[m.trained_, np.zeros(10, bool)],
        listings,
    )
    np.testing.assert_allclose(grown.vectors(), expected, atol=1e-6)
    assert m.with_listings(listings.iloc[:12]).similarity(np.array([0])).shape == (1, 12)
