"""Ad click prediction, step 3 at scale: point-in-time features one day at a time.

The chapter's training data is a log of billions of impressions; no step may hold it all. The
:class:`StreamingFeatures` pipeline walks the log's days in time order and carries, per statistic
(user, ad, advertiser, user × category, user × ad, global), the impressions and clicks *as of the
start of the day*. An impression's statistics are that carried count plus the events of its own day
strictly before its timestamp, then the shared :func:`~.features.make_features`: exactly the
numbers :func:`~.features.offline_features` computes on the whole log (a test proves it), in memory
bounded by one day and the count tables. After the last day the carried counts *are* the online
store's tables (:meth:`StreamingFeatures.tables` equals :func:`~.features.online_tables`), so
serving never needs the log either.

:func:`iter_days` re-reads a Parquet log day by day; :func:`sample_rows` draws the uniform,
label-independent subsample of training rows that large runs keep (calibration stays unbiased).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from mlsd.data import DataError, check_schema
from mlsd.features import point_in_time_counts
from mlsd.rng import rng
from mlsd.systems.ad_click import features as feats
from mlsd.systems.ad_click import features_online as online

logger = logging.getLogger(__name__)


class CountTable:
    """Impressions and clicks per int64 key; keys kept sorted, so lookups are binary searches.

    A sparse, mergeable table: :meth:`add` folds in a batch of events, :meth:`lookup` answers the
    counts of any keys (zero for a key never seen).
    """

    def __init__(self) -> None:
        self.keys = np.zeros(0, dtype=np.int64)
        self.imps = np.zeros(0, dtype=np.int64)
        self.clicks = np.zeros(0, dtype=np.int64)

    def __len__(self) -> int:
        return int(self.keys.size)

    def _find(self, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        pos = np.searchsorted(self.keys, keys)
        found = pos < self.keys.size
        found[found] = self.keys[pos[found]] == keys[found]
        return pos, found

    def lookup(self, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(imps, clicks)`` of each key, aligned with ``keys``."""
        keys = np.asarray(keys, dtype=np.int64)
        pos, found = self._find(keys)
        imps = np.zeros(keys.size, dtype=np.int64)
        clicks = np.zeros(keys.size, dtype=np.int64)
        imps[found] = self.imps[pos[found]]
        clicks[found] = self.clicks[pos[found]]
        return imps, clicks

    def add(self, keys: np.ndarray, clicks: np.ndarray) -> None:
        """Count one impression per element of ``keys`` with its click (0/1)."""
        uniq, inverse = np.unique(np.asarray(keys, dtype=np.int64), return_inverse=True)
        n = np.bincount(inverse, minlength=uniq.size).astype(np.int64)
        c = np.bincount(inverse, weights=clicks, minlength=uniq.size).astype(np.int64)
        pos, found = self._find(uniq)
        self.imps[pos[found]] += n[found]
        self.clicks[pos[found]] += c[found]
        new = ~found
        self.keys = np.insert(self.keys, pos[new], uniq[new])
        self.imps = np.insert(self.imps, pos[new], n[new])
        self.clicks = np.insert(self.clicks, pos[new], c[new])


