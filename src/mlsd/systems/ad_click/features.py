"""Ad click prediction, step 3: the feature pipeline, offline (training) and online (serving).

The chapter's features, grouped as the book groups them:

* **ad**: ad id, advertiser id, category, format, bid, ad age (freshness), its historical
  impressions and smoothed CTR, and those of its advertiser;
* **user**: age bucket, gender, country, tenure, historical impressions and smoothed CTR, and the
  user's impressions and CTR *in the ad's category* (user interests, the strongest signal);
  impressions of this very ad to this user so far (ad fatigue);
* **context**: hour of day, device, and the slot position;
* **feature crosses** (the chapter's motivation for DCN / factorization machines): country ×
  category, age × category, gender × format, device × format, hour × category.

Every statistic of an impression at time ``t`` counts only impressions strictly before ``t``
(:func:`mlsd.features.point_in_time_counts`). :func:`online_tables` holds the same raw statistics
as of the end of the log, and ONE pure function, :func:`make_features`, turns raw statistics,
attributes and context into the feature frame on both paths: train/serve skew is impossible by
construction.

**Position** is a training-time feature only: it absorbs position bias (lower slots are examined
less, so they are clicked less whatever the ad). At serving time the slot is unknown before
ranking, so :func:`request_features` sets ``position = 0`` for every candidate: all candidates
are scored as if shown in the top slot, which ranks them by their position-debiased click
probability.

The parts: :mod:`~.features_online` (the online tables as columnar frames, read back in batches),
:mod:`~.features_streaming` (the same features day by day, in bounded memory) and
:mod:`~.features_split` (the features step: the run's training data and its split).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np
import pandas as pd

from mlsd.data import DataError, Schema, check_schema
from mlsd.features import hash_cross, hash_values, point_in_time_counts, smoothed_rate
from mlsd.stores import OnlineStore, put_frame
from mlsd.systems.ad_click.features_online import (
    Tables,
    TablesMissingError,
    UnknownIdError,
    entity_columns,
    entity_frame,
    global_frame,
    pair_keys,
    stat_columns,
    table_frame,
)

__all__ = [
    "FEATURE_COLUMNS",
    "Tables",
    "TablesMissingError",
    "UnknownIdError",
    "candidate_features",
    "load_online_store",
    "make_features",
    "offline_features",
    "online_tables",
    "request_features",
]

logger = logging.getLogger(__name__)

SECONDS_PER_DAY = 86_400
DEFAULT_PRIOR_CTR = 0.02  # prior of the global CTR itself, washed out after a few thousand rows
GLOBAL_PRIOR_STRENGTH = 100.0
# Beta-prior strengths, in pseudo-impressions at the global CTR, per statistic.
PRIOR_STRENGTH = {"user": 20.0, "ad": 20.0, "adv": 50.0, "ucat": 10.0}

LOG_SCHEMA: Schema = {
    "ts": "int",
    "hour": "int",
    "user_id": "int",
    "ad_id": "int",
    "position": "int",
    "device": "str",
    "click": "int",
}
USERS_SCHEMA: Schema = {
    "user_id": "int",
    "age_bucket": "int",
    "gender": "str",
    "country": "str",
    "signup_day": "float",
}
ADS_SCHEMA: Schema = {
    "ad_id": "int",
    "advertiser_id": "int",
    "category": "str",
    "format": "str",
    "bid": "float",
    "created_day": "float",
}
REQUEST_SCHEMA: Schema = {"user_id": "int", "hour": "int", "device": "str", "ad_id": "int"}

USER_ATTRS = ("age_bucket", "gender", "country", "signup_day")
AD_ATTRS = ("advertiser_id", "category", "format", "bid", "created_day")
# (prefix in the raw frame, namespace of the online store)
STATS = (
    ("user", "user"),
    ("ad", "ad"),
    ("adv", "advertiser"),
    ("ucat", "user_category"),
    ("uad", "user_ad"),
    ("all", "global"),
)
CONTEXT = ("day", "hour", "device", "position", "ad_id")
RAW_COLUMNS = (
    *CONTEXT,
    *USER_ATTRS,
    *AD_ATTRS,
    *(f"{p}_{s}" for p, _ in STATS for s in ("imps", "clicks")),
)

# hashed one-hot fields: the ids, the ad's and the user's attributes, the context
CATEGORICAL = (
    *("ad_id", "advertiser_id", "category", "format"),
    *("device", "hour", "position"),
    *("age_bucket", "gender", "country"),
)
CROSSES = (
    ("country", "category"),
    ("age_bucket", "category"),
    ("gender", "category"),
    ("gender", "format"),
    ("age_bucket", "format"),
    ("device", "format"),
    ("hour", "category"),
)
_INT_FIELDS = ("ad_id", "advertiser_id", "hour", "position", "age_bucket")

DENSE_FEATURES: tuple[str, ...] = (
    *(f"d_{p}_{s}" for p in ("user", "ad", "adv", "ucat") for s in ("imps", "ctr")),
    *("d_uad_imps", "d_uad_clicks"),  # fatigue
    *("d_ad_age_days", "d_user_tenure_days", "d_bid", "d_position"),
    *("d_hour_sin", "d_hour_cos"),
)
CATEGORICAL_FEATURES: tuple[str, ...] = (
    *(f"c_{c}" for c in CATEGORICAL),
    *(f"c_{a}_x_{b}" for a, b in CROSSES),
)
FEATURE_COLUMNS: tuple[str, ...] = DENSE_FEATURES + CATEGORICAL_FEATURES
"""The columns of every ad-click feature frame, offline and online, in this order."""


# --------------------------------------------------------------------------------------------
# The one function both paths share
# --------------------------------------------------------------------------------------------


def make_features(raw: pd.DataFrame | Mapping[str, np.ndarray]) -> pd.DataFrame:
    """Raw statistics + attributes + context (``RAW_COLUMNS``) -> the ``d_*`` / ``c_*`` frame.

    Pure and row-wise: the offline and the online path both end here, so a row's features depend
    only on its raw values, never on which path produced them. ``raw`` is a DataFrame or, on the
    latency-critical serving path, a mapping of equally long arrays.
    """
    missing = [c for c in RAW_COLUMNS if c not in raw]
    if missing:
        raise DataError("raw features", f"missing columns {missing}", field=missing[0])
    index = raw.index if isinstance(raw, pd.DataFrame) else None

    def num(col: str) -> np.ndarray:
        return np.asarray(raw[col], dtype=np.float64)

    prior = smoothed_rate(
        num("all_clicks"), num("all_imps"), DEFAULT_PRIOR_CTR, GLOBAL_PRIOR_STRENGTH
    )
    day = num("day")
    hour = num("hour")
    out: dict[str, np.ndarray] = {}
    for p in ("user", "ad", "adv", "ucat"):
        out[f"d_{p}_imps"] = np.log1p(num(f"{p}_imps"))
        out[f"d_{p}_ctr"] = smoothed_rate(
            num(f"{p}_clicks"), num(f"{p}_imps"), prior, PRIOR_STRENGTH[p]
        )
    out["d_uad_imps"] = np.log1p(num("uad_imps"))  # ad fatigue
    out["d_uad_clicks"] = np.log1p(num("uad_clicks"))
    out["d_ad_age_days"] = np.log1p(np.clip(day - num("created_day"), 0.0, None))  # freshness
    out["d_user_tenure_days"] = np.log1p(np.clip(day - num("signup_day"), 0.0, None))
    out["d_bid"] = np.log1p(np.clip(num("bid"), 0.0, None))
    out["d_position"] = num("position")
    out["d_hour_sin"] = np.sin(2.0 * np.pi * hour / 24.0)
    out["d_hour_cos"] = np.cos(2.0 * np.pi * hour / 24.0)

    values: dict[str, np.ndarray] = {}
    for col in CATEGORICAL:
        values[col] = np.asarray(raw[col], dtype=np.int64 if col in _INT_FIELDS else object)
        out[f"c_{col}"] = hash_values(col, values[col])
    for a, b in CROSSES:
        out[f"c_{a}_x_{b}"] = hash_cross(a, values[a], b, values[b])
    return pd.DataFrame({c: out[c] for c in FEATURE_COLUMNS}, index=index, copy=False)


# --------------------------------------------------------------------------------------------
# Offline: point-in-time features for every logged impression
# --------------------------------------------------------------------------------------------


def _check_tables(users: pd.DataFrame, ads: pd.DataFrame) -> None:
    check_schema(users, USERS_SCHEMA, "users")
    check_schema(ads, ADS_SCHEMA, "ads")
    for df, col, name in ((users, "user_id", "users"), (ads, "ad_id", "ads")):
        dup = df[col].duplicated().to_numpy()
        if dup.any():
            first = int(np.flatnonzero(dup)[0])
            raise DataError(name, f"duplicate id {df[col].iloc[first]}", line=first + 1, field=col)


def _lookup(table: pd.DataFrame, key: str, ids: pd.Series, source: str) -> pd.DataFrame:
    """Rows of ``table`` for ``ids`` (in order); an unknown id raises DataError with its row."""
    pos = pd.Index(table[key]).get_indexer(ids.to_numpy())
    bad = np.flatnonzero(pos < 0)
    if bad.size:
        message = f"unknown {key} {ids.iloc[bad[0]]} ({bad.size} rows)"
        raise DataError(source, message, line=int(bad[0]) + 1, field=key)
    return table.iloc[pos].reset_index(drop=True)


def _joined(log: pd.DataFrame, users: pd.DataFrame, ads: pd.DataFrame) -> pd.DataFrame:
    """The log with user and ad attributes, positional index 0..n-1."""
    check_schema(log, LOG_SCHEMA, "log")
    _check_tables(users, ads)
    u = _lookup(users, "user_id", log["user_id"], "log")
    a = _lookup(ads, "ad_id", log["ad_id"], "log")
    return joined_frame(log, u, a)


def joined_frame(log: pd.DataFrame, u: pd.DataFrame, a: pd.DataFrame) -> pd.DataFrame:
    """The log's events with the attributes of their users ``u`` and ads ``a`` (rows aligned
    with ``log``), positional index 0..n-1: the raw frame of both the batch and the streaming
    offline paths."""
    ts = log["ts"].to_numpy(dtype=np.int64)
    day = log["day"].to_numpy() if "day" in log.columns else ts // SECONDS_PER_DAY
    events = ("ts", "hour", "user_id", "ad_id", "position", "device", "click")
    frame = {c: log[c].to_numpy() for c in events}
    frame["day"] = day
    frame |= {c: u[c].to_numpy() for c in USER_ATTRS}
    frame |= {c: a[c].to_numpy() for c in AD_ATTRS}
    return pd.DataFrame(frame)


_STAT_KEYS: dict[str, list[str]] = {
    "user": ["user_id"],
    "ad": ["ad_id"],
    "adv": ["advertiser_id"],
    "ucat": ["user_id", "category"],
    "uad": ["user_id", "ad_id"],
    "all": [],
}


def offline_features(
    log: pd.DataFrame,
    users: pd.DataFrame,
    ads: pd.DataFrame,
    engine: Literal["duckdb", "numpy"] = "duckdb",
) -> pd.DataFrame:
    """The feature frame of every impression of ``log`` (same order, length and index).

    Point-in-time correct: the statistics of an impression at ``ts`` count only impressions with a
    strictly smaller ``ts``; its own label and the future never enter. ``engine`` picks how
    :func:`mlsd.features.point_in_time_counts` computes them (same numbers; numpy is faster).
    """
    ev = _joined(log, users, ads)
    stats = [
        point_in_time_counts(ev, keys, "ts", "click", name=p, engine=engine)
        for p, keys in _STAT_KEYS.items()
    ]
    raw = pd.concat([ev, *stats], axis=1)
    features = make_features(raw)
    features.index = log.index
    logger.info("offline features: %d rows x %d columns", *features.shape)
    return features


# --------------------------------------------------------------------------------------------
# Online: the same raw statistics as of the end of the log, in a key-value store
# --------------------------------------------------------------------------------------------


def _counts(ev: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    g = ev.groupby(keys, sort=False, observed=True)["click"]
    return pd.DataFrame({"imps": g.size(), "clicks": g.sum().astype(np.int64)})


def online_tables(log: pd.DataFrame, users: pd.DataFrame, ads: pd.DataFrame) -> Tables:
    """Raw statistics and attributes as of the end of ``log``, per online-store namespace.

    ``user`` and ``ad`` hold every user / ad of the entity tables (with zero counts if never
    shown), ``advertiser`` every advertiser, ``user_category`` (key ``"{user_id}:{category}"``)
    and ``user_ad`` (key ``"{user_id}:{ad_id}"``, fatigue) the pairs seen, and ``global`` one row
    ``"all"`` with the overall counts and the clock (``as_of_day``) serving uses by default.
    Each namespace is a frame (:data:`Tables`); :func:`load_online_store` fills a store with them.
    """
    ev = _joined(log, users, ads)

    def with_counts(table: pd.DataFrame, key: str, attrs: Sequence[str]) -> pd.DataFrame:
        c = _counts(ev, [key]).reindex(table[key].to_numpy(), fill_value=0)
        return entity_frame(table, key, attrs, c["imps"].to_numpy(), c["clicks"].to_numpy())

    def pairs(keys: list[str]) -> pd.DataFrame:
        c = _counts(ev, keys)
        left, right = (c.index.get_level_values(i).to_numpy() for i in (0, 1))
        values = {"imps": c["imps"].to_numpy(), "clicks": c["clicks"].to_numpy()}
        return table_frame(pair_keys(left, right), values)

    advertisers = pd.DataFrame({"advertiser_id": ads["advertiser_id"].unique()})
    as_of_day = int(ev["day"].max()) if len(ev) else 0
    return {
        "user": with_counts(users, "user_id", USER_ATTRS),
        "ad": with_counts(ads, "ad_id", AD_ATTRS),
        "advertiser": with_counts(advertisers, "advertiser_id", []),
        "user_category": pairs(["user_id", "category"]),
        "user_ad": pairs(["user_id", "ad_id"]),
        "global": global_frame(len(ev), int(ev["click"].sum()), as_of_day),
    }


def load_online_store(store: OnlineStore, tables: Mapping[str, pd.DataFrame]) -> None:
    """Write every namespace of :func:`online_tables` into ``store`` (a :class:`FrameStore`
    takes the frames as they are; other stores get them in chunks of rows). The ``global`` row
    goes last: a reader that finds it finds every other table complete."""
    for namespace in sorted(tables, key=lambda ns: ns == "global"):
        frame = tables[namespace]
        put_frame(store, namespace, frame)
        logger.info("online store: %d rows in %s", len(frame), namespace)


def request_features(store: OnlineStore, requests: pd.DataFrame) -> pd.DataFrame:
    """Features of candidate ads for feed requests, from the online store.

    ``requests``: one row per (request, candidate ad) with ``user_id``, ``hour``, ``device``,
    ``ad_id`` and optionally ``day`` (the serving clock; default: the store's ``as_of_day``).
    Returns exactly the columns of :func:`offline_features`, with ``position = 0`` (the slot is
    unknown before ranking; see the module docstring). Unknown users or ads raise
    :class:`UnknownIdError` (users first), a store without the tables
    :class:`TablesMissingError`. One store round trip per namespace.
    """
    check_schema(requests, REQUEST_SCHEMA, "requests")
    features = candidate_features(
        store,
        requests["user_id"].to_numpy(dtype=np.int64),
        requests["hour"].to_numpy(),
        requests["device"].to_numpy(dtype=object),
        requests["ad_id"].to_numpy(dtype=np.int64),
        requests["day"].to_numpy() if "day" in requests.columns else None,
    )
    features.index = requests.index
    return features


def candidate_features(
    store: OnlineStore,
    user_ids: np.ndarray,
    hours: np.ndarray,
    devices: np.ndarray,
    ad_ids: np.ndarray,
    days: np.ndarray | None = None,
) -> pd.DataFrame:
    """:func:`request_features` on equally long arrays, unchecked: the serving hot path, which
    builds its arrays itself (no request frame; the store is read column by column)."""
    n = len(ad_ids)
    if n == 0:
        dtypes = {c: np.float64 if c.startswith("d_") else np.int64 for c in FEATURE_COLUMNS}
        return pd.DataFrame({c: np.zeros(0, dtype) for c, dtype in dtypes.items()})
    glob = store.get_many("global", ["all"])[0]
    if glob is None:  # written last, so present only once every table is
        raise TablesMissingError(
            "the online store holds no ad-click tables: run load_online_store first"
        )
    users = entity_columns(store, "user", user_ids, (*USER_ATTRS, "imps", "clicks"))
    ads = entity_columns(store, "ad", ad_ids, (*AD_ATTRS, "imps", "clicks"))

    raw: dict[str, Any] = {
        "day": days if days is not None else np.full(n, glob["as_of_day"]),
        "hour": hours,
        "device": devices,
        "position": np.zeros(n, dtype=np.int64),  # unknown before ranking: score as the top slot
        "ad_id": ad_ids,
    }
    for prefix, columns, attrs in (("user", users, USER_ATTRS), ("ad", ads, AD_ATTRS)):
        for c in attrs:
            raw[c] = columns[c]
        for stat in ("imps", "clicks"):
            raw[f"{prefix}_{stat}"] = columns[stat].astype(np.int64)
    ukeys = [str(u) for u in user_ids.tolist()]
    akeys = [str(a) for a in ad_ids.tolist()]
    adv = [str(int(v)) for v in raw["advertiser_id"]]
    raw["adv_imps"], raw["adv_clicks"] = stat_columns(store, "advertiser", adv)
    ucat = [f"{u}:{c}" for u, c in zip(ukeys, raw["category"], strict=True)]
    raw["ucat_imps"], raw["ucat_clicks"] = stat_columns(store, "user_category", ucat)
    uad = [f"{u}:{a}" for u, a in zip(ukeys, akeys, strict=True)]
    raw["uad_imps"], raw["uad_clicks"] = stat_columns(store, "user_ad", uad)
    raw["all_imps"] = np.full(n, glob["imps"], dtype=np.int64)
    raw["all_clicks"] = np.full(n, glob["clicks"], dtype=np.int64)
    return make_features(raw)
