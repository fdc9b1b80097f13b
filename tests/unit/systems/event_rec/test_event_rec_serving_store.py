"""The streaming features in an online store: the same answers as from the run's tables, in
memory and in a real Redis; a streamed registration shows up at once; a failing store degrades to
the run's tables."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from mlsd.settings import Settings
from mlsd.stores import InProcessStore, StoreConnectionError
from mlsd.systems.event_rec.features import Platform, daily_states, impression_features
from mlsd.systems.event_rec.model import ScaledLogistic
from mlsd.systems.event_rec.serving import (
    EventRecScorer,
    load_scorer,
    save_serving_artifacts,
    world_tables,
)
from mlsd.systems.event_rec.serving_store import record_registration, store_state
from mlsd.systems.event_rec.world import EventRecWorld
from mlsd.systems.event_rec.world_config import DAY_S, EventWorldConfig
from mlsd.world import Scale

CFG = EventWorldConfig.for_scale(Scale.TINY).with_(n_days=4, test_days=1, ab_days=1)
USERS = (0, 3, 17, 42, 120, 299)


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    w = EventRecWorld(Scale.TINY, 0, CFG)
    lg = w.log()
    tables = world_tables(w, lg)
    platform = Platform(tables.users, tables.events, tables.hoods)
    days = list(range(CFG.n_days))
    states = daily_states(platform, lg, days, CFG.n_hosts, w.friends, w.follows, CFG.n_slots)
    X = impression_features(platform, states, lg.impressions)
    model = ScaledLogistic().fit(X, lg.impressions["register"].to_numpy(np.int64))
    out = tmp_path_factory.mktemp("event-rec-store")
    save_serving_artifacts(
        out / "artifacts", model, "lr", tables, CFG.n_days * DAY_S, CFG.n_hosts, CFG.n_slots
    )
    return out


def _answers(scorer: EventRecScorer) -> list[list[tuple[int, float, int]]]:
    return [
        [(e.event_id, round(e.score, 9), e.friends_registered) for e in r.events]
        for r in (scorer.recommend(u, k=20) for u in USERS)
    ]


def _in_process(run: Path) -> EventRecScorer:
    scorer = load_scorer(run, Settings())
    store = InProcessStore()
    scorer.fill_store(store)
    scorer.store = store
    return scorer


def test_the_store_state_equals_the_run_tables_state(run: Path) -> None:
    scorer = _in_process(run)
    assert scorer.store is not None
    e = scorer.open_events
    for u in USERS:
        s = store_state(
            scorer.store, u, e, scorer.host_of, scorer.shape, scorer.friends, scorer.clock_ts
        )
        m = scorer.state
        uu = np.full(len(e), u)
        for attr in ("R", "friends_registered", "invited"):
            assert np.array_equal(
                s.pair_lookup(getattr(s, attr), uu, e), m.pair_lookup(getattr(m, attr), uu, e)
            ), attr
        assert np.array_equal(s.event_regs[e], m.event_regs[e])
        assert np.array_equal(s.user_cat[u], m.user_cat[u]) and s.user_paid[u] == m.user_paid[u]
        start = scorer.platform.events["start_ts"].to_numpy()[e]
        dur = scorer.platform.events["duration_h"].to_numpy()[e]
        assert np.array_equal(s.overlap(uu, start, dur), m.overlap(uu, start, dur))


def test_answers_from_an_in_process_store_equal_the_tables(run: Path) -> None:
    memory = load_scorer(run, Settings())
    stored = _in_process(run)
    rec = stored.recommend(USERS[0])
    assert rec.features_from == "store" and not rec.degraded
    assert _answers(stored) == _answers(memory)


def test_answers_from_redis_equal_the_tables(run: Path, redis_url: str) -> None:
    memory = load_scorer(run, Settings())
    redis = load_scorer(run, Settings(redis_url=redis_url))
    assert redis.store is not None and type(redis.store).__name__ == "RedisStore"
    assert redis.recommend(USERS[1]).features_from == "store"
    assert _answers(redis) == _answers(memory)
    again = load_scorer(run, Settings(redis_url=redis_url))  # the run's keys are reused
    assert _answers(again) == _answers(memory)


def test_a_streamed_registration_is_seen_by_the_next_request(run: Path) -> None:
    scorer = _in_process(run)
    assert scorer.store is not None
    f = scorer.friends
    user = next(u for u in range(scorer.n_users) if f.indptr[u + 1] > f.indptr[u])
    friend = int(f.indices[f.indptr[user]])
    event = int(scorer.recommend(user, k=1, radius_km=1000.0).events[0].event_id)
    before = store_state(
        scorer.store, user, scorer.open_events, scorer.host_of, scorer.shape, f, scorer.clock_ts
    )
    record_registration(scorer.store, friend, event, scorer.platform.events, f, scorer.clock_ts)
    after = store_state(
        scorer.store, user, scorer.open_events, scorer.host_of, scorer.shape, f, scorer.clock_ts
    )
    u, e = np.array([user]), np.array([event])
    assert after.event_regs[event] == before.event_regs[event] + 1
    assert after.pair_lookup(after.friends_registered, u, e)[0] == (
        before.pair_lookup(before.friends_registered, u, e)[0] + 1
    )
    # the friend registered: the event leaves their own list
    mine = scorer.recommend(friend, k=500, radius_km=1000.0)
    assert event not in {x.event_id for x in mine.events}


class _Down(InProcessStore):
    def get_many(self, namespace: str, keys: Sequence[str]) -> list[dict[str, Any] | None]:
        raise StoreConnectionError("redis at redis://:***@nowhere: timed out")

    def put_many(self, namespace: str, rows: Mapping[str, Mapping[str, Any]]) -> None:
        raise StoreConnectionError("down")


def test_a_failing_store_degrades_to_the_run_tables(run: Path) -> None:
    memory = load_scorer(run, Settings())
    scorer = load_scorer(run, Settings())
    scorer.store = _Down()
    rec = scorer.recommend(USERS[2])
    assert rec.degraded and rec.features_from == "memory"
    assert _answers(scorer) == _answers(memory)


def test_an_unreachable_redis_is_named_without_its_password(run: Path) -> None:
    with pytest.raises(StoreConnectionError) as err:
        load_scorer(run, Settings(redis_url="redis://:hunter2@127.0.0.1:1/0"))
    assert "hunter2" not in str(err.value) and "***" in str(err.value)
