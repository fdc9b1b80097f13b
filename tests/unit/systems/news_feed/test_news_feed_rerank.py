"""Re-ranking: author and media diversity, freshness, the demotion hook."""

from __future__ import annotations

import numpy as np

from mlsd.systems.news_feed.serving_rerank import RerankConfig, rerank

CFG = RerankConfig(max_per_author=2, max_media_run=2, freshness_weight=0.0, demote_by=0.5)


def test_no_author_more_than_twice_while_others_are_left() -> None:
    score = np.arange(8, dtype=float)[::-1]
    author = np.array([1, 1, 1, 1, 2, 3, 4, 5])
    media = np.arange(8) % 3
    order = rerank(score, author, media, np.zeros(8), np.zeros(8, bool), CFG, k=6)
    assert list(order[:2]) == [0, 1]
    assert np.bincount(author[order])[1] == 2


def test_no_long_run_of_one_media_type() -> None:
    score = np.arange(6, dtype=float)[::-1]
    media = np.array([0, 0, 0, 0, 1, 1])
    order = rerank(score, np.arange(6), media, np.zeros(6), np.zeros(6, bool), CFG)
    runs = max(len(list(g)) for _, g in __import__("itertools").groupby(media[order]))
    assert runs <= 2
    assert sorted(order) == list(range(6))


def test_flagged_posts_are_demoted_and_fresh_ones_lifted() -> None:
    score = np.array([3.0, 2.0, 1.0])
    flagged = np.array([True, False, False])
    order = rerank(score, np.arange(3), np.arange(3), np.zeros(3), flagged, CFG)
    assert list(order) == [1, 0, 2]  # half the list lower: below the second
    fresh = RerankConfig(freshness_weight=1.0, freshness_h=1.0)
    age = np.array([100.0, 100.0, 0.0])
    order = rerank(score, np.arange(3), np.arange(3), age, np.zeros(3, bool), fresh)
    assert order[0] == 2
