"""The online test's decision counting."""

from __future__ import annotations

from mlsd.systems.video_search.evaluation_online import searches_needed


def test_searches_needed_is_where_the_test_stays_significant() -> None:
    assert searches_needed([(10, 0.01), (20, 0.2), (40, 0.03), (80, 0.001)]) == 40
    assert searches_needed([(10, 0.5), (20, 0.2)]) is None
