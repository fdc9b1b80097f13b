"""The daily retrain, simulated on the tiny world: daily against a model trained once."""

from __future__ import annotations

import numpy as np
import pandas as pd

from mlsd.systems.similar_listings.features import sessions_from_log
from mlsd.systems.similar_listings.monitoring_retrain import daily_retrain_curve
from mlsd.systems.similar_listings.world import SimilarListingsConfig, SimilarListingsWorld


def test_the_curve_has_a_row_per_day_and_the_first_day_is_the_same_model() -> None:
    cfg = SimilarListingsConfig(n_regions=2, listings_per_region=40, n_days=5)
    world = SimilarListingsWorld("tiny", 0, cfg)
    sessions = sessions_from_log(pd.concat(list(world.iter_log()), ignore_index=True))
    listings = world.listings.reset_index(drop=True)
    params = dict(dim=8, window=2, epochs=1, batch_size=256, region_negatives=2)
    curve = daily_retrain_curve(sessions, listings, params, last_day=4, seed=0, days=3)
    rows = curve.rows
    assert curve.static_trained_through == 1
    assert [r["eval_day"] for r in rows] == [2, 3, 4]
    assert [r["new_listings_since_static"] for r in rows] == [4, 8, 12]
    first = rows[0]
    assert first["static_booked_rank"] == first["daily_booked_rank"]
    for r in rows:
        assert 1.0 <= r["daily_booked_rank"] <= 40 and 0.0 <= r["daily_next_hr@10"] <= 1.0
        assert r["retrain_seconds"] >= 0
    assert np.isfinite(curve.mean("daily_booked_rank"))
    yesterday, today = curve.last_models
    assert (yesterday.n_listings_, today.n_listings_) == (len(listings) - 8, len(listings) - 4)
