"""Online tests in the world: A/B and interleaving see the same users and sessions; credit keeps
its magnitude so interleaving detects a ranker that wins on watch time, not on clicks."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from mlsd.systems.video_rec import evaluation_online as online
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
    figures = res.metrics()["online"]
    assert res.sessions_per_user == figures["interleaving"]["sessions_per_user"] == 3
    assert res.alpha == figures["alpha"] == 0.05
    assert res.ab.srm.n_control + res.ab.srm.n_treatment == len(users)
    assert res.interleaving.impressions == len(users)


def test_paired_minutes_catch_a_watch_time_win_that_the_sign_test_is_slow_on(
    world: VideoRecWorld,
) -> None:
    users = np.arange(len(world.users))
    ctrl, treat = _rankings(world, users)
    res = online.compare_online(world, users, ctrl, treat, np.random.default_rng(1), 2, 1)
    assert res.interleaving.a == "treatment"
    assert res.credit["minutes_a"] > 1.5 * res.credit["minutes_b"]  # team A wins on minutes
    assert res.paired_minutes["p_value"] < 0.05
    assert res.paired_minutes["p_value"] < res.interleaving.p_value  # magnitude beats counting
    need = res.users_needed
    assert need["interleaving_minutes"] is not None
    assert need["ab_watch_time"] is None or need["interleaving_minutes"] <= need["ab_watch_time"]


def test_identical_rankers_are_not_told_apart(world: VideoRecWorld) -> None:
    users = np.arange(300)
    ctrl, _ = _rankings(world, users)
    res = online.compare_online(world, users, ctrl, ctrl, np.random.default_rng(2), 2, 2)
    assert res.paired_minutes["p_value"] > 0.05
    assert abs(res.interleaving.delta) < 0.1
    assert res.interleaving.preferred is None
