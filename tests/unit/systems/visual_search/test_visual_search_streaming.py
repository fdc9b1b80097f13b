"""Bounded-memory catalogues: streamed embedding, batched exact search, sampled IVF training."""

from __future__ import annotations

import numpy as np
import pytest

from mlsd import metrics as mm
from mlsd.systems.visual_search import catalog
from mlsd.systems.visual_search.evaluation import RetrievalSet, retrieval_metrics
from mlsd.systems.visual_search.index import NLIST_MAX, VectorIndex, default_nlist
from mlsd.systems.visual_search.model import ColorHistogramEncoder, PixelPCAEncoder, l2_normalise
from mlsd.systems.visual_search.streaming import (
    ArrayImages,
    WorldPhotos,
    embed_catalogue,
    exact_search,
)
from mlsd.systems.visual_search.world import VisualSearchWorld, VisualWorldConfig
from mlsd.world import Scale

CFG = VisualWorldConfig.for_scale(Scale.TINY).with_(n_train_products=6, n_eval_products=5)


def vectors(n: int, d: int = 16, seed: int = 0) -> np.ndarray:
    return l2_normalise(np.random.default_rng(seed).normal(size=(n, d)))


def test_world_photos_stream_equals_rendering_all_at_once() -> None:
    world = VisualSearchWorld(Scale.TINY, 3, CFG)
    pids, idx = world.catalog("eval")
    src = WorldPhotos(world, pids, idx)
    whole = world.photos(pids, idx)
    assert len(src) == len(pids)
    np.testing.assert_array_equal(np.concatenate(list(src.chunks(4))), whole)
    np.testing.assert_array_equal(src.take(np.array([7, 2])), whole[[7, 2]])


def test_embed_catalogue_in_chunks_equals_encoding_everything() -> None:
    images = np.random.default_rng(0).integers(0, 256, size=(23, 8, 8, 3), dtype=np.uint8)
    groups = np.arange(23) % 5
    encoders = {
        "pix": PixelPCAEncoder(n_components=6).fit(images, groups),
        "hist": ColorHistogramEncoder(bins=4, n_components=5).fit(images, groups),
    }
    seen: list[int] = []
    emb, stats = embed_catalogue(
        ArrayImages(images), encoders, chunk=5, progress=lambda _d, done, _t: seen.append(done)
    )
    assert seen == [5, 10, 15, 20, 23]
    for name, enc in encoders.items():
        np.testing.assert_allclose(emb[name], enc.encode(images), atol=1e-6)
    assert stats.images == 23 and set(stats.encode_s) == {"pix", "hist"}
    assert stats.images_per_s > 0


def test_exact_search_in_batches_equals_flat_index() -> None:
    x, q = vectors(500), vectors(37, seed=1)
    scores, pos = exact_search(x, q, 5, batch=8)
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
    exact = ids[exact_search(x, q, 10)[1]]
    assert catalog.recall_against(sampled.search(q, 10)[1], exact) > 0.99  # all cells probed


def test_compare_indexes_skips_hnsw_above_its_size_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    x, q = vectors(800), vectors(30, seed=3)
    rows = catalog.compare_indexes(x, q, np.arange(800), 10, seed=0)
    assert [r["kind"] for r in rows] == ["flat", "ivf", "ivf", "ivf", "hnsw", "hnsw"]
    assert rows[0]["recall_vs_exact"] == pytest.approx(1.0)
    ivf = [r for r in rows if r["kind"] == "ivf"]
    assert ivf[0]["recall_vs_exact"] <= ivf[-1]["recall_vs_exact"]  # more probes, more recall
    assert len({r["build_s"] for r in ivf}) == 1  # one build, three nprobe settings
    monkeypatch.setattr(catalog, "HNSW_MAX_SIZE", 500)
    assert "hnsw" not in [r["kind"] for r in catalog.compare_indexes(x, q, np.arange(800), 10, 0)]


def test_graded_ndcg_with_a_large_category_matches_listing_every_member() -> None:
    n = 400  # 2 categories of 200 images, 100 products of 4 photos
    groups = np.repeat(np.arange(100), 4)
    cats = groups % 2
    img = np.zeros((1, 4, 4, 3), np.uint8)
    rs = RetrievalSet(img, np.zeros(1), np.repeat(img, n, 0), groups, np.repeat(img, 3, 0),
                      np.array([0, 1, 2]), cats, np.array([0, 1, 0]))  # fmt: skip
    top = np.random.default_rng(0).permutation(n)[:30].reshape(3, 10)
    query_cats = np.array([0, 1, 0])
    got = retrieval_metrics(top, rs, k=10)["ndcg"]
    expected = []
    for q in range(3):
        grades = {i: 1.0 for i in np.flatnonzero(cats == query_cats[q]).tolist()}
        grades.update({i: 2.0 for i in np.flatnonzero(groups == rs.query_groups[q]).tolist()})
        expected.append(mm.ndcg_at_k(top[q].tolist(), grades, 10))
    assert got == pytest.approx(float(np.mean(expected)))
