"""The simulated city: deterministic by seed, point-in-time records, the oracle's probabilities."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mlsd.systems.event_rec.world import EventRecWorld
from mlsd.systems.event_rec.world_config import DAY_S, EventWorldConfig
from mlsd.world import Scale

CFG = EventWorldConfig.for_scale(Scale.TINY).with_(n_days=4, test_days=1, ab_days=1)


@pytest.fixture(scope="module")
def world_and_log() -> tuple[EventRecWorld, object]:
    w = EventRecWorld(Scale.TINY, 0, CFG)
    return w, w.log()


def test_same_seed_same_log_other_seed_other_log(world_and_log: tuple) -> None:
    _w, lg = world_and_log
    again = EventRecWorld(Scale.TINY, 0, CFG).log()
    pd.testing.assert_frame_equal(lg.impressions, again.impressions)
    other = EventRecWorld(Scale.TINY, 1, CFG).log()
    assert not lg.impressions["event_id"].equals(other.impressions["event_id"])


def test_log_is_consistent(world_and_log: tuple) -> None:
    w, lg = world_and_log
    imp = lg.impressions
    assert imp["position"].max() == CFG.list_len - 1
    assert ((imp["p_true"] > 0) & (imp["p_true"] < 1)).all()
    assert (imp["register"] <= imp["click"]).all()  # a registration needs a click
    ev = w.events.set_index("event_id")
    created = ev.loc[imp["event_id"], "created_ts"].to_numpy()
    start = ev.loc[imp["event_id"], "start_ts"].to_numpy()
    assert (created <= imp["ts"].to_numpy()).all() and (start > imp["ts"].to_numpy()).all()
    regs = lg.registrations
    assert len(regs) == int(imp["register"].sum())
    assert not regs.duplicated(["user_id", "event_id"]).any()
    assert 0.005 < imp["register"].mean() < 0.1


def test_state_counts_only_the_past(world_and_log: tuple) -> None:
    w, lg = world_and_log
    t = 2 * DAY_S
    state = w.state(t, lg.registrations, lg.invites)
    before = lg.registrations[lg.registrations["ts"] < t]
    assert state.R.nnz == len(before)
    assert state.event_regs.sum() == len(before)
    later = w.state(4 * DAY_S, lg.registrations, lg.invites)
    assert later.R.nnz == len(lg.registrations) >= state.R.nnz


def test_friends_and_invitations_raise_the_true_probability(world_and_log: tuple) -> None:
    w, lg = world_and_log
    state = w.state(4 * DAY_S, lg.registrations, lg.invites)
    u = np.zeros(5, np.int64)
    e = np.arange(5, dtype=np.int64)
    ts = np.full(5, 3 * DAY_S)
    base = w.logit(state, u, e, ts)
    state.invited = state.invited.tolil()
    for j in e:
        state.invited[0, j] = 1.0
    state.invited = state.invited.tocsr()
    np.testing.assert_allclose(w.logit(state, u, e, ts) - base, 1.2)


def test_large_world_is_refused_with_a_reason() -> None:
    with pytest.raises(ValueError, match="tiny, small and medium"):
        EventWorldConfig.for_scale(Scale.LARGE)


def test_the_days_split_train_validation_test_in_order() -> None:
    for scale in (Scale.TINY, Scale.SMALL, Scale.MEDIUM):
        cfg = EventWorldConfig.for_scale(scale)
        days = cfg.train_days + cfg.validation_days + cfg.testing_days
        assert days == tuple(range(cfg.n_days)), scale
        assert cfg.validation_days and cfg.testing_days and len(cfg.train_days) >= 5
