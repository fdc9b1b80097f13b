"""Point-in-time indexes and the catalogue's cached title projection."""

from __future__ import annotations

import numpy as np
import pandas as pd

from mlsd.systems.video_rec.features import Catalogue, EventIndex, UserSide
from mlsd.systems.video_rec.world import VideoRecWorld


def test_event_index_counts_only_strictly_earlier_days() -> None:
    idx = EventIndex(np.array([1, 1, 1, 2]), np.array([0, 2, 2, 0]), np.array([1.0, 2.0, 3.0, 9]))
    got = idx.before(np.array([1, 1, 1, 2, 3]), np.array([0, 2, 3, 1, 5]))
    assert got.tolist() == [0.0, 1.0, 6.0, 9.0, 0.0]


def test_title_projection_is_cached_per_basis_and_exact(
    world_log: tuple[VideoRecWorld, pd.DataFrame, Catalogue],
) -> None:
    _, log, cat = world_log
    u, v, d = (log[c].to_numpy().astype(np.int64) for c in ("user_id", "video_id", "day"))
    us = UserSide.build(cat, u, v, d, log["click"].to_numpy(), cat.n_creators)
    basis = us.content_basis
    proj = cat.title_projection(basis)
    assert cat.title_projection(basis) is proj  # computed once
    np.testing.assert_allclose(proj, cat.title_emb @ basis, rtol=1e-5, atol=1e-6)
    other = cat.title_projection(basis * 2.0)
    np.testing.assert_allclose(other, 2.0 * proj, rtol=1e-5, atol=1e-6)
