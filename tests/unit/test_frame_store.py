"""FrameStore, the columnar in-process online store, answers exactly like InProcessStore."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlsd.data import read_parquet, write_parquet
from mlsd.stores import (
    KEY,
    FrameStore,
    InProcessStore,
    OnlineStore,
    frame_rows,
    open_store,
    put_frame,
)


def frames() -> dict[str, pd.DataFrame]:
    """Compact dtypes of every kind the ad-click tables use, tiny and seeded."""
    rng = np.random.default_rng(3)
    n = 40
    user = pd.DataFrame(
        {
            KEY: pd.array([str(i * 7) for i in range(n)], dtype="str"),
            "age_bucket": rng.integers(0, 6, n).astype(np.int8),
            "country": pd.Categorical(rng.choice(["us", "de", "in"], n)),
            "signup_day": rng.uniform(-30, 0, n),
            "imps": rng.integers(0, 30_000, n).astype(np.int16),
            "clicks": rng.integers(0, 9, n).astype(np.int32),
            "flag": rng.random(n) < 0.5,
            "score32": rng.random(n).astype(np.float32),
        }
    )
    pairs = pd.DataFrame(
        {
            KEY: pd.array([f"{i}:{c}" for i in range(n) for c in ("food", "ü ☃")], dtype="str"),
            "imps": np.arange(2 * n, dtype=np.int64) * 2**33,  # beyond int32
            "clicks": np.zeros(2 * n, dtype=np.int8),
        }
    )
    glob = pd.DataFrame({KEY: ["all"], "imps": [123], "clicks": [4], "as_of_day": [9]})
    return {"user": user, "user_category": pairs, "global": glob}


def row_store(tables: dict[str, pd.DataFrame]) -> InProcessStore:
    store = InProcessStore()
    for namespace, frame in tables.items():
        put_frame(store, namespace, frame, chunk=7)  # several chunks
    return store


def typed(rows: list[dict[str, object] | None]) -> list[object]:
    """Rows with the type of every value, so 1 == 1.0 == True cannot hide a difference."""
    return [None if r is None else {k: (type(v).__name__, v) for k, v in r.items()} for r in rows]


def test_frame_store_answers_like_the_in_process_store() -> None:
    tables = frames()
    columnar, rows = FrameStore(tables), row_store(tables)
    assert isinstance(columnar, OnlineStore)
    probes = {
        "user": ["7", "missing", "0", "7", "273", "", "14"],
        "user_category": ["3:food", "3:ü ☃", "3:drink", "39:food"],
        "global": ["all", "none"],
        "nowhere": ["1"],
    }
    for namespace, keys in probes.items():
        got, want = columnar.get_many(namespace, keys), rows.get_many(namespace, keys)
        assert typed(got) == typed(want), namespace
        assert columnar.count(namespace) == rows.count(namespace)
    hit = columnar.get_many("user", ["7"])[0]
    assert hit is not None and hit["country"] in {"us", "de", "in"}
    assert type(hit["flag"]) is int and type(hit["age_bucket"]) is int
    assert columnar.get_many("user_category", ["39:food"])[0] == {"imps": 78 * 2**33, "clicks": 0}
    assert columnar.get_many("user", []) == [] and columnar.get_many("user", ["x"]) == [None]
    every = tables["user"][KEY].tolist()
    assert typed(columnar.get_many("user", every)) == typed(rows.get_many("user", every))


def test_int_keys_are_looked_up_as_strings() -> None:
    store = FrameStore(frames())
    assert store.get_many("user", [7, 8]) == store.get_many("user", ["7", "8"])  # type: ignore[list-item]
    assert store.get_many("user", [7])[0] is not None  # type: ignore[list-item]


def test_put_many_replaces_rows_and_checks_fields() -> None:
    tables = frames()
    columnar, rows = FrameStore(tables), row_store(tables)
    update = {
        "all": {"imps": 5, "clicks": 1, "as_of_day": 10},
        "new": {"imps": 1, "clicks": 0, "as_of_day": 0},
    }
    for store in (columnar, rows):
        store.put_many("global", update)
    keys = ["all", "new", "x"]
    assert typed(columnar.get_many("global", keys)) == typed(rows.get_many("global", keys))
    assert columnar.count("global") == 2
    with pytest.raises(ValueError, match="global/all: a FrameStore row needs the fields"):
        columnar.put_many("global", {"all": {"imps": 1}})
    fresh = FrameStore()
    fresh.put_many("ad", {"1": {"bid": 0.5}, "2": {"bid": 1.5}})
    assert fresh.get_many("ad", ["2", "3"]) == [{"bid": 1.5}, None]
    columnar.clear()
    assert columnar.count("user") == 0 and columnar.get_many("user", ["7"]) == [None]


def test_bad_frames_raise_clear_errors() -> None:
    with pytest.raises(ValueError, match="user: an online table frame needs a 'key' column"):
        FrameStore({"user": pd.DataFrame({"imps": [1]})})
    with pytest.raises(ValueError, match="duplicate key '1'"):
        FrameStore({"user": pd.DataFrame({KEY: ["1", "2", "1"], "imps": [1, 2, 3]})})
    with pytest.raises(ValueError, match="bad namespace"):
        FrameStore({"a:b": pd.DataFrame({KEY: ["1"], "imps": [1]})})


def test_frames_survive_parquet_and_open_store(tmp_path: Path) -> None:
    tables = frames()
    back = {}
    for namespace, frame in tables.items():
        back[namespace] = read_parquet(write_parquet(frame, tmp_path / f"{namespace}.parquet"))
        pd.testing.assert_frame_equal(back[namespace], frame, check_exact=True)
    store = open_store(None, back)
    assert isinstance(store, FrameStore)
    assert isinstance(open_store(None), InProcessStore)
    keys = [*tables["user"][KEY].tolist()[::3], "nope"]
    assert typed(store.get_many("user", keys)) == typed(row_store(tables).get_many("user", keys))
    assert frame_rows(tables["global"]) == {"all": {"imps": 123, "clicks": 4, "as_of_day": 9}}
