"""Point-in-time indexes, candidate sources, merge, ANN index, re-ranking."""

from __future__ import annotations

import pickle

import numpy as np

from mlsd.systems.video_rec.candidates import (
    AnnIndex,
    CoWatchSource,
    PopularSource,
    ann_recall,
    merge_candidates,
)
from mlsd.systems.video_rec.features import EventIndex
from mlsd.systems.video_rec.rerank import category_cap, freshness_boost, mmr, rerank


def test_event_index_counts_only_strictly_earlier_days() -> None:
    idx = EventIndex(np.array([1, 1, 1, 2]), np.array([0, 2, 2, 0]), np.array([1.0, 2.0, 3.0, 9]))
    got = idx.before(np.array([1, 1, 1, 2, 3]), np.array([0, 2, 3, 1, 5]))
    assert got.tolist() == [0.0, 1.0, 6.0, 9.0, 0.0]


def test_popular_excludes_and_decays() -> None:
    src = PopularSource(decay=0.5).fit(
        np.array([0, 0, 1, 2]), np.array([0, 0, 2, 2]), np.array([1, 1, 1, 0]), 3
    )
    assert src.recommend(3).tolist()[0] == 1  # one recent click beats two old half-weight ones
    assert 1 not in src.recommend(2, {1}).tolist()


def test_cowatch_recommends_videos_watched_together() -> None:
    users = np.array([0, 0, 1, 1, 2, 2])
    vids = np.array([0, 1, 0, 1, 2, 3])
    src = CoWatchSource().fit(users, vids, np.ones(6), 4)
    recs = src.recommend([np.array([0]), np.array([3]), np.array([], dtype=np.int64)], 5)
    assert recs[0].tolist() == [1] and recs[1].tolist() == [2] and recs[2].tolist() == []


def test_merge_dedupes_keeps_sources_and_excludes() -> None:
    ids, src = merge_candidates({"a": np.array([3, 1, -1]), "b": np.array([1, 2, 5])}, {5})
    assert ids.tolist() == [3, 1, 2]
    assert src == [["a"], ["a", "b"], ["b"]]


def test_ann_exact_recall_is_one_and_index_pickles() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(500, 16)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    exact = AnnIndex("exact").build(x)
    hnsw = AnnIndex("hnsw").build(x)
    _, e = exact.search(x[:20], 10)
    _, h = hnsw.search(x[:20], 10)
    assert ann_recall(e, e) == 1.0
    assert 0.5 < ann_recall(h, e) <= 1.0
    assert (e[:, 0] == np.arange(20)).all()
    back = pickle.loads(pickle.dumps(hnsw))
    assert (back.search(x[:20], 10)[1] == h).all()
    assert exact.memory_bytes() >= 500 * 16 * 4


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
