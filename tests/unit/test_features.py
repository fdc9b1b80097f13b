"""Step 3 feature engineering: stable hashing, point-in-time statistics, the stores."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlsd.data import DataError
from mlsd.features import (
    InProcessStore,
    OfflineStore,
    OnlineStore,
    hash_cross,
    hash_values,
    open_store,
    point_in_time_counts,
    point_in_time_join,
    smoothed_rate,
)
from mlsd.models import HASH_BUCKETS

# ---- hashing ---------------------------------------------------------------------------------


def test_hash_values_range_dtype_and_field_keying() -> None:
    h = hash_values("ad_id", np.arange(10_000))
    assert h.dtype == np.int64
    assert h.min() >= 0 and h.max() < HASH_BUCKETS
    assert len(np.unique(h)) > 9_900  # few collisions in 2**20 buckets
    assert not np.array_equal(h, hash_values("user_id", np.arange(10_000)))
    s = hash_values("country", pd.Series(["us", "de", "us"]))
    assert s[0] == s[2] != s[1]


def test_hash_values_ignore_container_and_int_width() -> None:
    ref = hash_values("hour", np.array([0, 5, 23], dtype=np.int64))
    assert np.array_equal(ref, hash_values("hour", np.array([0, 5, 23], dtype=np.int8)))
    assert np.array_equal(ref, hash_values("hour", [0, 5, 23]))
    assert np.array_equal(ref, hash_values("hour", pd.Series([0, 5, 23], dtype="int16")))
    assert np.array_equal(ref, hash_values("hour", np.array([0.0, 5.0, 23.0])))
    assert np.array_equal(ref, hash_values("hour", np.array([0, 5, 23], dtype=object)))
    strs = hash_values("device", np.array(["ios", "web"], dtype=object))
    assert np.array_equal(strs, hash_values("device", pd.Series(["ios", "web"], dtype="string")))
    assert np.array_equal(strs, hash_values("device", ["ios", "web"]))


def test_hash_values_stable_across_processes() -> None:
    code = (
        "from mlsd.features import hash_values, hash_cross;"
        "print(hash_values('device', ['ios', 'web']).tolist(),"
        " hash_values('ad_id', [1, 2]).tolist(),"
        " hash_cross('device', ['ios'], 'format', ['video']).tolist())"
    )
    outputs = set()
    for seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        res = subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
        )
        outputs.add(res.stdout.strip())
    here = str(
        [
            hash_values("device", ["ios", "web"]).tolist(),
            hash_values("ad_id", [1, 2]).tolist(),
            hash_cross("device", ["ios"], "format", ["video"]).tolist(),
        ]
    )
    assert len(outputs) == 1
    assert outputs.pop() == here.replace("[[", "[").replace("]]", "]").replace("], [", "] [")


def test_hash_values_golden() -> None:
    """Pinned buckets: changing the hash silently breaks every saved model and online store."""
    assert hash_values("device", ["ios", "web"]).tolist() == [653543, 232795]
    assert hash_values("ad_id", [1, 2]).tolist() == [325424, 584174]
    assert hash_cross("device", ["ios"], "format", ["video"]).tolist() == [879945]


def test_hash_cross_differs_from_parts_and_is_ordered_by_field() -> None:
    a = np.array(["us", "us", "de"], dtype=object)
    b = np.array(["gaming", "travel", "gaming"], dtype=object)
    x = hash_cross("country", a, "category", b)
    assert x.dtype == np.int64 and (x >= 0).all() and (x < HASH_BUCKETS).all()
    assert len(set(x.tolist())) == 3
    assert not np.array_equal(x, hash_values("country", a))
    assert np.array_equal(x, hash_cross("country", list(a), "category", list(b)))
    with pytest.raises(ValueError):
        hash_cross("country", a, "category", b[:2])


# ---- point-in-time counts: the proof ---------------------------------------------------------


def _events() -> pd.DataFrame:
    # user 1: clicks at t=10, ties at t=20 (one click, one not), then t=30
    return pd.DataFrame(
        {
            "user_id": [1, 1, 1, 2, 1, 2],
            "ts": [10, 20, 20, 20, 30, 5],
            "click": [1, 1, 0, 1, 0, 0],
        },
        index=[100, 101, 102, 103, 104, 105],
    )


def test_point_in_time_counts_strictly_before() -> None:
    ev = _events()
    out = point_in_time_counts(ev, ["user_id"], name="user")
    assert list(out.columns) == ["user_imps", "user_clicks"]
    assert list(out.index) == list(ev.index)
    # t=10: nothing before. Including the current event would give 1 click.
    # t=20 ties: only the t=10 event; including ties would give 2-3 imps.
    # t=30: the three events of user 1 before it, 2 clicks.
    assert out["user_imps"].tolist() == [0, 1, 1, 1, 3, 0]
    assert out["user_clicks"].tolist() == [0, 1, 1, 0, 2, 0]
    # user 2: the t=5 event (no click) precedes the t=20 one
    assert out.loc[103, "user_imps"] == 1
    assert out["user_imps"].dtype == np.int64
    # non-integer times take the other SQL path (cumulative window minus ties): same answer
    as_float = point_in_time_counts(ev.assign(ts=ev["ts"] + 0.5), ["user_id"], name="user")
    pd.testing.assert_frame_equal(as_float, out)


def test_point_in_time_counts_unchanged_by_future_events() -> None:
    rng = np.random.default_rng(5)
    n = 400
    ev = pd.DataFrame(
        {
            "user_id": rng.integers(0, 20, n),
            "cat": rng.choice(np.array(["a", "b", "c"], dtype=object), n),
            "ts": np.sort(rng.integers(0, 1_000, n)),
            "click": (rng.random(n) < 0.3).astype(np.int8),
        }
    )
    past = ev[ev["ts"] < 600]
    full = point_in_time_counts(ev, ["user_id", "cat"], name="uc")
    only_past = point_in_time_counts(past, ["user_id", "cat"], name="uc")
    pd.testing.assert_frame_equal(full.loc[past.index], only_past)
    # flipping the label of an event never changes its own features (no label leakage)
    clicks = ev["click"].to_numpy().copy()
    clicks[123] = 1 - clicks[123]
    again = point_in_time_counts(ev.assign(click=clicks), ["user_id", "cat"], name="uc")
    pd.testing.assert_series_equal(again.iloc[123], full.iloc[123])
    # brute force on every row
    for i in range(0, n, 37):
        row = ev.iloc[i]
        prior = ev[(ev.user_id == row.user_id) & (ev["cat"] == row["cat"]) & (ev.ts < row.ts)]
        assert full.iloc[i]["uc_imps"] == len(prior)
        assert full.iloc[i]["uc_clicks"] == prior["click"].sum()


@pytest.mark.parametrize("keys", [[], ["user_id"], ["user_id", "cat"]])
@pytest.mark.parametrize("float_time", [False, True])
def test_point_in_time_engines_agree(keys: list[str], float_time: bool) -> None:
    rng = np.random.default_rng(11)
    n = 500
    ev = pd.DataFrame(
        {
            "user_id": rng.integers(0, 15, n),
            "cat": rng.choice(np.array(["a", "b"], dtype=object), n),
            "ts": rng.integers(0, 200, n),  # unsorted, many ties
            "click": (rng.random(n) < 0.3).astype(np.int8),
        }
    )
    if float_time:
        ev["ts"] = ev["ts"] * 0.5
    duck = point_in_time_counts(ev, keys, name="s", engine="duckdb")
    fast = point_in_time_counts(ev, keys, name="s", engine="numpy")
    pd.testing.assert_frame_equal(duck, fast)
    i = 77
    mask = ev["ts"] < ev["ts"].iloc[i]
    for k in keys:
        mask &= ev[k] == ev[k].iloc[i]
    assert duck["s_imps"].iloc[i] == mask.sum() and duck["s_clicks"].iloc[i] == ev.click[mask].sum()


def test_point_in_time_counts_global_and_shuffled_rows() -> None:
    ev = _events().sample(frac=1.0, random_state=0)
    out = point_in_time_counts(ev, [], name="all")
    expected = [int((ev["ts"] < t).sum()) for t in ev["ts"]]
    assert out["all_imps"].tolist() == expected
    with pytest.raises(DataError, match="field 'nope'"):
        point_in_time_counts(ev, ["nope"])


def test_point_in_time_join_is_as_of_strictly_before() -> None:
    events = pd.DataFrame({"user_id": [1, 1, 1, 2, 3], "t": [5, 10, 11, 10, 10]})
    feats = pd.DataFrame({"user_id": [1, 1, 2], "ft": [0, 10, 10], "score": [0.1, 0.9, 0.5]})
    out = point_in_time_join(events, feats, ["user_id"], "t", "ft")
    assert list(out.columns) == ["user_id", "t", "score"]
    # t=10 for user 1 must not see the row computed at 10; user 2 has nothing before 10
    assert out["score"].tolist()[:3] == [0.1, 0.1, 0.9]
    assert np.isnan(out["score"].iloc[3]) and np.isnan(out["score"].iloc[4])


def test_smoothed_rate_moves_from_prior_to_observed() -> None:
    r = smoothed_rate(np.array([0, 1, 500]), np.array([0, 1, 1000]), 0.02, 20.0)
    assert r[0] == pytest.approx(0.02)
    assert 0.02 < r[1] < 0.1  # one click in one impression is not 100%
    assert r[2] == pytest.approx((500 + 0.4) / 1020)
    with pytest.raises(ValueError):
        smoothed_rate(1, 1, 0.1, 0.0)


# ---- stores ----------------------------------------------------------------------------------


def test_in_process_store_contract() -> None:
    store = open_store(None)
    assert isinstance(store, InProcessStore) and isinstance(store, OnlineStore)
    store.put_many("user", {"1": {"imps": np.int64(3), "ctr": 0.25, "country": "us"}})  # type: ignore[dict-item]
    store.put_many("user", {"2": {"imps": 0, "ctr": 0.0, "country": "de"}})
    got = store.get_many("user", ["1", "9", "2"])
    assert got[0] == {"imps": 3, "ctr": 0.25, "country": "us"}
    assert type(got[0]["imps"]) is int  # type: ignore[index]
    assert got[1] is None
    assert store.count("user") == 2 and store.count("ad") == 0
    got[0]["imps"] = 99  # type: ignore[index]
    assert store.get_many("user", ["1"])[0]["imps"] == 3  # type: ignore[index]
    store.put_many("user", {"1": {"imps": 4}})  # replaces the row
    assert store.get_many("user", ["1"]) == [{"imps": 4}]
    store.clear()
    assert store.count("user") == 0
    with pytest.raises(ValueError):
        store.put_many("bad:ns", {"1": {"a": 1}})
    with pytest.raises(TypeError):
        store.put_many("user", {"1": {"a": [1, 2]}})  # type: ignore[dict-item]


def test_offline_store_roundtrip(tmp_path: Path) -> None:
    store = OfflineStore(tmp_path / "features")
    assert store.names() == []
    df = pd.DataFrame({"d_x": [0.5, 1.0], "c_y": [3, 4]})
    store.write("train", df)
    store.write("test", df.iloc[:1])
    assert store.names() == ["test", "train"]
    pd.testing.assert_frame_equal(store.read("train"), df)
    with pytest.raises(DataError, match="no feature table 'nope'"):
        store.read("nope")
    with pytest.raises(ValueError):
        store.write("../escape", df)
