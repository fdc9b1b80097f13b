"""Streaming point-in-time features: the same numbers as the whole-log path, day by day."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlsd.data import DataError, write_parquet
from mlsd.systems.ad_click.features import FEATURE_COLUMNS, offline_features, online_tables
from mlsd.systems.ad_click.features_streaming import (
    CountTable,
    StreamingFeatures,
    iter_days,
    sample_rows,
)
from mlsd.systems.ad_click.world import AdClickWorld


@cache
def tiny() -> tuple[AdClickWorld, list[pd.DataFrame]]:
    world = AdClickWorld("tiny", seed=5)
    return world, list(world.iter_log())


def test_count_table_adds_and_looks_up() -> None:
    t = CountTable()
    t.add(np.array([5, 3, 5, 9]), np.array([1, 0, 0, 1]))
    t.add(np.array([3, 7]), np.array([1, 1]))
    imps, clicks = t.lookup(np.array([3, 5, 7, 9, 4, 100]))
    assert imps.tolist() == [2, 2, 1, 1, 0, 0]
    assert clicks.tolist() == [1, 1, 1, 1, 0, 0]
    assert t.keys.tolist() == [3, 5, 7, 9]


def test_streaming_features_equal_the_whole_log_features_day_by_day() -> None:
    world, chunks = tiny()
    log = pd.concat(chunks, ignore_index=True)
    expected = offline_features(log, world.users, world.ads)
    stream = StreamingFeatures(world.users, world.ads)
    start = 0
    for chunk in chunks:
        got = stream.features(chunk)
        want = expected.iloc[start : start + len(chunk)].reset_index(drop=True)
        assert list(got.columns) == list(FEATURE_COLUMNS)
        pd.testing.assert_frame_equal(got.reset_index(drop=True), want, check_exact=True)
        start += len(chunk)
    assert start == len(log) > 0
    assert stream.features(chunks[0].iloc[:0]).empty  # an empty chunk is fine


def test_carried_counts_are_the_online_tables() -> None:
    world, chunks = tiny()
    stream = StreamingFeatures(world.users, world.ads)
    for chunk in chunks:
        stream.features(chunk)
    expected = online_tables(pd.concat(chunks, ignore_index=True), world.users, world.ads)
    got = stream.tables()
    assert set(got) == set(expected)
    for namespace, frame in expected.items():
        assert len(frame) > 0, namespace
        # the pair namespaces come in key order from the count arrays, first-seen order offline
        want = frame.sort_values("key", ignore_index=True)
        have = got[namespace].sort_values("key", ignore_index=True)
        pd.testing.assert_frame_equal(have, want, check_exact=True, obj=namespace)
    assert got["user_ad"]["imps"].to_numpy().itemsize < 8  # compact dtypes
    assert isinstance(got["user"]["country"].dtype, pd.CategoricalDtype)


def test_chunks_out_of_time_order_raise() -> None:
    world, chunks = tiny()
    stream = StreamingFeatures(world.users, world.ads)
    stream.features(chunks[1])
    with pytest.raises(DataError, match="time order"):
        stream.features(chunks[0])


def test_unknown_ids_raise_with_the_row() -> None:
    world, chunks = tiny()
    bad = chunks[0].copy()
    bad.loc[3, "ad_id"] = 10**9
    with pytest.raises(DataError, match="unknown ad_id"):
        StreamingFeatures(world.users, world.ads).features(bad)


def test_iter_days_regroups_any_row_group_layout(tmp_path: Path) -> None:
    _, chunks = tiny()
    log = pd.concat(chunks[:3], ignore_index=True)
    step = 1_700  # row groups that straddle day boundaries
    write_parquet((log.iloc[i : i + step] for i in range(0, len(log), step)), tmp_path / "l.pq")
    days = list(iter_days(tmp_path / "l.pq"))
    assert [int(d["day"].iloc[0]) for d in days] == [0, 1, 2]
    for got, want in zip(days, chunks[:3], strict=True):
        pd.testing.assert_frame_equal(got, want.reset_index(drop=True), check_dtype=False)


def test_sample_rows_is_uniform_seeded_and_a_no_op_at_rate_one() -> None:
    assert sample_rows(10, 1.0, seed=0, day=3).tolist() == list(range(10))
    a = sample_rows(10_000, 0.25, seed=0, day=3)
    assert len(a) == 2_500 and np.all(np.diff(a) > 0)
    assert np.array_equal(a, sample_rows(10_000, 0.25, seed=0, day=3))
    assert not np.array_equal(a, sample_rows(10_000, 0.25, seed=0, day=4))
    assert abs(a.mean() - 5_000) < 300  # spread over the whole day, not its start
