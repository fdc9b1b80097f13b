"""Title encoders, the two-tower model and the assembled pipeline on a tiny world."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mlsd.systems.video_rec.build import FitConfig, fit_recommender
from mlsd.systems.video_rec.features import Catalogue, Demographics, ranking_frame
from mlsd.systems.video_rec.pipeline import Recommender
from mlsd.systems.video_rec.titles import make_encoder
from mlsd.systems.video_rec.world import VideoRecWorld
from mlsd.systems.video_rec.world_entities import CATEGORIES, VideoWorldConfig
from mlsd.world import Scale

torch.set_num_threads(1)
CFG = VideoWorldConfig(
    n_users=150, n_videos=200, n_days=4, new_users_per_day=5, new_videos_per_day=10
)


@pytest.fixture(scope="module")
def fitted() -> tuple[VideoRecWorld, Recommender]:
    w = VideoRecWorld(Scale.TINY, 0, config=CFG)
    log = w.log()
    cat = Catalogue(
        w.videos, make_encoder("hashing").encode(w.videos["title"].tolist()), list(CATEGORIES)
    )
    rec, _ = fit_recommender(cat, w.users, log, FitConfig(tower_epochs=3, ranker_trees=20))
    return w, rec


def test_hashing_encoder_is_cached_unit_and_deterministic() -> None:
    enc = make_encoder("hashing")
    a = enc.encode(["best pasta guide", "best pasta guide", "my first concert"])
    assert a.shape == (3, 384) and np.allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-5)
    assert enc.encoded == 2 and np.array_equal(a[0], a[1])
    with pytest.raises(ValueError, match="unknown title encoder"):
        make_encoder("bert")


def test_two_tower_learns_and_embeds_unit_vectors(
    fitted: tuple[VideoRecWorld, Recommender],
) -> None:
    _, rec = fitted
    assert rec.tower.losses_[-1] < rec.tower.losses_[0]
    emb = rec.tower.video_embeddings(rec.cat)
    assert emb.shape == (len(rec.cat.videos), 32)
    assert np.allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-4)


def test_recommendations_are_unwatched_unique_and_timed(
    fitted: tuple[VideoRecWorld, Recommender],
) -> None:
    w, rec = fitted
    users = np.array(sorted(w.watched)[:5])
    for mode in ("popular", "cowatch", "two_tower", "ranked", "full"):
        r = rec.recommend_users(users, 10, mode)
        for u, ids in zip(users, r.ids, strict=True):
            assert len(set(ids.tolist())) == len(ids) <= 10
            assert not set(ids.tolist()) & w.watched[int(u)], mode
        assert set(r.timings_ms) == {"retrieval", "ranking", "reranking"}
    full = rec.recommend_users(users, 10, "full")
    assert all(len(ids) == 10 for ids in full.ids)
    assert all(np.all((p >= 0) & (p <= 1)) for p in full.p_click)


def test_inline_user_excludes_the_inline_history(fitted: tuple[VideoRecWorld, Recommender]) -> None:
    _, rec = fitted
    history = [1, 2, 3]
    r = rec.recommend_inline(history, "18-24", "us", "en", 15)
    assert len(r.ids[0]) == 15 and not set(r.ids[0].tolist()) & set(history)


def test_ranking_predict_matches_the_scikit_learn_wrappers(
    fitted: tuple[VideoRecWorld, Recommender],
) -> None:
    _, rec = fitted
    assert rec.ranker is not None
    users = np.repeat(np.arange(5), 30)
    videos = np.tile(np.arange(30), 5)
    X = ranking_frame(
        rec.cat, rec.us, rec.vs, Demographics.of(rec.users, users), users, videos, rec.day
    )
    p, value = rec.ranker.predict(X)
    want_p = rec.ranker.click_.predict_proba(X)[:, 1]
    want_min = np.maximum(rec.ranker.watch_.predict(X), 0.0)
    np.testing.assert_allclose(p, want_p, rtol=1e-12)
    np.testing.assert_allclose(value, want_p * want_min, rtol=1e-12)


def test_title_projection_is_cached_per_basis_and_exact(
    fitted: tuple[VideoRecWorld, Recommender],
) -> None:
    _, rec = fitted
    basis = rec.us.content_basis
    proj = rec.cat.title_projection(basis)
    assert rec.cat.title_projection(basis) is proj  # computed once
    np.testing.assert_allclose(proj, rec.cat.title_emb @ basis, rtol=1e-5, atol=1e-6)
    other = rec.cat.title_projection(basis * 2.0)
    np.testing.assert_allclose(other, 2.0 * proj, rtol=1e-5, atol=1e-6)


def test_inline_user_projects_titles_with_the_training_basis(
    fitted: tuple[VideoRecWorld, Recommender],
) -> None:
    _, rec = fitted
    us, _ = rec.inline_user([1, 2, 3], "18-24", "us", "en")
    assert us.content_basis is rec.us.content_basis
