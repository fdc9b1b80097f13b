"""Sessions and the skip-gram's training pairs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mlsd.systems.similar_listings.features import (
    Sessions,
    attribute_matrix,
    concat_sessions,
    sessions_from_log,
    skipgram_pairs,
)


def _sessions() -> Sessions:
    log = pd.DataFrame(
        {
            "session_id": [1, 1, 1, 2, 2],
            "position": [0, 1, 2, 1, 0],
            "listing_id": [10, 11, 12, 21, 20],
            "booked_id": [12, 12, 12, -1, -1],
            "day": [0, 0, 0, 1, 1],
        }
    )
    return sessions_from_log(log)


def test_sessions_keep_click_order_and_bookings() -> None:
    s = _sessions()
    assert len(s) == 2 and s.n_clicks == 5
    assert list(s.clicks(0)) == [10, 11, 12] and list(s.clicks(1)) == [20, 21]
    assert list(s.booked) == [12, -1] and list(s.day) == [0, 1]
    sub = s.subset(np.array([False, True]))
    assert list(sub.clicks(0)) == [20, 21] and list(sub.booked) == [-1]


def test_pairs_within_the_window_never_cross_sessions() -> None:
    pairs = {tuple(p) for p in skipgram_pairs(_sessions(), window=1, booked_global=False)}
    assert pairs == {(10, 11), (11, 10), (11, 12), (12, 11), (20, 21), (21, 20)}
    wide = {tuple(p) for p in skipgram_pairs(_sessions(), window=2, booked_global=False)}
    assert (10, 12) in wide and (12, 20) not in wide


def test_the_booked_listing_is_a_global_context_of_every_click() -> None:
    pairs = [tuple(p) for p in skipgram_pairs(_sessions(), window=1, booked_global=True)]
    assert pairs.count((10, 12)) == 1  # outside the window, added as the global context
    assert (12, 12) not in pairs and not any(b == -1 for _, b in pairs)
    heavy = [tuple(p) for p in skipgram_pairs(_sessions(), 1, True, booked_weight=3)]
    assert heavy.count((10, 12)) == 3 and heavy.count((11, 12)) == 4  # 1 window + 3 global
    with pytest.raises(ValueError, match="booked_weight"):
        skipgram_pairs(_sessions(), 1, True, booked_weight=0)


def test_attribute_vectors_are_unit_rows() -> None:
    listings = pd.DataFrame(
        {
            "price": [50.0, 60.0, 300.0],
            "capacity": [2, 2, 8],
            "type": ["entire_home", "entire_home", "hotel_room"],
            "amenities": [3, 3, 255],
        }
    )
    x = attribute_matrix(listings)
    assert x.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(x, axis=1), 1.0, atol=1e-6)
    assert x[0] @ x[1] > x[0] @ x[2]


def test_concat_sessions_keeps_both_in_order() -> None:
    a = Sessions(np.array([0, 2]), np.array([1, 2]), np.array([2]), np.array([0]))
    b = Sessions(np.array([0, 1, 3]), np.array([5, 6, 7]), np.array([-1, 7]), np.array([1, 2]))
    c = concat_sessions(a, b)
    assert len(c) == 3 and [list(c.clicks(s)) for s in range(3)] == [[1, 2], [5], [6, 7]]
    assert list(c.booked) == [2, -1, 7] and list(c.day) == [0, 1, 2]