class StreamingFeatures:
    """Point-in-time features of a log fed one chunk (a day) at a time, in time order.

    ``users`` and ``ads`` are the entity tables (checked once). Every chunk must follow the
    previous one in time (its smallest ``ts`` later than every earlier ``ts``); :meth:`features`
    returns the chunk's feature frame (its index) and then folds the chunk into the counts.
    """

    def __init__(self, users: pd.DataFrame, ads: pd.DataFrame) -> None:
        feats._check_tables(users, ads)
        self.users, self.ads = users, ads
        self._user_index = pd.Index(users["user_id"].to_numpy())
        self._ad_index = pd.Index(ads["ad_id"].to_numpy())
        self._adv_code, self._advertisers = pd.factorize(ads["advertiser_id"].to_numpy())
        self._cat_code, self._categories = pd.factorize(ads["category"].to_numpy())
        self.counts = {p: CountTable() for p, _ in feats.STATS}
        self.rows = 0
        self.last_ts: int | None = None
        self.last_day: int | None = None

    def _keys(self, upos: np.ndarray, apos: np.ndarray) -> dict[str, np.ndarray]:
        n_cat, n_ads = max(len(self._categories), 1), len(self.ads)
        return {
            "user": upos,
            "ad": apos,
            "adv": self._adv_code[apos].astype(np.int64),
            "ucat": upos * n_cat + self._cat_code[apos],
            "uad": upos * n_ads + apos,
            "all": np.zeros(upos.size, dtype=np.int64),
        }

    def _positions(self, index: pd.Index, ids: pd.Series, key: str) -> np.ndarray:
        pos = index.get_indexer(pd.Index(ids))
        bad = np.flatnonzero(pos < 0)
        if bad.size:
            message = f"unknown {key} {ids.iloc[bad[0]]} ({bad.size} rows)"
            raise DataError("log", message, line=self.rows + int(bad[0]) + 1, field=key)
        return pos.astype(np.int64)

    def features(self, chunk: pd.DataFrame) -> pd.DataFrame:
        """The feature frame of ``chunk`` (same rows, order and index), then update the counts."""
        check_schema(chunk, feats.LOG_SCHEMA, "log")
        ts = chunk["ts"].to_numpy(dtype=np.int64)
        if ts.size and self.last_ts is not None and int(ts.min()) <= self.last_ts:
            message = (
                f"chunk starts at ts {int(ts.min())}, not after the previous chunk's last ts "
                f"{self.last_ts}: feed chunks in time order"
            )
            raise DataError("log", message, line=self.rows + int(ts.argmin()) + 1, field="ts")
        upos = self._positions(self._user_index, chunk["user_id"], "user_id")
        apos = self._positions(self._ad_index, chunk["ad_id"], "ad_id")
        frame = feats.joined_frame(chunk, self.users.iloc[upos], self.ads.iloc[apos])
        y = frame["click"].to_numpy().astype(np.int64)
        keys = self._keys(upos, apos)
        for p, _ in feats.STATS:
            ev = pd.DataFrame({"k": keys[p], "ts": ts, "click": y})
            within = point_in_time_counts(ev, ["k"], "ts", "click", name=p, engine="numpy")
            before_imps, before_clicks = self.counts[p].lookup(keys[p])
            frame[f"{p}_imps"] = before_imps + within[f"{p}_imps"].to_numpy()
            frame[f"{p}_clicks"] = before_clicks + within[f"{p}_clicks"].to_numpy()
        out = feats.make_features(frame)
        out.index = chunk.index
        for p, _ in feats.STATS:
            self.counts[p].add(keys[p], y)
        if ts.size:
            self.last_ts = int(ts.max())
            day_max = int(frame["day"].max())
            self.last_day = day_max if self.last_day is None else max(self.last_day, day_max)
        self.rows += len(chunk)
        return out

    def tables(self) -> online.Tables:
        """The online store's tables as of the end of the chunks seen, built straight from the
        sorted count arrays: equal to :func:`~.features.online_tables` of their concatenation
        (rows of the pair namespaces in key order)."""
        users, ads, c = self.users, self.ads, self.counts
        n_cat, n_ads = max(len(self._categories), 1), len(ads)

        def counts(p: str, n: int) -> tuple[np.ndarray, np.ndarray]:
            return c[p].lookup(np.arange(n))

        def pairs(p: str, left: np.ndarray, right: pa.Array, n: int) -> pd.DataFrame:
            keys = c[p].keys
            names = online.pair_keys(left[keys // n], right.take(pa.array(keys % n)))
            return online.table_frame(names, {"imps": c[p].imps, "clicks": c[p].clicks})

        advertisers = pd.DataFrame({"advertiser_id": np.asarray(self._advertisers)})
        glob_imps, glob_clicks = c["all"].lookup(np.zeros(1, dtype=np.int64))
        as_of_day = 0 if self.last_day is None else self.last_day
        categories = pa.array(np.asarray(self._categories).astype(str))
        user_ids, ad_ids = users["user_id"].to_numpy(), pa.array(ads["ad_id"].to_numpy())
        n_users, n_advertisers = len(users), len(advertisers)
        return {
            "user": online.entity_frame(
                users, "user_id", feats.USER_ATTRS, *counts("user", n_users)
            ),
            "ad": online.entity_frame(ads, "ad_id", feats.AD_ATTRS, *counts("ad", n_ads)),
            "advertiser": online.entity_frame(
                advertisers, "advertiser_id", (), *counts("adv", n_advertisers)
            ),
            "user_category": pairs("ucat", user_ids, categories, n_cat),
            "user_ad": pairs("uad", user_ids, ad_ids, n_ads),
            "global": online.global_frame(int(glob_imps[0]), int(glob_clicks[0]), as_of_day),
        }


def iter_days(path: str | Path) -> Iterator[pd.DataFrame]:
    """The rows of a Parquet log one ``day`` at a time (the log is sorted by day; any row-group
    layout works: rows are held back until a later day appears)."""
    path = Path(path)
    if not path.exists():
        raise DataError(path, "no such file")
    pf = pq.ParquetFile(path)
    pending: list[pd.DataFrame] = []
    for i in range(pf.num_row_groups):
        group = pf.read_row_group(i).to_pandas()
        if group.empty:
            continue
        days = group["day"].to_numpy()
        previous = int(pending[0]["day"].iloc[0]) if pending else None
        if np.any(days[1:] < days[:-1]) or (previous is not None and int(days[0]) < previous):
            raise DataError(path, f"rows are not sorted by day (row group {i})", field="day")
        if previous is not None and int(days[0]) != previous:
            yield pd.concat(pending, ignore_index=True)
            pending = []
        bounds = np.flatnonzero(days[1:] != days[:-1]) + 1
        parts = np.split(np.arange(len(group)), bounds)
        for j, part in enumerate(parts):
            piece = group.iloc[part].reset_index(drop=True) if len(parts) > 1 else group
            if j < len(parts) - 1:
                yield pd.concat([*pending, piece], ignore_index=True) if pending else piece
                pending = []
            else:
                pending.append(piece)
    if pending:
        yield pd.concat(pending, ignore_index=True)


def sample_rows(n: int, rate: float, seed: int, day: int) -> np.ndarray:
    """Sorted positions of ``round(rate * n)`` of ``n`` rows drawn uniformly without replacement.

    Seeded per run and day (a named stream) and blind to the labels, so the kept rows have the
    day's click rate in expectation and a calibrated model stays calibrated. ``rate >= 1`` keeps
    every row.
    """
    if rate <= 0.0:
        raise ValueError(f"rate must be > 0, got {rate}")
    if rate >= 1.0:
        return np.arange(n)
    k = round(rate * n)
    stream = rng(seed, f"ad-click/features/training-sample/day-{day}")
    return np.sort(stream.choice(n, size=k, replace=False))
