"""The catalogue index: FAISS exact and approximate search as visual search uses it, the
exact-vs-approximate comparison, the served-index rule, incremental adds, near-duplicates."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mlsd.index import NLIST_MAX, IndexTradeoff, VectorIndex, default_nlist, exact_top_k
from mlsd.index import recall_at_k as recall_against
from mlsd.systems.visual_search import serving_index
from mlsd.systems.visual_search.datasets_split import RetrievalSet
from mlsd.systems.visual_search.model import l2_normalise
from mlsd.systems.visual_search.serving_index import (
    MIN_ANN_RECALL,
    MIN_ANN_SIZE,
    choose_index,
    compare_catalogue_indexes,
    incremental_indexing,
    index_configs,
)


def vectors(n: int, d: int = 16, seed: int = 0) -> np.ndarray:
    return l2_normalise(np.random.default_rng(seed).normal(size=(n, d)))


def test_flat_search_equals_brute_force() -> None:
    x, q = vectors(300), vectors(20, seed=1)
    ids = np.arange(300) + 1000
    scores, got = VectorIndex.build("flat", x, ids).search(q, 5)
    expected = np.argsort(-(q @ x.T), axis=1)[:, :5] + 1000
    np.testing.assert_array_equal(got, expected)
    assert (np.diff(scores, axis=1) <= 1e-6).all()


@pytest.mark.parametrize("kind", ["ivf", "hnsw"])
def test_approximate_indexes_recall_most_of_exact(kind: str) -> None:
    x, q = vectors(2000), vectors(50, seed=1)
    ids = np.arange(2000)
    exact = VectorIndex.build("flat", x, ids).search(q, 10)[1]
    params = {"nprobe": 64} if kind == "ivf" else {"ef_search": 128}
    approx = VectorIndex.build(kind, x, ids, **params).search(q, 10)[1]
    assert recall_against(approx, exact) > 0.9
    low = VectorIndex.build("ivf", x, ids, nprobe=1).search(q, 10)[1]
    assert recall_against(low, exact) < recall_against(approx, exact) or kind == "hnsw"


def test_incremental_add_finds_new_vectors_and_saves(tmp_path: Path) -> None:
    x = vectors(100)
    index = VectorIndex.build("flat", x[:60], np.arange(60))
    index.add(x[60:], np.arange(60, 100) + 500)
    assert len(index) == 100
    assert index.search(x[70:71], 1)[1][0, 0] == 70 + 500
    index.save(tmp_path / "ix")
    again = VectorIndex.load(tmp_path / "ix")
    np.testing.assert_array_equal(again.search(x[:10], 3)[1], index.search(x[:10], 3)[1])
    with pytest.raises(ValueError, match="dims"):
        index.add(vectors(2, d=8), np.arange(2))


def test_search_k_larger_than_index() -> None:
    index = VectorIndex.build("flat", vectors(3), np.arange(3))
    assert index.search(vectors(1, seed=2), 10)[1].shape == (1, 3)


def test_exact_search_in_batches_equals_flat_index() -> None:
    x, q = vectors(500), vectors(37, seed=1)
    scores, pos = exact_top_k(x, q, 5, batch=8)
    flat_scores, flat_ids = VectorIndex.build("flat", x, np.arange(500)).search(q, 5)
    np.testing.assert_array_equal(pos, flat_ids)
    np.testing.assert_allclose(scores, flat_scores, atol=1e-5)


def test_ivf_cells_are_capped_and_trained_on_a_sample() -> None:
    assert default_nlist(1_000_000) == NLIST_MAX
    assert default_nlist(1_600) == 41  # small catalogues keep about 39+ vectors a cell
    x, q = vectors(3000), vectors(40, seed=2)
    ids = np.arange(3000)
    # 4 vectors a cell of 20 cells: trained on 80 of the 3,000, still a usable index
    sampled = VectorIndex.build("ivf", x, ids, nlist=20, nprobe=20, train_per_cell=4)
    assert len(sampled) == 3000
    exact = ids[exact_top_k(x, q, 10)[1]]
    assert recall_against(sampled.search(q, 10)[1], exact) > 0.99  # all cells probed


def test_compare_indexes_skips_hnsw_above_its_size_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    x, q = vectors(800), vectors(30, seed=3)
    rows = compare_catalogue_indexes(x, q, np.arange(800), seed=0)
    assert [r.kind for r in rows] == ["flat", "ivf", "ivf", "ivf", "hnsw", "hnsw"]
    assert rows[0].recall == pytest.approx(1.0)
    ivf = [r for r in rows if r.kind == "ivf"]
    assert ivf[0].recall <= ivf[-1].recall  # more probes, more recall
    assert len({r.build_s for r in ivf}) == 1  # one build, three nprobe settings
    assert set(rows[0].metrics()) >= {"index", "kind", "recall_vs_exact", "bytes", "query_ms"}
    monkeypatch.setattr(serving_index, "HNSW_MAX_SIZE", 500)
    assert "hnsw" not in [r.kind for r in compare_catalogue_indexes(x, q, np.arange(800), 0)]


def test_pq_is_compared_from_ten_thousand_vectors() -> None:
    assert "pq" not in {c.kind for c in index_configs(9_999, 64)}
    assert "pq" in {c.kind for c in index_configs(10_000, 64)}


def row(label: str, kind: str, recall: float, query_ms: float) -> IndexTradeoff:
    return IndexTradeoff(label, kind, {}, recall, 0.1, 1000, query_ms, 2 * query_ms)


def test_served_index_is_the_fastest_that_qualifies() -> None:
    n = MIN_ANN_SIZE * 10
    exact = row("exact", "flat", 1.0, 1.0)
    ivf_low = row("ivf1", "ivf", MIN_ANN_RECALL - 0.1, 0.01)  # fastest, but misses the bar
    ivf_ok = row("ivf16", "ivf", 0.99, 0.2)
    hnsw = row("hnsw", "hnsw", 0.999, 0.1)
    pq_low = row("pq", "pq", 0.6, 0.005)  # the fastest of all, far below the bar
    assert choose_index([exact, ivf_low, ivf_ok, hnsw, pq_low], n) is hnsw
    pq_ok = row("pq", "pq", MIN_ANN_RECALL, 0.05)  # PQ is served only when it qualifies
    assert choose_index([exact, ivf_ok, hnsw, pq_ok], n) is pq_ok
    assert choose_index([exact, ivf_low, pq_low], n) is exact  # none qualifies: exact
    assert choose_index([exact, ivf_ok, hnsw], MIN_ANN_SIZE - 1) is exact  # small catalogue


def test_incremental_adds_find_the_new_products_like_a_rebuild() -> None:
    groups = np.repeat(np.arange(50), 4)
    centres = vectors(50, seed=4)
    emb = l2_normalise(centres[groups] + 0.05 * vectors(200, seed=5))
    q_groups = np.arange(50)
    queries = l2_normalise(centres + 0.05 * vectors(50, seed=6))
    img = np.zeros((1, 2, 2, 3), np.uint8)
    rs = RetrievalSet(img, np.zeros(1), img, groups, np.repeat(img, 50, 0), q_groups)
    out = incremental_indexing(emb, queries, rs, seed=0)
    assert out["initial_images"] + out["added_images"] == 200
    assert out["added_images"] == 40  # a fifth of the products, 4 photos each
    assert out["map_new_incremental"] == pytest.approx(out["map_new_rebuilt"])
    assert out["map_new_rebuilt"] > 0.9
