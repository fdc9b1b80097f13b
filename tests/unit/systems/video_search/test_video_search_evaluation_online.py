"""The online test's decision counting."""

from __future__ import annotations

from mlsd.systems.video_search.evaluation_online import median_needed, searches_needed


def test_searches_needed_is_where_the_test_stays_significant() -> None:
    assert searches_needed([(10, 0.01), (20, 0.2), (40, 0.03), (80, 0.001)]) == 40
    assert searches_needed([(10, 0.5), (20, 0.2)]) is None


def test_median_needed_counts_a_replicate_that_never_decided_as_more_than_n() -> None:
    assert median_needed([100, 200, 300], 1000) == 200
    assert median_needed([100, None, None], 1000) is None  # the median never got there
    assert median_needed([100, 300, None, None, 50], 1000) == 300
    assert median_needed([], 1000) is None
