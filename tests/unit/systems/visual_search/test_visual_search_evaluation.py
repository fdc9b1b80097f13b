"""Offline retrieval metrics, the oracle ranking, and the embedding-size trade-off."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from mlsd import metrics as mm
from mlsd.systems.visual_search.datasets_split import RetrievalSet
from mlsd.systems.visual_search.evaluation import (
    compute_offline_evaluation,
    oracle_top,
    retrieval_metrics,
)
from mlsd.systems.visual_search.evaluation_size import compute_size_tradeoff
from mlsd.systems.visual_search.model import (
    CONTRASTIVE,
    CNNEncoder,
    PixelPCAEncoder,
    contract_images,
)


def retrieval_set() -> RetrievalSet:
    img = np.zeros((1, 4, 4, 3), np.uint8)
    index_groups = np.array([0, 0, 1, 1, 2, 2])
    index_cats = np.array([0, 0, 0, 0, 1, 1])
    return RetrievalSet(
        img,
        np.zeros(1),
        np.repeat(img, 6, 0),
        index_groups,
        np.repeat(img, 2, 0),
        np.array([0, 2]),
        index_cats,
        np.array([0, 1]),
    )


def test_perfect_ranking_scores_one() -> None:
    rs = retrieval_set()
    top = np.array([[0, 1, 2, 3, 4, 5], [4, 5, 0, 1, 2, 3]])
    m = retrieval_metrics(top, rs, k=6)
    assert m["map"] == pytest.approx(1.0) and m["mrr"] == 1.0 and m["recall"] == 1.0
    assert m["ndcg"] == pytest.approx(1.0) and m["hit1"] == 1.0


def test_worse_ranking_scores_lower_and_partial_relevance_counts() -> None:
    rs = retrieval_set()
    best = retrieval_metrics(np.array([[0, 1, 2, 3, 4, 5], [4, 5, 0, 1, 2, 3]]), rs, k=3)
    # query 0: same category (ids 2, 3) before the product: partial credit in nDCG only
    partial = retrieval_metrics(np.array([[2, 3, 0, 1, 4, 5], [0, 1, 2, 3, 4, 5]]), rs, k=3)
    other = retrieval_metrics(np.array([[4, 5, 0, 1, 2, 3], [0, 1, 2, 3, 4, 5]]), rs, k=3)
    assert partial["map"] < best["map"] and partial["mrr"] == pytest.approx(1 / 3 / 2)
    assert partial["ndcg"] > other["ndcg"]
    assert partial["precision"] == pytest.approx((1 / 3) / 2)


def test_oracle_ranks_the_product_then_its_category() -> None:
    rs = retrieval_set()
    top = oracle_top(rs, k=3)
    assert top[0].tolist() == [0, 1, 2]  # product 0, then category 0
    assert top[1].tolist() == [4, 5, -1]  # product 2 fills category 1: nothing else is graded
    m = retrieval_metrics(top, rs, k=3)
    assert m["map"] == 1.0 and m["ndcg"] == pytest.approx(1.0)
    assert m["precision"] == pytest.approx(2 / 3)  # two relevant images: the ceiling at k = 3
    no_cats = replace(rs, index_cats=None, query_cats=None)
    assert oracle_top(no_cats, k=3)[0].tolist() == [0, 1, -1]


def test_graded_ndcg_with_a_large_category_matches_listing_every_member() -> None:
    n = 400  # 2 categories of 200 images, 100 products of 4 photos
    groups = np.repeat(np.arange(100), 4)
    cats = groups % 2
    img = np.zeros((1, 4, 4, 3), np.uint8)
    query_cats = np.array([0, 1, 0])
    rs = RetrievalSet(
        img,
        np.zeros(1),
        np.repeat(img, n, 0),
        groups,
        np.repeat(img, 3, 0),
        np.array([0, 1, 2]),
        cats,
        query_cats,
    )
    top = np.random.default_rng(0).permutation(n)[:30].reshape(3, 10)
    got = retrieval_metrics(top, rs, k=10)["ndcg"]
    expected = []
    for q in range(3):
        grades = {i: 1.0 for i in np.flatnonzero(cats == query_cats[q]).tolist()}
        grades.update({i: 2.0 for i in np.flatnonzero(groups == rs.query_groups[q]).tolist()})
        expected.append(mm.ndcg_at_k(top[q].tolist(), grades, 10))
    assert got == pytest.approx(float(np.mean(expected)))


def test_offline_evaluation_scores_every_encoder_and_picks_the_best() -> None:
    images, groups = contract_images()  # 12 products x 4 photos
    train = groups < 6
    rs = RetrievalSet(
        images[train],
        groups[train],
        images[~train][::2],
        groups[~train][::2],
        images[~train][1::2],
        groups[~train][1::2],
    )
    encoders = {
        "raw_pixels_pca": PixelPCAEncoder(n_components=8).fit(rs.train_images, rs.train_groups),
        CONTRASTIVE: CNNEncoder(dim=8, width=4, train_steps=0).fit(
            rs.train_images, rs.train_groups
        ),
    }
    result = compute_offline_evaluation(rs, encoders)
    m = result.metrics()
    assert set(m["models"]) == set(encoders)
    for scores in m["models"].values():
        assert set(scores) >= {"map", "mrr", "recall", "ndcg", "dim", "encode_ms"}
        assert 0.0 <= scores["map"] <= 1.0
    assert m["best_baseline"] == "raw_pixels_pca"
    assert m["chosen_model"] == max(encoders, key=lambda n: m["models"][n]["map"])
    assert m["oracle"]["map"] == 1.0 and m["oracle"]["recall"] == 1.0
    assert result.embeddings[CONTRASTIVE][0].shape == (rs.n_index, 8)
    size = compute_size_tradeoff(rs, encoders[CONTRASTIVE], result.embeddings[CONTRASTIVE], 0)
    table = size.metrics()["embedding_size_tradeoff"]
    assert list(table) == ["8"]  # SIZE_DIMS below 8 dims: none; the full size last
    assert table["8"]["map"] == pytest.approx(m["models"][CONTRASTIVE]["map"])
    assert table["8"]["index_bytes_per_image"] == 32.0
