"""The scorer: region-only neighbours, filters, unknown ids, artifacts as data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlsd.artifacts import verify_manifest
from mlsd.serving import ServingArtifactError
from mlsd.settings import Settings
from mlsd.systems.similar_listings.serving import (
    Filters,
    ListingVectors,
    UnknownListingError,
    build_indexes,
    load_scorer,
    save_serving_artifacts,
)
from mlsd.systems.similar_listings.serving_availability import (
    Availability,
    Stay,
    simulated_calendar,
)


def _artifacts(tmp_path: Path, calendar: pd.DataFrame | None = None, n: int = 12) -> Path:
    listings = pd.DataFrame(
        {
            "listing_id": np.arange(n, dtype=np.int64) + 100,
            "region": np.arange(n) % 2,
            "type": ["entire_home", "private_room"] * (n // 2),
            "capacity": np.arange(n) % 4 + 1,
            "price": np.arange(n) * 10.0 + 50,
        }
    )
    angle = np.arange(n) * 0.2
    vectors = np.stack([np.cos(angle), np.sin(angle)], 1).astype(np.float32)
    ids = listings["listing_id"].to_numpy()
    indexes = build_indexes(vectors, ids, listings["region"].to_numpy())
    save_serving_artifacts(
        tmp_path / "artifacts", ListingVectors(ids, vectors, "m"), listings, indexes, calendar
    )
    return tmp_path


def test_similar_listings_come_from_the_region_nearest_first(tmp_path: Path) -> None:
    scorer = load_scorer(_artifacts(tmp_path), Settings())
    res = scorer.similar([100], 3)
    assert res.ids == [102, 104, 106] and res.region == 0
    assert res.scores == sorted(res.scores, reverse=True)
    assert min(res.lookup_ms, res.search_ms, res.rerank_ms) >= 0
    session = scorer.similar([100, 104], 2)
    assert 100 not in session.ids and 104 not in session.ids


def test_filters_re_rank_after_the_search(tmp_path: Path) -> None:
    scorer = load_scorer(_artifacts(tmp_path), Settings())
    res = scorer.similar([100], 5, Filters(max_price=120.0))
    assert res.ids == [102, 104, 106]
    res = scorer.similar([101], 5, Filters(min_capacity=3, listing_type="private_room"))
    assert all(scorer.describe(i)["capacity"] >= 3 for i in res.ids) and res.ids


def test_unknown_listings_are_refused(tmp_path: Path) -> None:
    scorer = load_scorer(_artifacts(tmp_path), Settings())
    with pytest.raises(UnknownListingError, match="999"):
        scorer.similar([999], 3)


def test_a_changed_artifact_is_refused(tmp_path: Path) -> None:
    run = _artifacts(tmp_path)
    files = verify_manifest(run / "artifacts")
    assert "listings.parquet" in files and any(f.startswith("index/1/") for f in files)
    (run / "artifacts" / "serving.json").write_text("{}")
    with pytest.raises(ServingArtifactError, match="hash mismatch"):
        load_scorer(run, Settings())


def test_a_listing_booked_on_a_night_of_the_stay_is_never_returned(tmp_path: Path) -> None:
    calendar = pd.DataFrame({"listing_id": [102, 104, 104], "night": [5, 9, 10]})
    scorer = load_scorer(_artifacts(tmp_path, calendar), Settings())
    assert scorer.similar([100], 3).ids == [102, 104, 106]
    assert scorer.similar([100], 3, Filters(stay=Stay(4, 6))).ids == [104, 106, 108]
    assert scorer.similar([100], 3, Filters(stay=Stay(6, 9))).ids == [102, 104, 106]
    assert scorer.similar([100], 3, Filters(stay=Stay(8, 12))).ids == [102, 106, 108]
    assert scorer.similar([100], 3, Filters(stay=Stay(3, 12))).ids == [106, 108, 110]


def test_the_search_widens_until_k_available_listings_are_found(tmp_path: Path) -> None:
    n = 400
    calendar = pd.DataFrame({"listing_id": np.arange(2, 300, 2) + 100, "night": 7})
    scorer = load_scorer(_artifacts(tmp_path, calendar, n=n), Settings())
    res = scorer.similar([100], 5, Filters(stay=Stay(7, 8)))
    assert len(res.ids) == 5 and not set(res.ids) & set(calendar["listing_id"])
    everything = scorer.similar([100], n, Filters(stay=Stay(7, 8)))
    assert len(everything.ids) == n // 2 - 1 - 149


def test_every_returned_listing_is_available_on_a_simulated_calendar(tmp_path: Path) -> None:
    ids = np.arange(12) + 100
    calendar = simulated_calendar(ids, 20, 30, seed=0)
    assert set(calendar["night"]) <= set(range(20, 50))
    availability = Availability(calendar)
    scorer = load_scorer(_artifacts(tmp_path, calendar), Settings())
    for first in range(20, 48):
        stay = Stay(first, first + 3)
        for q in ids:
            res = scorer.similar([int(q)], 5, Filters(stay=stay))
            assert availability.available(np.array(res.ids, np.int64), stay).all()


def test_the_simulated_calendar_blocks_about_the_drawn_occupancy() -> None:
    ids = np.arange(300)
    calendar = simulated_calendar(ids, 0, 60, seed=1)
    share = calendar.groupby("listing_id").size().reindex(ids, fill_value=0) / 60
    assert 0.3 < share.mean() < 0.55 and share.max() <= 1.0
    assert calendar.equals(simulated_calendar(ids, 0, 60, seed=1))
    with pytest.raises(ValueError, match="after"):
        Stay(5, 5)
