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


def _artifacts(tmp_path: Path) -> Path:
    n = 12
    listings = pd.DataFrame(
        {
            "listing_id": np.arange(n, dtype=np.int64) + 100,
            "region": np.arange(n) % 2,
            "type": ["entire_home", "private_room"] * 6,
            "capacity": np.arange(n) % 4 + 1,
            "price": np.arange(n) * 10.0 + 50,
        }
    )
    angle = np.arange(n) * 0.2
    vectors = np.stack([np.cos(angle), np.sin(angle)], 1).astype(np.float32)
    ids = listings["listing_id"].to_numpy()
    indexes = build_indexes(vectors, ids, listings["region"].to_numpy())
    save_serving_artifacts(
        tmp_path / "artifacts", ListingVectors(ids, vectors, "m"), listings, indexes
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
