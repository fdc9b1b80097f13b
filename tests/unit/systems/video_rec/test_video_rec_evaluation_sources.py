"""The collaborative learners as candidate sources in the world: merged into the recommender,
a mode of their own, saved with it, and measured (recall, the ranked stack) by the step."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlsd.settings import Settings
from mlsd.systems.video_rec import evaluation_sources as es
from mlsd.systems.video_rec.features import Catalogue
from mlsd.systems.video_rec.model import FitReport
from mlsd.systems.video_rec.model_cf import CFSource
from mlsd.systems.video_rec.model_ease import EaseSource
from mlsd.systems.video_rec.model_mf import AlsSource
from mlsd.systems.video_rec.serving import Recommender, load_scorer, save_recommender
from mlsd.systems.video_rec.world import VideoRecWorld

Fitted = tuple[VideoRecWorld, Recommender, FitReport]
WorldLog = tuple[VideoRecWorld, pd.DataFrame, Catalogue]


def _with_sources(world_log: WorldLog, rec: Recommender) -> Recommender:
    _, log, _ = world_log
    c = log["click"].to_numpy().astype(bool)
    u, v = log["user_id"].to_numpy()[c], log["video_id"].to_numpy()[c]
    n = len(rec.cat.videos)
    learned: dict[str, CFSource | EaseSource] = {
        "ease": EaseSource(l2=50.0).fit(u, v, np.ones(len(u)), n),
        "als": AlsSource(factors=8, iterations=5, l2=10.0).fit(u, v, np.ones(len(u)), n),
    }
    return dataclasses.replace(rec, learned=learned)


def test_a_learned_source_is_a_mode_and_joins_the_merge(
    world_log: WorldLog, fitted: Fitted
) -> None:
    _, rec, _ = fitted
    with_src = _with_sources(world_log, rec)
    users = np.arange(8)
    watched = rec.watched(rec.us, users)
    alone = with_src.recommend_users(users, 10, "als")
    for ids, srcs, w in zip(alone.ids, alone.sources, watched, strict=True):
        assert len(ids) == 10 and not set(ids.tolist()) & w
        assert all(s == ["als"] for s in srcs)
    ranked = with_src.recommend_users(users, 10, "ranked")
    assert any("ease" in s or "als" in s for srcs in ranked.sources for s in srcs)
    base = rec.recommend_users(users, 10, "ranked")  # no learned source: nothing changes
    assert not any("als" in s for srcs in base.sources for s in srcs)
    with pytest.raises(ValueError, match="unknown mode 'vae'"):
        with_src.recommend_users(users, 10, "vae")


def test_learned_sources_are_saved_with_the_recommender(
    world_log: WorldLog, fitted: Fitted, tmp_path: Path
) -> None:
    _, rec, _ = fitted
    with_src = _with_sources(world_log, rec)
    save_recommender(tmp_path / "artifacts", with_src, {})
    back = load_scorer(tmp_path, Settings())
    assert set(back.learned) == {"ease", "als"}
    users = np.arange(6)
    for mode in ("ease", "als", "ranked"):
        want, got = with_src.recommend_users(users, 10, mode), back.recommend_users(users, 10, mode)
        assert all(np.array_equal(a, b) for a, b in zip(want.ids, got.ids, strict=True))


def test_the_step_tunes_measures_and_compares_the_ranked_stack(
    world_log: WorldLog, fitted: Fitted, monkeypatch: pytest.MonkeyPatch
) -> None:
    w, log, _ = world_log
    _, rec, _ = fitted
    monkeypatch.setitem(
        es.WORLD_GRIDS, "als", (AlsSource, {"iterations": 5}, [{"l2": 1.0}, {"l2": 30.0}])
    )
    for slow in ("mult_vae", "lightgcn"):  # keep it fast
        monkeypatch.setitem(es.WORLD_GRIDS, slow, es.WORLD_GRIDS["als"])
    res = es.compute_sources(rec, w, log, len(rec.cat.videos), 40, 0)
    assert set(res.learners) == {"ease", "als", "mult_vae", "lightgcn"} and not res.skipped
    for r in res.learners.values():
        assert 0.0 <= r["recall@100"] <= r["recall@500"] <= 1.0
        assert len(r["validation_recall@100"]) >= 2
    assert res.learners["als"]["params"] in ({"l2": 1.0}, {"l2": 30.0})
    assert set(res.stacks) == {
        "ranked",
        "ranked + ease",
        "ranked + als",
        "ranked + mult_vae",
        "ranked + lightgcn",
        "ranked + all learned",
    }
    assert set(res.builtin) >= {"two_tower", "popular"}
    m = res.metrics()
    assert m["models"]["ease"]["recall@100"] == res.learners["ease"]["recall@100"]
    # EASE and the Mult-VAE are left out, with the reason, above their catalogue limits
    monkeypatch.setattr(EaseSource, "__init__", _tiny_ease_init)
    monkeypatch.setattr(es, "MAX_VAE_VIDEOS", 10)
    res = es.compute_sources(rec, w, log, len(rec.cat.videos), 40, 0)
    assert set(res.learners) == {"als", "lightgcn"} and "max_items" in res.skipped["ease"]
    assert "sampled softmax" in res.skipped["mult_vae"]
    assert set(res.stacks) == {
        "ranked",
        "ranked + als",
        "ranked + lightgcn",
        "ranked + all learned",
    }


def _tiny_ease_init(self: EaseSource, l2: float = 250.0, max_items: int = 10) -> None:
    self.l2, self.max_items = l2, max_items
