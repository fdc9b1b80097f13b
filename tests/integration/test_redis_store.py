"""RedisStore against a real redis-server behaves exactly like InProcessStore."""

from __future__ import annotations

import hashlib
import socket
from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd
import pytest

from mlsd.features import InProcessStore, OnlineStore, RedisStore, StoreConnectionError, open_store
from mlsd.stores_redis import RunState
from mlsd.systems.ad_click.features import (
    UnknownIdError,
    load_online_store,
    online_tables,
    request_features,
)

pytestmark = pytest.mark.redis


@pytest.fixture
def redis_store(redis_url: str, request: pytest.FixtureRequest) -> Iterator[RedisStore]:
    prefix = "t" + hashlib.sha1(request.node.nodeid.encode()).hexdigest()[:12]  # per test
    store = RedisStore(redis_url, prefix=prefix, chunk_size=64)
    store.clear()
    yield store
    store.clear()
    store.close()


ROWS: dict[str, dict[str, Any]] = {
    "1": {"imps": 3, "ctr": 0.125, "country": "us", "big": 2**40, "neg": -1.5e-9},
    "2": {"imps": np.int64(0), "ctr": np.float32(0.5), "country": "", "big": 0, "neg": 0.0},
    "a:b": {"imps": 1, "ctr": float("inf"), "country": "ü ☃", "big": 1, "neg": True},
}


def _exercise(store: OnlineStore) -> list[object]:
    """The same calls on any store; the results must match."""
    out: list[object] = []
    store.put_many("user", ROWS)
    store.put_many("ad", {str(i): {"bid": i / 7, "cat": f"c{i % 3}"} for i in range(300)})
    out.append(store.get_many("user", ["1", "missing", "a:b", "2"]))
    out.append([type(v).__name__ for v in store.get_many("user", ["1"])[0].values()])  # type: ignore[union-attr]
    out.append(store.get_many("ad", [str(i) for i in range(0, 300, 7)]))
    out.append((store.count("user"), store.count("ad"), store.count("none")))
    store.put_many("user", {"1": {"imps": 4}})  # replace, not merge
    out.append(store.get_many("user", ["1"]))
    out.append(store.get_many("user", []))
    store.clear()
    out.append((store.count("user"), store.get_many("ad", ["1"])))
    return out


def test_redis_store_matches_in_process_store(redis_store: RedisStore) -> None:
    expected = _exercise(InProcessStore())
    got = _exercise(redis_store)
    assert got == expected
    assert expected[0][0] == {  # type: ignore[index]
        "imps": 3,
        "ctr": 0.125,
        "country": "us",
        "big": 2**40,
        "neg": -1.5e-9,
    }


def test_redis_prefixes_are_isolated(redis_url: str) -> None:
    a, b = RedisStore(redis_url, prefix="iso_a"), RedisStore(redis_url, prefix="iso_b")
    try:
        a.put_many("user", {"1": {"x": 1}})
        b.put_many("user", {"1": {"x": 2}})
        b.clear()
        assert a.get_many("user", ["1"]) == [{"x": 1}] and b.count("user") == 0
    finally:
        a.clear()
        a.close()
        b.close()


def test_open_store_picks_redis(redis_url: str) -> None:
    store = open_store(redis_url)
    assert isinstance(store, RedisStore)
    store.close()


def test_connection_failure_names_the_url() -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"redis://127.0.0.1:{port}/0"
    with pytest.raises(StoreConnectionError, match=f"127.0.0.1:{port}"):
        RedisStore(url)


