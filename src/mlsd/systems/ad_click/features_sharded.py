"""Ad click prediction, step 3 on an engine: point-in-time features one day per shard.

:class:`~.features_streaming.StreamingFeatures` walks the days in order because each day's
features need the counts carried from every earlier day. The carried counts are a prefix sum of
per-day count tables, so the walk splits into three phases, two of them parallel:

1. per day, in parallel (:func:`day_counts`): the day's own impressions and clicks per key
   (user, ad, advertiser, user × category, user × ad, global);
2. on the driver, in day order: the carried counts as of the start of each day, merged exactly
   (:func:`merge_counts`: integer sums per key; the only sequential part, over small tables);
3. per day, in parallel (:func:`day_features`): the day's features from its carried counts, by
   the same :meth:`StreamingFeatures.features` the sequential walk runs, then the day's
   label-blind training sample (its own named random stream).

Every phase is a pure function of its shard, so the local and the Ray engine return the same
frames, and both equal the sequential walk (tests prove both). The counts after the last day
are the online store's tables, as before.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from mlsd.data import DataError, check_schema
from mlsd.engine import Engine
from mlsd.systems.ad_click import features as feats
from mlsd.systems.ad_click.features_streaming import CountTable, StreamingFeatures, sample_rows

Counts = dict[str, CountTable]


@dataclass(frozen=True)
class LogShards:
    """What every shard reads: the log's Parquet file and the entity tables."""

    log_path: Path
    users: pd.DataFrame
    ads: pd.DataFrame
    seed: int


@dataclass(frozen=True)
class DayCounts:
    """Phase 1 of one day: its count tables, rows and time range (to check the days' order)."""

    day: int
    counts: Counts
    rows: int
    first_ts: int
    last_ts: int


@dataclass(frozen=True)
class DayTask:
    """Phase 3 of one day: the counts carried into it, the rows before it, its sample rate."""

    day: int
    carried: Counts
    rows_before: int
    rate: float


@dataclass(frozen=True)
class DayFeatures:
    """One day's (sampled) feature rows with their labels, days and true click probabilities."""

    day: int
    X: pd.DataFrame
    y: np.ndarray
    days: np.ndarray
    p_true: np.ndarray
    rows: int  # the day's rows before sampling


def read_day(path: Path, day: int) -> pd.DataFrame:
    """Day ``day`` of the Parquet log, in file order."""
    table = pq.read_table(path, filters=[("day", "==", day)])
    return table.to_pandas()


def day_counts(shards: LogShards, day: int) -> DayCounts:
    """Phase 1: the impressions and clicks per key of ``day`` alone."""
    chunk = read_day(shards.log_path, day)
    check_schema(chunk, feats.LOG_SCHEMA, "log")
    streamer = StreamingFeatures(shards.users, shards.ads)
    upos = streamer._positions(streamer._user_index, chunk["user_id"], "user_id")
    apos = streamer._positions(streamer._ad_index, chunk["ad_id"], "ad_id")
    keys = streamer._keys(upos, apos)
    y = chunk["click"].to_numpy().astype(np.int64)
    counts: Counts = {}
    for p, _ in feats.STATS:
        counts[p] = CountTable()
        counts[p].add(keys[p], y)
    ts = chunk["ts"].to_numpy(np.int64)
    first, last = (int(ts.min()), int(ts.max())) if ts.size else (0, -1)
    return DayCounts(day, counts, len(chunk), first, last)


def merge_counts(a: CountTable, b: CountTable) -> CountTable:
    """A new table holding ``a``'s and ``b``'s counts summed per key (exact integer sums)."""
    keys = np.union1d(a.keys, b.keys)
    out = CountTable()
    out.keys = keys
    out.imps = np.zeros(keys.size, dtype=np.int64)
    out.clicks = np.zeros(keys.size, dtype=np.int64)
    for t in (a, b):
        pos = np.searchsorted(keys, t.keys)
        out.imps[pos] += t.imps
        out.clicks[pos] += t.clicks
    return out


def copy_counts(table: CountTable) -> CountTable:
    """A copy of ``table`` with its own (writable) arrays."""
    out = CountTable()
    out.keys, out.imps, out.clicks = table.keys.copy(), table.imps.copy(), table.clicks.copy()
    return out


def day_features(shards: LogShards, task: DayTask) -> DayFeatures:
    """Phase 3: ``task.day``'s features from its carried counts, and its training sample."""
    chunk = read_day(shards.log_path, task.day)
    streamer = StreamingFeatures(shards.users, shards.ads)
    # features() folds the day into its counts in place: give it copies (the carried tables
    # are shared with the driver, and read-only when they come from Ray's object store)
    streamer.counts = {p: copy_counts(t) for p, t in task.carried.items()}
    streamer.rows = task.rows_before  # error messages name the line in the whole log
    n_rows = len(chunk)
    X = streamer.features(chunk)
    keep = sample_rows(len(chunk), task.rate, shards.seed, task.day)
    if len(keep) < len(chunk):
        X, chunk = X.iloc[keep], chunk.iloc[keep]
    return DayFeatures(
        day=task.day,
        X=X.reset_index(drop=True),
        y=chunk["click"].to_numpy(np.int64),
        days=chunk["day"].to_numpy(),
        p_true=chunk["p_true"].to_numpy(np.float64),
        rows=n_rows,
    )


def _carried(per_day: Sequence[DayCounts], rates: Mapping[int, float]) -> Iterator[DayTask]:
    """Phase 2, lazily: each day's task with the counts carried into it."""
    carried: Counts = {p: CountTable() for p, _ in feats.STATS}
    rows = 0
    for d in per_day:
        yield DayTask(d.day, carried, rows, rates[d.day])
        carried = {p: merge_counts(carried[p], d.counts[p]) for p in carried}
        rows += d.rows


def final_counts(per_day: Sequence[DayCounts]) -> Counts:
    """The counts after the last day (the online store's tables)."""
    carried: Counts = {p: CountTable() for p, _ in feats.STATS}
    for d in per_day:
        carried = {p: merge_counts(carried[p], d.counts[p]) for p in carried}
    return carried


def check_day_order(path: Path, per_day: Sequence[DayCounts]) -> None:
    """:class:`DataError` unless every day's timestamps follow the previous day's."""
    last: int | None = None
    for d in per_day:
        if d.rows and last is not None and d.first_ts <= last:
            message = (
                f"day {d.day} starts at ts {d.first_ts}, not after the previous day's last ts "
                f"{last}: the log's days overlap in time"
            )
            raise DataError(path, message, field="ts")
        if d.rows:
            last = d.last_ts


def sharded_features(
    engine: Engine, shards: LogShards, days: Sequence[int], rates: Mapping[int, float]
) -> tuple[Iterator[DayFeatures], StreamingFeatures]:
    """The three phases on ``engine``: the days' features in day order (lazily) and a streamer
    holding the counts after the last day (its :meth:`~StreamingFeatures.tables` are the online
    store's)."""
    per_day = engine.map(day_counts, days, shared=shards)
    check_day_order(shards.log_path, per_day)
    end = StreamingFeatures(shards.users, shards.ads)
    end.counts = final_counts(per_day)
    end.rows = sum(d.rows for d in per_day)
    end.last_day = max(days) if days else None
    features = engine.imap(day_features, _carried(per_day, rates), shared=shards)
    return features, end
