"""Step 3 of the book, feature engineering: stable hashing and point-in-time correct statistics.

The book's step 3 turns entities and logs into features: categorical ids through the hashing
trick, counts and rates of past behaviour, and crosses of features. Two rules make those features
safe to train on and to serve:

* **stable hashing.** ``hash_values(field, values)`` maps any ids to ``int64`` buckets in
  ``[0, models.HASH_BUCKETS)`` with a keyed, deterministic hash (never Python's ``hash()``, which
  is salted per process), so training and serving, today and next month, agree on every bucket;
* **point-in-time correctness.** A statistic for an event at time ``t`` counts only events
  strictly before ``t``; otherwise the label leaks into its own features, the offline metrics lie,
  and the online model sees features it never saw in training. The offline path computes these
  with DuckDB window functions; the online store (:mod:`mlsd.stores`, re-exported here) holds the
  same raw statistics as of the end of the log.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any, Literal

import duckdb
import numpy as np
import pandas as pd
from pandas.util import hash_array

from mlsd.data import DataError
from mlsd.hashing import GOLDEN, mix64
from mlsd.models import HASH_BUCKETS
from mlsd.stores import (
    InProcessStore,
    OfflineStore,
    OnlineStore,
    StoreConnectionError,
    open_store,
)
from mlsd.stores_redis import RedisStore

__all__ = [
    "InProcessStore",
    "OfflineStore",
    "OnlineStore",
    "RedisStore",
    "StoreConnectionError",
    "combine_cross",
    "cross_left",
    "cross_right",
    "hash_cross",
    "hash_values",
    "open_store",
    "point_in_time_counts",
    "point_in_time_join",
    "smoothed_rate",
]

_HASH_KEY = "mlsd-hash-key-01"  # siphash key for strings: 16 characters, fixed forever


# --------------------------------------------------------------------------------------------
# Hashing trick
# --------------------------------------------------------------------------------------------


def _salt(field: str) -> np.uint64:
    digest = hashlib.blake2b(field.encode("utf-8"), digest_size=8).digest()
    return np.uint64(int.from_bytes(digest, "little"))


def _as_array(values: Any) -> np.ndarray:
    if isinstance(values, pd.Series | pd.Index):
        if pd.api.types.is_string_dtype(values.dtype) or isinstance(values.dtype, pd.StringDtype):
            return values.astype(object).to_numpy(dtype=object, na_value="<NA>")
        if values.hasnans and not pd.api.types.is_float_dtype(values.dtype):
            return values.to_numpy(dtype=object, na_value="<NA>")
        return values.to_numpy()
    return np.asarray(values)


def _raw_hash(values: Any) -> np.ndarray:
    """A uint64 per value; equal values give equal hashes whatever the container or int width."""
    arr = _as_array(values).ravel()
    if arr.dtype == object:
        inferred = pd.api.types.infer_dtype(arr, skipna=False)
        if inferred == "integer":
            arr = arr.astype(np.int64)
        elif inferred in ("floating", "mixed-integer-float"):
            arr = arr.astype(np.float64)
        elif inferred == "boolean":
            arr = arr.astype(np.bool_)
    if arr.dtype.kind in "biu":
        return arr.astype(np.int64).view(np.uint64)
    if arr.dtype.kind == "f":
        f = arr.astype(np.float64) + 0.0  # -0.0 -> 0.0
        integral = np.isfinite(f) & (f == np.floor(f)) & (np.abs(f) < 2.0**62)
        as_int = np.where(integral, f, 0.0).astype(np.int64).view(np.uint64)
        return np.where(integral, as_int, f.view(np.uint64) ^ GOLDEN)
    codes, uniques = pd.factorize(arr, use_na_sentinel=False)  # hash each distinct value once
    strings = np.array([v if isinstance(v, str) else str(v) for v in uniques], dtype=object)
    hashed: np.ndarray = hash_array(strings, hash_key=_HASH_KEY, categorize=False)
    return hashed[codes]


def hash_values(field: str, values: Any) -> np.ndarray:
    """Hash ``values`` of feature ``field`` to int64 buckets in ``[0, HASH_BUCKETS)``.

    The hashing trick (the ad click prediction chapter): no vocabulary to build or ship, unseen ids
    still get a bucket. Keyed by ``field`` so that ``user 7`` and ``ad 7`` land apart. Stable across
    processes and runs; integers hash the same whatever their width (int8 hour == int64 hour), and
    integral floats hash like the integer.
    """
    h = mix64(_raw_hash(values) ^ _salt(field))
    return (h % np.uint64(HASH_BUCKETS)).astype(np.int64)


def hash_cross(field_a: str, a: Any, field_b: str, b: Any) -> np.ndarray:
    """Hash the feature cross ``a × b`` (column ``c_<field_a>_x_<field_b>``) to int64 buckets."""
    ha = mix64(_raw_hash(a) ^ _salt(field_a))
    hb = _raw_hash(b)
    if ha.shape != hb.shape:
        raise ValueError(f"cannot cross {field_a} ({ha.size} values) with {field_b} ({hb.size})")
    h = mix64(ha ^ mix64(hb ^ _salt(f"{field_a}_x_{field_b}")))
    return (h % np.uint64(HASH_BUCKETS)).astype(np.int64)


def cross_left(field_a: str, a: Any) -> np.ndarray:
    """The part of :func:`hash_cross` that depends on the left field alone (uint64): computed
    once per entity at load time, it leaves a serving request one mix per candidate."""
    return mix64(_raw_hash(a) ^ _salt(field_a))


def cross_right(field_a: str, field_b: str, b: Any) -> np.ndarray:
    """The part of :func:`hash_cross` that depends on the right field alone (uint64)."""
    return mix64(_raw_hash(b) ^ _salt(f"{field_a}_x_{field_b}"))


def combine_cross(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """:func:`hash_cross` from its two parts: ``combine_cross(cross_left("a", x),
    cross_right("a", "b", y)) == hash_cross("a", x, "b", y)`` (equal shapes or broadcast)."""
    return (mix64(left ^ right) % np.uint64(HASH_BUCKETS)).astype(np.int64)


# --------------------------------------------------------------------------------------------
# Point-in-time statistics
# --------------------------------------------------------------------------------------------


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _require(df: pd.DataFrame, cols: Sequence[str], source: str) -> None:
    for col in cols:
        if col not in df.columns:
            raise DataError(source, "missing column", field=col)


def _counts_sql(keys: Sequence[str], integer_time: bool) -> str:
    part = ", ".join(f"k{i}" for i in range(len(keys)))
    if not keys:
        # one partition: a RANGE frame is slow, so sum per timestamp, then a running sum
        return """
            WITH g AS (SELECT t, count(*) AS n, sum(y) AS c FROM ev GROUP BY t),
                 cum AS (SELECT t, sum(n) OVER w - n AS imps, sum(c) OVER w - c AS clicks
                         FROM g WINDOW w AS (ORDER BY t ROWS UNBOUNDED PRECEDING))
            SELECT ev.rid, cum.imps, cum.clicks FROM ev JOIN cum ON ev.t = cum.t
        """
    if integer_time:
        # integer time: "strictly before t" is the range [.., t - 1], one window pass
        return f"""
            SELECT rid, count(*) OVER w AS imps, coalesce(sum(y) OVER w, 0) AS clicks
            FROM ev
            WINDOW w AS (PARTITION BY {part} ORDER BY t
                         RANGE BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING)
        """
    # any other ordered time: everything up to t, minus the events tied at t
    return f"""
        SELECT rid,
               count(*) OVER upto - count(*) OVER peers AS imps,
               sum(y) OVER upto - sum(y) OVER peers AS clicks
        FROM ev
        WINDOW upto AS (PARTITION BY {part} ORDER BY t
                        RANGE BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW),
               peers AS (PARTITION BY {part}, t)
    """


def _counts_numpy(
    keys: list[np.ndarray], t: np.ndarray, y: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The same counts by sorting: rows before this one's (key, t) peer group, within its key."""
    n = t.shape[0]
    group = np.zeros(n, dtype=np.int64)
    for k in keys:
        codes, uniques = pd.factorize(k, use_na_sentinel=False)
        group = pd.factorize(group * len(uniques) + codes)[0]
    order = np.lexsort((t, group))
    g, ts, ys = group[order], t[order], y[order]
    new_group = np.r_[True, g[1:] != g[:-1]]
    new_peer = new_group | np.r_[True, ts[1:] != ts[:-1]]
    idx = np.arange(n)
    group_start = np.maximum.accumulate(np.where(new_group, idx, 0))
    peer_start = np.maximum.accumulate(np.where(new_peer, idx, 0))
    cum = np.r_[0, np.cumsum(ys)]
    imps, clicks = np.empty(n, np.int64), np.empty(n, np.int64)
    imps[order] = peer_start - group_start
    clicks[order] = cum[peer_start] - cum[group_start]
    return imps, clicks


