"""The served recommender: every mode's lists, inline users, the ANN index, the artifacts."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from mlsd.artifacts import write_manifest
from mlsd.index import recall_at_k
from mlsd.serving import ServingArtifactError
from mlsd.settings import Settings
from mlsd.systems.video_rec.model import FitReport
from mlsd.systems.video_rec.serving import (
    INDEX_DIR,
    MODEL_DIR,
    MODES,
    SERVING_FILE,
    Recommender,
    build_ann_index,
    load_recommender,
    load_scorer,
    save_recommender,
)
from mlsd.systems.video_rec.world import VideoRecWorld

Fitted = tuple[VideoRecWorld, Recommender, FitReport]


def test_recommendations_are_unwatched_unique_and_timed(fitted: Fitted) -> None:
    w, rec, _ = fitted
    users = np.array(sorted(w.watched)[:5])
    for mode in MODES:
        r = rec.recommend_users(users, 10, mode)
        for u, ids in zip(users, r.ids, strict=True):
            assert len(set(ids.tolist())) == len(ids) <= 10
            assert not set(ids.tolist()) & w.watched[int(u)], mode
        assert set(r.timings_ms) == {"retrieval", "ranking", "reranking"}
    full = rec.recommend_users(users, 10, "full")
    assert all(len(ids) == 10 for ids in full.ids)
    assert all(np.all((p >= 0) & (p <= 1)) for p in full.p_click)
    with pytest.raises(ValueError, match="unknown mode"):
        rec.recommend_users(users, 10, "bogus")


def test_inline_user_excludes_the_inline_history(fitted: Fitted) -> None:
    _, rec, _ = fitted
    history = [1, 2, 3]
    r = rec.recommend_inline(history, "18-24", "us", "en", 15)
    assert len(r.ids[0]) == 15 and not set(r.ids[0].tolist()) & set(history)


def test_inline_user_projects_titles_with_the_training_basis(fitted: Fitted) -> None:
    _, rec, _ = fitted
    us, _ = rec.inline_user([1, 2, 3], "18-24", "us", "en")
    assert us.content_basis is rec.us.content_basis


def test_ann_exact_recall_is_one_and_the_index_round_trips(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(500, 16)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    exact = build_ann_index(x, "exact", 0)
    hnsw = build_ann_index(x, "hnsw", 0)
    _, e = exact.search(x[:20], 10)
    _, h = hnsw.search(x[:20], 10)
    assert recall_at_k(e, e) == 1.0
    assert 0.5 < recall_at_k(h, e) <= 1.0
    assert (e[:, 0] == np.arange(20)).all()
    hnsw.save(tmp_path / "hnsw")
    back = type(hnsw).load(tmp_path / "hnsw")
    assert back.kind == "hnsw" and int(back.index.hnsw.efSearch) == 64
    assert (back.search(x[:20], 10)[1] == h).all()
    assert exact.nbytes() >= 500 * 16 * 4
    ivf = build_ann_index(x, "ivf", 0).index
    assert ivf.nprobe == min(16, ivf.nlist)  # 16 cells searched, or all when there are fewer
    with pytest.raises(ValueError, match="unknown index kind"):
        build_ann_index(x, "annoy", 0)


def test_artifacts_round_trip_to_the_same_recommendations(fitted: Fitted, tmp_path: Path) -> None:
    _, rec, _ = fitted
    run = tmp_path / "run"
    save_recommender(run / "artifacts", rec, {"k_default": 20})
    names = {p.name for p in (run / "artifacts").iterdir()}
    assert names == {MODEL_DIR, INDEX_DIR, SERVING_FILE, "manifest.json"}
    meta = json.loads((run / "artifacts" / SERVING_FILE).read_text())
    assert meta["videos"] == len(rec.cat.videos) and meta["index"]["kind"] == "hnsw"
    assert meta["k_default"] == 20
    for back in (load_scorer(run, Settings()), load_scorer(run / "artifacts", Settings())):
        users = np.arange(6)
        want, got = rec.recommend_users(users, 10), back.recommend_users(users, 10)
        assert all(np.array_equal(a, b) for a, b in zip(want.ids, got.ids, strict=True))
        np.testing.assert_allclose(np.concatenate(got.scores), np.concatenate(want.scores))


def test_bad_artifacts_name_the_file(fitted: Fitted, tmp_path: Path) -> None:
    with pytest.raises(ServingArtifactError, match=r"artifacts/recommender: serving artifact"):
        load_scorer(tmp_path, Settings())
    _, rec, _ = fitted
    save_recommender(tmp_path, rec, {})
    (tmp_path / INDEX_DIR / "index.faiss").unlink()
    with pytest.raises(ServingArtifactError, match=r"index\.faiss: serving artifact missing"):
        load_recommender(tmp_path)
    save_recommender(tmp_path, rec, {})
    (tmp_path / MODEL_DIR / "model.json").write_text("{}")
    with pytest.raises(ServingArtifactError, match=r"model\.json: hash mismatch"):
        load_recommender(tmp_path)
    write_manifest(tmp_path)  # a consistent manifest: the loader's own checks answer
    with pytest.raises(ServingArtifactError, match="unreadable recommender"):
        load_recommender(tmp_path)


def test_moved_to_a_later_day_rebuilds_the_index_and_keeps_the_models(fitted: Fitted) -> None:
    _, rec, _ = fitted
    later = rec.moved_to(rec.cat, rec.users, rec.day + 1, seed=0)
    assert later is not rec and later.day == rec.day + 1 and rec.index is not later.index
    assert later.index.kind == rec.index.kind and len(later.index) == len(rec.cat.videos)
    assert later.tower is rec.tower and later.ranker is rec.ranker
