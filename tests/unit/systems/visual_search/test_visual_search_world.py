"""The visual-search world: deterministic photos, disjoint splits, hard-but-fair variation."""

from __future__ import annotations

import numpy as np

from mlsd.systems.visual_search.world import (
    QUERY_PHOTO_BASE,
    VisualSearchWorld,
    VisualWorldConfig,
    near_duplicate,
)
from mlsd.world import Scale

CFG = VisualWorldConfig.for_scale(Scale.TINY).with_(n_train_products=10, n_eval_products=6)


def test_photos_are_deterministic_by_seed_and_index() -> None:
    a = VisualSearchWorld(Scale.TINY, 1, CFG)
    b = VisualSearchWorld(Scale.TINY, 1, CFG)
    c = VisualSearchWorld(Scale.TINY, 2, CFG)
    p, j = np.array([0, 3, 3]), np.array([0, 0, 1])
    x = a.photos(p, j)
    assert x.shape == (3, CFG.image_size, CFG.image_size, 3) and x.dtype == np.uint8
    np.testing.assert_array_equal(x, b.photos(p, j))
    assert not np.array_equal(x, c.photos(p, j))
    assert not np.array_equal(x[1], x[2])  # two photos of one product differ


def test_splits_are_disjoint_and_cover_the_catalogue() -> None:
    w = VisualSearchWorld(Scale.TINY, 0, CFG)
    train, ev = set(w.product_ids("train")), set(w.product_ids("eval"))
    assert len(train) == 10 and len(ev) == 6 and not train & ev
    pids, idx = w.catalog("eval")
    assert len(pids) == 6 * CFG.photos_per_product
    assert set(pids) == ev and idx.max() < QUERY_PHOTO_BASE


def test_iter_photos_matches_photos() -> None:
    w = VisualSearchWorld(Scale.TINY, 0, CFG)
    pids, idx = w.catalog("train")
    chunks = list(w.iter_photos(pids, idx, chunk=7))
    assert len(chunks) == -(-len(pids) // 7)
    np.testing.assert_array_equal(np.concatenate(chunks), w.photos(pids, idx))


def test_photos_of_one_product_are_closer_than_of_others_on_average() -> None:
    w = VisualSearchWorld(Scale.TINY, 0, CFG)
    pids, idx = w.catalog("eval")
    x = w.photos(pids, idx).reshape(len(pids), -1).astype(np.float32)
    d = ((x[:, None] - x[None]) ** 2).mean(-1)
    same = pids[:, None] == pids[None]
    off = ~np.eye(len(pids), dtype=bool)
    # same-product photos are somewhat closer, but nowhere near identical: search is not trivial
    assert d[same & off].mean() < d[~same].mean()
    assert d[same & off].mean() > 0.3 * d[~same].mean()


def test_near_duplicate_is_close_but_not_identical() -> None:
    w = VisualSearchWorld(Scale.TINY, 0, CFG)
    img = w.photos(np.array([0]), np.array([0]))[0]
    dup = near_duplicate(img, np.random.default_rng(0))
    assert dup.shape == img.shape and not np.array_equal(dup, img)
    assert np.abs(dup.astype(int) - img.astype(int)).mean() < 25