def point_in_time_counts(
    events: pd.DataFrame,
    keys: Sequence[str],
    time_col: str = "ts",
    label_col: str = "click",
    name: str = "stat",
    engine: Literal["duckdb", "numpy"] = "duckdb",
) -> pd.DataFrame:
    """Impressions and clicks of the same key strictly before each event's time.

    Returns ``{name}_imps`` and ``{name}_clicks`` (int64) aligned with ``events`` (same index).
    Events at the same time as the current one (ties), the current one and later ones are never
    counted: the label cannot leak into its own features. ``keys=[]`` counts over all events.

    ``engine="duckdb"`` runs one DuckDB window pass (``RANGE BETWEEN UNBOUNDED PRECEDING AND
    1 PRECEDING`` for integer times, the cumulative window minus the ties otherwise);
    ``engine="numpy"`` sorts by (key, time) and differences cumulative sums: the same numbers
    (tests check it), several times faster on keys with few, large groups.
    """
    _require(events, [*keys, time_col, label_col], "events")
    t = events[time_col].to_numpy()
    y = events[label_col].to_numpy().astype(np.int64)
    if engine == "numpy":
        imps, clicks = _counts_numpy([events[k].to_numpy() for k in keys], t, y)
        return pd.DataFrame({f"{name}_imps": imps, f"{name}_clicks": clicks}, index=events.index)
    if engine != "duckdb":
        raise ValueError(f"engine must be 'duckdb' or 'numpy', got {engine!r}")
    frame = pd.DataFrame(
        {f"k{i}": events[k].to_numpy() for i, k in enumerate(keys)}
        | {"t": t, "y": y, "rid": np.arange(len(events), dtype=np.int64)}
    )
    sql = _counts_sql(keys, pd.api.types.is_integer_dtype(frame["t"].dtype))
    con = duckdb.connect(":memory:")
    try:
        con.execute("SET threads TO 2")
        con.execute("SET enable_progress_bar = false")
        con.register("ev", frame)
        res = con.execute(sql).fetchnumpy()
    finally:
        con.close()
    imps = np.zeros(len(events), dtype=np.int64)
    clicks = np.zeros(len(events), dtype=np.int64)
    rid = np.asarray(res["rid"], dtype=np.int64)
    imps[rid] = np.asarray(res["imps"], dtype=np.int64)
    clicks[rid] = np.asarray(res["clicks"], dtype=np.int64)
    return pd.DataFrame({f"{name}_imps": imps, f"{name}_clicks": clicks}, index=events.index)


