"""The one nearest-neighbour index module: every kind, recall against exact, save/load, adds."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mlsd.index import (
    IndexConfig,
    VectorIndex,
    compare_indexes,
    default_configs,
    exact_top_k,
    pairs_within,
    recall_at_k,
    time_search,
)
from mlsd.rng import rng


def _clustered(n: int, d: int = 16, seed: int = 0) -> np.ndarray:
    r = rng(seed, "test/index")
    centers = r.normal(size=(20, d))
    x = centers[r.integers(0, 20, n)] + 0.3 * r.normal(size=(n, d))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


@pytest.mark.parametrize("kind", ["flat", "exact", "ivf", "hnsw", "pq"])
def test_every_kind_finds_the_query_itself(kind: str) -> None:
    x = _clustered(2000)
    ids = np.arange(2000) + 10_000
    index = VectorIndex.build(kind, x, ids, nprobe=16, pq_m=4)
    _, found = index.search(x[:50], 5)
    assert found.shape == (50, 5)
    hit = np.mean([ids[i] in found[i] for i in range(50)])
    assert (
        hit >= {"flat": 1.0, "exact": 1.0, "ivf": 0.9, "hnsw": 0.9, "pq": 0.5}[kind]
    )  # PQ is lossy
    assert index.build_seconds > 0 and index.nbytes() > 0


def test_recall_ignores_missing_neighbours() -> None:
    exact = np.array([[1, 2, 3, 4], [5, 6, -1, -1]])
    approx = np.array([[1, 2, 9, -1], [6, 5, -1, -1]])
    assert recall_at_k(approx, exact) == pytest.approx((0.5 + 1.0) / 2)
    with pytest.raises(ValueError):
        recall_at_k(approx[:1], exact)


def test_exact_top_k_matches_numpy() -> None:
    x, q = _clustered(500), _clustered(30, seed=1)
    _, rows = exact_top_k(x, q, 3, batch=7)
    np.testing.assert_array_equal(rows[:, 0], np.argmax(q @ x.T, axis=1))


def test_save_load_and_incremental_add(tmp_path: Path) -> None:
    x = _clustered(1000)
    index = VectorIndex.build("ivf", x[:800], np.arange(800), nprobe=8)
    index.add(x[800:], np.arange(800, 1000))
    index.save(tmp_path / "idx")
    loaded = VectorIndex.load(tmp_path / "idx")
    assert len(loaded) == 1000 and loaded.kind == "ivf"
    np.testing.assert_array_equal(loaded.search(x[900:910], 4)[1], index.search(x[900:910], 4)[1])
    assert sorted(p.name for p in (tmp_path / "idx").iterdir()) == [
        "index.faiss",
        "index.json",
        "index_ids.npy",
    ]
    with pytest.raises(ValueError, match="dims"):
        index.add(np.zeros((2, 3), np.float32), np.arange(2))


def test_bad_kind_and_shapes_are_named() -> None:
    with pytest.raises(ValueError, match="unknown index kind 'annoy'"):
        VectorIndex.build("annoy", _clustered(10))
    with pytest.raises(ValueError, match="2-D"):
        VectorIndex.build("flat", np.zeros(4))


def test_compare_indexes_measures_the_tradeoff() -> None:
    x = _clustered(3000)
    configs = [
        IndexConfig("exact", "flat"),
        IndexConfig("ivf1", "ivf", {"nlist": 64, "nprobe": 1}),
        IndexConfig("ivf64", "ivf", {"nlist": 64, "nprobe": 64}),
    ]
    rows = compare_indexes(x, x[:100], 10, configs, latency_queries=20)
    by = {r.label: r for r in rows}
    assert by["exact"].recall == 1.0
    assert by["ivf64"].recall == pytest.approx(1.0)  # every cell probed is exact
    assert by["ivf1"].recall < by["ivf64"].recall
    assert by["ivf1"].build_s == by["ivf64"].build_s  # one build, two search settings
    assert len(rows[0].row()) == len(rows[0].HEADER)
    assert rows[1].metrics()["recall_vs_exact"] == rows[1].recall


def test_default_configs_grow_with_the_catalogue() -> None:
    small = [c.kind for c in default_configs(2000, 64)]
    assert small[0] == "flat" and "hnsw" in small and "pq" not in small
    assert "pq" in [c.kind for c in default_configs(50_000, 64)]
    assert "hnsw" not in [c.kind for c in default_configs(300_000, 64)]


def test_time_search_returns_one_time_per_query() -> None:
    x = _clustered(200)
    ids, times = time_search(VectorIndex.build("flat", x), x[:5], 3)
    assert ids.shape == (5, 3) and len(times) == 5 and min(times) >= 0


def test_pairs_within_finds_every_pair_above_the_threshold() -> None:
    x = _clustered(300)
    dup = np.concatenate([x, x[:5]])  # rows 300..304 repeat rows 0..4
    pairs = pairs_within(dup, 0.9999)
    found = {(int(i), int(j)) for i, j in pairs}
    assert {(k, 300 + k) for k in range(5)} <= found
    assert all(i < j for i, j in found)
    sims = dup @ dup.T
    brute = {
        (i, j) for i in range(len(dup)) for j in range(i + 1, len(dup)) if sims[i, j] >= 0.9999
    }
    assert found == brute
