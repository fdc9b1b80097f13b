"""Re-ranking: watched videos filtered, categories capped, fresh videos boosted, MMR."""

from __future__ import annotations

import numpy as np
import pytest

from mlsd.systems.video_rec.serving_rerank import category_cap, freshness_boost, mmr, rerank


def test_rerank_filters_watched_caps_categories_and_boosts_fresh() -> None:
    ids = np.arange(8)
    scores = np.linspace(8, 1, 8)
    cats = np.array([0, 0, 0, 0, 1, 1, 2, 2])
    age = np.full(8, 30)
    top, _ = rerank(ids, scores, cats, age, 4, watched={0}, cap=2)
    assert 0 not in top.tolist() and len(top) == 4
    assert max(np.bincount(cats[top])) <= 2
    assert freshness_boost(np.array([1.0]), np.array([0]), 0.5)[0] == 1.5
    assert category_cap(np.arange(3), np.zeros(3), 3, 1).tolist() == [0, 1, 2]  # fills up


def test_mmr_prefers_a_dissimilar_second_pick() -> None:
    emb = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    assert mmr(np.array([1.0, 0.95, 0.5]), emb, 2, lam=0.5).tolist() == [0, 2]


def test_rerank_rejects_unknown_methods_and_mmr_without_embeddings() -> None:
    ids, scores, cats, age = np.arange(3), np.ones(3), np.zeros(3), np.zeros(3)
    with pytest.raises(ValueError, match="needs the candidates' embeddings"):
        rerank(ids, scores, cats, age, 2, method="mmr")
    with pytest.raises(ValueError, match="unknown re-ranking method"):
        rerank(ids, scores, cats, age, 2, method="bogus")
