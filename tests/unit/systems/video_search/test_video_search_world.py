"""The video-search world: deterministic, graded relevance from the latent content, the text's
quality, frames from the content, clicks rising with the grade."""

from __future__ import annotations

import numpy as np

from mlsd.systems.video_search.world import CONCEPTS, VideoSearchWorld, misspell


def test_the_world_is_deterministic_by_seed(world: VideoSearchWorld) -> None:
    again = VideoSearchWorld(world.scale, 0, world.config)
    assert again.videos["title"].tolist() == world.videos["title"].tolist()
    assert again.queries(1, 20)["text"].tolist() == world.queries(1, 20)["text"].tolist()
    np.testing.assert_array_equal(again.frames(np.arange(5)), world.frames(np.arange(5)))
    other = VideoSearchWorld(world.scale, 1, world.config)
    assert other.videos["title"].tolist() != world.videos["title"].tolist()


def test_grades_follow_the_latent_topics(world: VideoSearchWorld) -> None:
    v, it = world.videos, world.intents
    intent = 0
    t, q = int(it["topic"].iat[intent]), int(it["mask"].iat[intent])
    g = world.grades(intent)
    covers = (v["topic"] == t) & ((v["mask"] & q) == q) & ~v["unsafe"]
    assert (g[covers.to_numpy()] == 3).all()
    other_topic = (v["topic"] != t) & (v["topic2"] != t)
    assert (g[other_topic.to_numpy()] == 0).all()
    assert (g[v["unsafe"].to_numpy()] == 0).all()
    assert set(np.unique(g)) <= {0, 1, 2, 3}


def test_poor_text_says_nothing_and_duplicates_share_frames(world: VideoSearchWorld) -> None:
    v = world.videos
    poor = v[v["text_quality"] == "poor"]
    assert len(poor) > 0 and (poor["description"] == "").all() and (poor["tags"] == "").all()
    dup = v[v["duplicate_of"] >= 0].head(3)
    assert len(dup) > 0
    for i, o in zip(dup["video_id"], dup["duplicate_of"], strict=True):
        np.testing.assert_array_equal(world.frames(np.array([i])), world.frames(np.array([o])))
        assert v["title"].iat[i] == v["title"].iat[o]


def test_queries_have_typos_and_tails(world: VideoSearchWorld) -> None:
    q = world.queries(0, 2000)
    assert 0.1 < q["typo"].mean() < 0.2
    assert 0 < q["tail"].mean() < 0.6
    assert misspell("guitar", np.random.default_rng(0)) != "guitar"
    assert world.intents["mask"].max() < 2**CONCEPTS


def test_better_results_get_more_clicks(world: VideoSearchWorld) -> None:
    n = 400
    intents = np.zeros(n, np.int64)
    g = world.grades(0)
    best = np.tile(np.argsort(-g, kind="stable")[:10], (n, 1))
    worst = np.tile(np.flatnonzero(g == 0)[:10], (n, 1))
    gen = np.random.default_rng(0)
    good, bad = world.respond(intents, best, gen), world.respond(intents, worst, gen)
    assert good.clicks.mean() > 3 * bad.clicks.mean()
    assert good.watch_s.sum() > bad.watch_s.sum()
    assert np.isnan(bad.first_click_s).mean() > np.isnan(good.first_click_s).mean()
