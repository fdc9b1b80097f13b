"""Online tests in the world: A/B and interleaving see the same users and sessions; credit keeps
its magnitude so interleaving detects a ranker that wins on watch time, not on clicks."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from mlsd.systems.video_rec import online
from mlsd.systems.video_rec.world import VideoRecWorld
from mlsd.systems.video_rec.world_entities import VideoWorldConfig
from mlsd.world import Scale

CFG = VideoWorldConfig(
    n_users=500, n_videos=300, n_days=1, new_users_per_day=0, new_videos_per_day=0
)


@pytest.fixture(scope="module")
def world() -> VideoRecWorld:
    return VideoRecWorld(Scale.TINY, 0, config=CFG)


def _rankings(w: VideoRecWorld, users: np.ndarray) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Both rankers pick from each user's 60 most clickable videos: control the 20 shortest,
    treatment the 20 with the most expected minutes (about the same clicks, far more minutes)."""
    vids = np.arange(len(w.videos))
    dur = w.videos["duration_min"].to_numpy()
    ctrl, treat = [], []
    for u in users:
        top = vids[np.argsort(-w.p_click(np.full(len(vids), u), vids, w.day))[:60]]
        ctrl.append(top[np.argsort(dur[top])[:20]])
        minutes = w.expected_watch_minutes(np.full(len(top), u), top)
        treat.append(top[np.argsort(-minutes)[:20]])
    return ctrl, treat


def test_ab_and_interleaving_serve_each_user_the_same_number_of_sessions(
    world: VideoRecWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    users = np.arange(120)
    ctrl, treat = _rankings(world, users)
    served: list[np.ndarray] = []
    real_serve = world.serve

    def counting_serve(u: np.ndarray, slates: np.ndarray, rng: Any, record: bool = False) -> Any:
        served.append(np.asarray(u).copy())
        return real_serve(u, slates, rng, record)

    monkeypatch.setattr(world, "serve", counting_serve)
    res = online.compare_online(world, users, ctrl, treat, np.random.default_rng(0), 3, 0)
    per_user = np.bincount(np.concatenate(served), minlength=len(users))
    # 3 A/B feeds + 3 interleaved feeds for every user: the comparison is like for like
    assert (per_user == 6).all()
    assert res["sessions_per_user"] == res["interleaving"]["sessions_per_user"] == 3
    assert res["alpha"] == 0.05


def test_paired_minutes_catch_a_watch_time_win_that_the_sign_test_is_slow_on(
    world: VideoRecWorld,
) -> None:
    users = np.arange(len(world.users))
    ctrl, treat = _rankings(world, users)
    res = online.compare_online(world, users, ctrl, treat, np.random.default_rng(1), 2, 1)
    il = res["interleaving"]
    assert il["minutes_a"] > 1.5 * il["minutes_b"]  # treatment (team A) wins on minutes
    assert il["paired_minutes"]["p_value"] < 0.05
    assert il["paired_minutes"]["p_value"] < il["p_value"]  # magnitude beats win counting
    need = res["users_needed"]
    assert need["interleaving_minutes"] is not None
    assert need["ab_watch_time"] is None or need["interleaving_minutes"] <= need["ab_watch_time"]


def test_identical_rankers_are_not_told_apart(world: VideoRecWorld) -> None:
    users = np.arange(300)
    ctrl, _ = _rankings(world, users)
    res = online.compare_online(world, users, ctrl, ctrl, np.random.default_rng(2), 2, 2)
    assert res["interleaving"]["paired_minutes"]["p_value"] > 0.05
    assert abs(res["interleaving"]["delta"]) < 0.1


def test_paired_credit_test_edges() -> None:
    with pytest.raises(ValueError, match=">= 2 users"):
        online.paired_credit_test(np.ones(1), np.zeros(1))
    assert online.paired_credit_test(np.ones(5), np.ones(5))["p_value"] == 1.0
    assert online.paired_credit_test(np.full(5, 2.0), np.ones(5))["p_value"] == 0.0
    r = online.paired_credit_test(np.array([3.0, 1.0, 4.0, 1.0]), np.zeros(4))
    assert r["mean_diff"] == pytest.approx(2.25) and 0 < r["p_value"] < 0.1


def test_users_needed_requires_staying_significant() -> None:
    assert online.users_needed([(20, 0.01), (40, 0.2), (80, 0.01), (160, 0.001)]) == 80
    assert online.users_needed([(20, 0.01), (40, 0.2)]) is None


def test_between_user_share_sees_user_traits_and_not_noise() -> None:
    rng = np.random.default_rng(0)
    arm = rng.random(2000) < 0.5
    trait = rng.normal(size=(2000, 1)) * 2.0
    noise_only = rng.normal(size=(2000, 2))
    with_trait = trait + rng.normal(size=(2000, 2))
    assert online.between_user_share(noise_only, arm) < 0.05
    assert online.between_user_share(with_trait, arm) == pytest.approx(0.8, abs=0.05)
    assert np.isnan(online.between_user_share(noise_only[:, :1], arm))


def test_users_for_power_matches_the_textbook_formula() -> None:
    rng = np.random.default_rng(0)
    c, t = (rng.normal(size=4000) for _ in range(2))
    c, t = (c - c.mean()) / c.std(ddof=1), (t - t.mean()) / t.std(ddof=1) + 0.1  # exact moments
    # two arms, SD 1, effect 0.1: 2 * 2 * 7.85 / 0.01 ~ 3,140 users in all
    assert online.users_for_power("ab", c, t) == pytest.approx(3140, rel=0.01)
    assert online.users_for_power("paired", t) == pytest.approx(785, rel=0.01)
    prefs = np.array([1] * 60 + [-1] * 40 + [0] * 100)
    assert online.users_for_power("sign", prefs) > online.users_for_power("sign", prefs[:100])
    assert online.users_for_power("paired", np.zeros(5)) == float("inf")
    with pytest.raises(ValueError, match="unknown kind"):
        online.users_for_power("bogus", c)
