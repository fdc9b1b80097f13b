"""FAISS indexes: exact equals brute force, ANN recall, incremental adds, near-duplicates."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mlsd.systems.visual_search.index import (
    VectorIndex,
    dedupe_mask,
    fingerprint,
    near_duplicate_pairs,
    recall_against,
)
from mlsd.systems.visual_search.model import l2_normalise


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


def test_near_duplicates_and_dedupe() -> None:
    x = vectors(50)
    dup = l2_normalise(x[[3, 3, 10]] + 0.01 * vectors(3, seed=5))
    allv = np.concatenate([x, dup])
    pairs = near_duplicate_pairs(allv, 0.99)
    found = {tuple(p) for p in pairs.tolist()}
    assert {(3, 50), (3, 51), (50, 51), (10, 52)} <= found
    assert all(i < j for i, j in found)
    keep = dedupe_mask(len(allv), pairs)
    assert keep[:50].all() and not keep[50:].any()


def test_fingerprint_ignores_brightness() -> None:
    img = np.random.default_rng(0).integers(0, 200, size=(2, 16, 16, 3), dtype=np.uint8)
    brighter = np.clip(img.astype(int) + 30, 0, 255).astype(np.uint8)
    f = fingerprint(np.concatenate([img, brighter]))
    assert f.shape == (4, 192)
    assert float(f[0] @ f[2]) > 0.99 and float(f[0] @ f[1]) < 0.5
