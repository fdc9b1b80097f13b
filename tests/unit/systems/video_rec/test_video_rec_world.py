"""The video world: deterministic, position-biased, growing, with an oracle that skips watched."""

from __future__ import annotations

import numpy as np
import pandas as pd

from mlsd.systems.video_rec.world import VideoRecWorld
from mlsd.systems.video_rec.world_entities import VideoWorldConfig
from mlsd.world import Scale

CFG = VideoWorldConfig(
    n_users=120, n_videos=150, n_days=3, new_users_per_day=5, new_videos_per_day=7
)


def _log(seed: int) -> tuple[VideoRecWorld, pd.DataFrame]:
    w = VideoRecWorld(Scale.TINY, seed, config=CFG)
    return w, w.log()


def test_same_seed_same_log_and_other_seed_differs() -> None:
    _, a = _log(1)
    _, b = _log(1)
    _, c = _log(2)
    pd.testing.assert_frame_equal(a, b)
    assert not a["video_id"].equals(c["video_id"])


def test_daily_growth_and_log_schema() -> None:
    w, df = _log(0)
    assert len(w.videos) == 150 + 2 * 7 and len(w.users) == 120 + 2 * 5
    assert (w.videos["video_id"].to_numpy() == np.arange(len(w.videos))).all()
    assert set(df.columns) >= {"user_id", "video_id", "day", "position", "click", "watch_min"}
    assert (df.loc[df.click == 0, "watch_min"] == 0).all()
    assert (df.loc[df.click == 1, "watch_frac"].between(0, 1)).all()
    # nothing is shown before it is uploaded
    upload = w.videos["upload_day"].to_numpy()[df["video_id"].to_numpy()]
    assert (upload <= df["day"].to_numpy()).all()


def test_position_bias_in_true_probabilities() -> None:
    w, _ = _log(0)
    users, vids = np.arange(50), np.arange(50)
    top = w.p_click(users, vids, w.day, 0)
    low = w.p_click(users, vids, w.day, 9)
    assert (low < top).all()


def test_relevance_excludes_watched_and_oracle_is_finite_on_eligible() -> None:
    w, df = _log(0)
    user = int(df.loc[df.click == 1, "user_id"].iloc[0])
    rel, oracle = w.relevance_sample(np.array([user]), np.random.default_rng(0))
    watched = w.watched[user]
    assert not watched & set(rel[user])
    assert np.isneginf(oracle[0, sorted(watched)]).all()
    assert np.isfinite(oracle[0]).sum() == len(w.videos) - len(watched)
