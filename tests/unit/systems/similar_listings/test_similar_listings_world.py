"""The similar-listings world: deterministic, sessions in one region, ground truth."""

from __future__ import annotations

import numpy as np
import pandas as pd

from mlsd.systems.similar_listings.world import (
    LOG_COLUMNS,
    SimilarListingsConfig,
    SimilarListingsWorld,
)

CFG = SimilarListingsConfig(
    n_regions=2, listings_per_region=30, n_users=50, n_days=3, sessions_per_day=40
)


def _log(seed: int = 0) -> tuple[SimilarListingsWorld, pd.DataFrame]:
    w = SimilarListingsWorld("tiny", seed, CFG)
    return w, pd.concat(list(w.iter_log()), ignore_index=True)


def test_the_world_is_deterministic_by_seed_and_differs_across_seeds() -> None:
    (_, a), (_, b), (_, c) = _log(0), _log(0), _log(1)
    pd.testing.assert_frame_equal(a, b)
    assert not a.equals(c)
    assert tuple(a.columns) == LOG_COLUMNS


def test_sessions_stay_in_one_region_and_book_a_clicked_listing() -> None:
    w, log = _log()
    region = w.listings["region"].to_numpy()
    for _, s in log.groupby("session_id"):
        assert (region[s["listing_id"]] == s["region"].iloc[0]).all()
        assert s["booked_id"].nunique() == 1
        b = int(s["booked_id"].iloc[0])
        assert b == -1 or b in set(s["listing_id"])
        assert (w.listings["created_day"].to_numpy()[s["listing_id"]] <= s["day"].iloc[0]).all()
    booked = log.groupby("session_id")["booked_id"].first()
    assert 0.05 < (booked >= 0).mean() < 0.9


def test_new_listings_appear_every_day() -> None:
    w, _ = _log()
    created = w.listings["created_day"].value_counts().sort_index()
    assert list(created.index) == [0, 1, 2]
    assert created[1] == CFG.n_regions * CFG.new_listings_per_day


def test_true_similarity_is_within_the_region_only() -> None:
    w, _ = _log()
    sim = w.true_similarity(np.array([0, 1]))
    region = w.listings["region"].to_numpy()
    assert sim.shape == (2, w.n_listings)
    assert np.isneginf(sim[0, region != region[0]]).all()
    assert np.isfinite(sim[0, region == region[0]]).all()
    assert sim[0, 0] == sim[0, region == region[0]].max()  # a listing is most like itself