def test_ad_click_features_identical_on_both_stores(redis_store: RedisStore) -> None:
    rng = np.random.default_rng(3)
    n_users, n_ads, n = 12, 8, 300
    users = pd.DataFrame(
        {
            "user_id": np.arange(n_users, dtype=np.int64),
            "age_bucket": rng.integers(0, 6, n_users),
            "gender": rng.choice(np.array(["f", "m"], dtype=object), n_users),
            "country": rng.choice(np.array(["us", "jp"], dtype=object), n_users),
            "signup_day": rng.integers(-9, 0, n_users),
        }
    )
    ads = pd.DataFrame(
        {
            "ad_id": np.arange(50, 50 + n_ads, dtype=np.int64),
            "advertiser_id": rng.integers(0, 3, n_ads),
            "campaign_id": rng.integers(0, 5, n_ads),
            "category": rng.choice(np.array(["a", "b", "c"], dtype=object), n_ads),
            "format": rng.choice(np.array(["image", "video"], dtype=object), n_ads),
            "bid": rng.uniform(0.1, 3.0, n_ads),
            "created_day": rng.integers(-3, 2, n_ads),
            "creative_text": ["t"] * n_ads,
        }
    )
    ts = np.sort(rng.integers(0, 3 * 86_400, n))
    log = pd.DataFrame(
        {
            "ts": ts,
            "day": ts // 86_400,
            "hour": (ts % 86_400) // 3600,
            "user_id": rng.integers(0, n_users - 2, n),
            "ad_id": rng.integers(50, 50 + n_ads, n),
            "position": rng.integers(0, 4, n),
            "device": rng.choice(np.array(["ios", "web"], dtype=object), n),
            "click": (rng.random(n) < 0.2).astype(np.int8),
        }
    )
    tables = online_tables(log, users, ads)
    memory = InProcessStore()
    load_online_store(memory, tables)
    load_online_store(redis_store, tables)
    assert redis_store.count("user") == n_users and redis_store.count("ad") == n_ads
    req = pd.DataFrame(
        {
            "user_id": rng.integers(0, n_users, 200),
            "hour": rng.integers(0, 24, 200),
            "device": rng.choice(np.array(["ios", "web", "android"], dtype=object), 200),
            "ad_id": rng.integers(50, 50 + n_ads, 200),
        }
    )
    pd.testing.assert_frame_equal(
        request_features(redis_store, req), request_features(memory, req), check_exact=True
    )
    with pytest.raises(UnknownIdError):
        request_features(redis_store, req.assign(ad_id=1))


def test_runs_under_one_prefix_never_share_rows(redis_url: str) -> None:
    a = RedisStore(redis_url, prefix="runs", run_id="aaaa")
    b = RedisStore(redis_url, prefix="runs", run_id="bbbb")
    try:
        a.put_many("user", {"1": {"x": 1}})
        b.put_many("user", {"1": {"x": 2}, "2": {"x": 3}})
        assert a.get_many("user", ["1", "2"]) == [{"x": 1}, None]
        assert b.get_many("user", ["1", "2"]) == [{"x": 2}, {"x": 3}]
        b.clear()
        assert a.get_many("user", ["1"]) == [{"x": 1}] and b.count("user") == 0
    finally:
        a.clear()
        a.close()
        b.close()


def test_a_run_is_complete_retired_and_taken_back(redis_url: str) -> None:
    import redis

    store = RedisStore(redis_url, prefix="life", run_id="r1", chunk_size=2)
    raw = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        assert store.run_state() is RunState.MISSING
        store.put_many("user", {str(i): {"x": i} for i in range(5)})
        store.mark_complete()
        assert store.run_state() is RunState.COMPLETE
        touched = store.retire(ttl_s=600)
        assert touched == 5 + 2  # five rows, the namespace's key set, the marker
        assert store.run_state() is RunState.EXPIRING
        keys = list(raw.scan_iter(match="life:r1:*"))
        assert keys and all(0 < raw.ttl(k) <= 600 for k in keys)
        assert store.get_many("user", ["3"]) == [{"x": 3}]  # still served meanwhile
        store.persist_run()
        assert store.run_state() is RunState.COMPLETE
        assert all(raw.ttl(k) == -1 for k in raw.scan_iter(match="life:r1:*"))
        store.retire(ttl_s=600)
        store.put_many("user", {"1": {"x": 9}})  # rewriting keeps the index set too
        assert raw.ttl("life:r1:user:1") == -1 and raw.ttl("life:r1:__keys__:user") == -1
        with pytest.raises(ValueError, match="ttl_s"):
            store.retire(0)
    finally:
        store.clear()
        store.close()
        raw.close()


def test_bad_run_ids_and_urls_are_refused(redis_url: str) -> None:
    with pytest.raises(ValueError, match="bad run id"):
        RedisStore(redis_url, run_id="a:b")
    with pytest.raises(StoreConnectionError, match="bad Redis URL") as info:
        RedisStore("nosuchscheme://:hunter2@127.0.0.1:1/0")
    assert "hunter2" not in str(info.value)


def test_connection_errors_never_show_the_password() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    for url in (f"redis://:hunter2@127.0.0.1:{port}/0", f"redis://bob:hunter2@127.0.0.1:{port}/0"):
        with pytest.raises(StoreConnectionError) as info:
            RedisStore(url, connect_timeout_s=0.5)
        message = str(info.value)
        assert "hunter2" not in message and f"127.0.0.1:{port}" in message and ":***@" in message
        assert info.value.__cause__ is None and info.value.__suppress_context__