def point_in_time_join(
    events: pd.DataFrame,
    feature_table: pd.DataFrame,
    keys: Sequence[str],
    event_time: str,
    feature_time: str,
) -> pd.DataFrame:
    """Attach to each event the latest feature row of its key with ``feature_time < event_time``.

    A Feast-style "as of" lookup via DuckDB's ``ASOF JOIN``: features computed at or after the
    event are never used. Returns ``events`` (same rows, order and index) plus the feature table's
    columns other than ``keys`` and ``feature_time``; events without an earlier feature row get
    nulls (NaN).
    """
    _require(events, [*keys, event_time], "events")
    _require(feature_table, [*keys, feature_time], "feature_table")
    value_cols = [c for c in feature_table.columns if c not in (*keys, feature_time)]
    clash = [c for c in value_cols if c in events.columns]
    if clash:
        raise ValueError(f"feature columns {clash} already exist in events")
    ev = pd.DataFrame(
        {f"k{i}": events[k].to_numpy() for i, k in enumerate(keys)}
        | {"t": events[event_time].to_numpy(), "rid": np.arange(len(events), dtype=np.int64)}
    )
    ft = pd.DataFrame({f"k{i}": feature_table[k].to_numpy() for i, k in enumerate(keys)})
    ft["t"] = feature_table[feature_time].to_numpy()
    for j, c in enumerate(value_cols):
        ft[f"v{j}"] = feature_table[c].to_numpy()
    on = " AND ".join([*(f"e.k{i} = f.k{i}" for i in range(len(keys))), "e.t > f.t"])
    values = ", ".join(f"f.v{j} AS {_q(c)}" for j, c in enumerate(value_cols))
    sql = f"SELECT e.rid{', ' + values if values else ''} FROM ev e ASOF LEFT JOIN ft f ON {on}"
    con = duckdb.connect(":memory:")
    try:
        con.execute("SET threads TO 2")
        con.execute("SET enable_progress_bar = false")
        con.register("ev", ev)
        con.register("ft", ft)
        res = con.execute(sql).df()
    finally:
        con.close()
    res = res.sort_values("rid", kind="stable").reset_index(drop=True)
    out = events.copy()
    for c in value_cols:
        out[c] = res[c].to_numpy()
    return out


def smoothed_rate(
    clicks: Any, imps: Any, prior_rate: float | np.ndarray, prior_strength: float
) -> np.ndarray:
    """Additive (Beta-prior) smoothing: ``(clicks + a·m) / (imps + m)`` with ``a`` the prior rate.

    A raw click-through rate of a new ad with 1 impression and 1 click is 100%; the smoothed rate
    starts at the prior and moves to the observed rate as impressions accumulate.
    """
    if prior_strength <= 0:
        raise ValueError(f"prior_strength must be > 0, got {prior_strength}")
    c = np.asarray(clicks, dtype=np.float64)
    n = np.asarray(imps, dtype=np.float64)
    return (c + np.asarray(prior_rate, dtype=np.float64) * prior_strength) / (n + prior_strength)
