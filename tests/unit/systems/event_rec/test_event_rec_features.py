"""Point-in-time features and event filtering."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mlsd.systems.event_rec.features import (
    FEATURE_GROUPS,
    FEATURES,
    POSITION,
    Platform,
    daily_states,
    description_words,
    impression_features,
    in_filter,
    pair_frame,
)
from mlsd.systems.event_rec.world import EventRecWorld
from mlsd.systems.event_rec.world_config import DAY_S, EventWorldConfig
from mlsd.world import Scale

CFG = EventWorldConfig.for_scale(Scale.TINY).with_(n_days=4, test_days=1, ab_days=1)


@pytest.fixture(scope="module")
def setup() -> tuple:
    w = EventRecWorld(Scale.TINY, 0, CFG)
    lg = w.log()
    return w, lg, Platform(w.users, w.events.drop(columns=["tag"]), w.hoods)


def test_the_frame_has_every_group_and_no_ids(setup: tuple) -> None:
    w, lg, platform = setup
    imp = lg.impressions.iloc[:50]
    state = w.state(3 * DAY_S, lg.registrations, lg.invites)
    X = pair_frame(platform, state, imp["user_id"], imp["event_id"], imp["ts"])
    assert list(X.columns) == [*FEATURES, POSITION]
    assert not [c for c in X.columns if "id" in c.removeprefix("d_").removeprefix("c_").split("_")]
    assert np.isfinite(X.to_numpy(np.float64)).all()
    assert set(FEATURE_GROUPS) == {"location", "time", "social", "user", "event", "dynamic"}


def test_a_registration_on_the_day_is_not_yet_a_feature(setup: tuple) -> None:
    """Point-in-time: registrations logged on day d do not move day d's features."""
    w, lg, platform = setup
    days = [0, 1, 2, 3]
    states = daily_states(platform, lg, days, CFG.n_hosts, w.friends, w.follows, CFG.n_slots)
    X = impression_features(platform, states, lg.impressions)
    day3 = (lg.impressions["day"] == 3).to_numpy()
    regs = lg.registrations[lg.registrations["day"] < 3]  # drop day 3's registrations
    states_cut = daily_states(
        platform,
        type(lg)(lg.sessions, lg.impressions, regs, lg.invites[lg.invites["day"] < 3]),
        [3],
        CFG.n_hosts,
        w.friends,
        w.follows,
        CFG.n_slots,
    )
    X_cut = impression_features(platform, states_cut, lg.impressions[day3])
    pd.testing.assert_frame_equal(X[day3].reset_index(drop=True), X_cut)
    # and the log's registrations so far are counted: later days see more of them
    assert (
        X.loc[day3, "d_event_regs"].mean()
        > X.loc[~day3 & (lg.impressions["day"] == 0).to_numpy(), "d_event_regs"].mean()
    )


def test_filtering_keeps_near_and_soon(setup: tuple) -> None:
    w, _lg, platform = setup
    u = np.zeros(len(w.events), np.int64)
    e = np.arange(len(w.events))
    ts = np.zeros(len(e), np.int64)
    wide = in_filter(platform, u, e, ts, radius_km=1e9, window_h=1e9)
    near = in_filter(platform, u, e, ts, radius_km=2.0, window_h=1e9)
    soon = in_filter(platform, u, e, ts, radius_km=1e9, window_h=24.0)
    assert wide.all() and near.sum() < wide.sum() and soon.sum() < wide.sum()


def test_description_words_count_category_vocabulary() -> None:
    out = description_words(["jazz band join", "nothing here"])
    assert out[0, 0] == pytest.approx(2 / 3) and out[1].sum() == 0
