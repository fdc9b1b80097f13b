"""Real data for similar listings: a session click log as CSV (``--data sessions:PATH``).

The file has one row per click with a session id, an item id and a time or order column; the
delimiter (comma, semicolon, tab, pipe) and the header are detected, other columns ignored.
Recognised header names (case and underscores ignored): ``session_id`` / ``sessionid`` /
``session``; ``item_id`` / ``itemid`` / ``item`` / ``listing_id``; and for the order
``timestamp`` / ``time`` / ``ts`` / ``eventdate`` / ``timeframe`` / ``order`` / ``position``.
Without a header the columns are ``session_id, item_id[, time]``. Times are numbers (seconds
since the epoch, or any increasing order) or ISO dates.

The protocol of public session-based recommendation benchmarks (SR-GNN's preprocessing):
sessions of length 1 are dropped, then items seen fewer than ``MIN_ITEM_COUNT`` times, then
sessions of length 1 again; the sessions that end in the last ``TEST_DAYS`` days are the test
set (with a plain order column, not a time: the last 10 % of sessions), test clicks on items
unseen in training are dropped, and every prefix of a test session is a case for the item
that follows it (:mod:`.evaluation_files`). ``--test-data sessions:PATH`` gives the test
sessions explicitly instead. A malformed row is a :class:`mlsd.data.DataError` naming the file,
the line and the field.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from mlsd.data import DataError
from mlsd.systems.similar_listings.features import Sessions

FORMATS = ("sessions",)
MIN_ITEM_COUNT = 5
TEST_DAYS = 7
DAY = 86_400.0
NAMES = {
    "session_id": ("sessionid", "session"),
    "item_id": ("itemid", "item", "listingid", "productid"),
    "time": ("timestamp", "time", "ts", "eventdate", "timeframe", "order", "position", "date"),
}


@dataclass(frozen=True)
class FileData:
    """The log after the protocol: dense item rows, train and test sessions."""

    listings: pd.DataFrame  # listing_id (the file's id when integral, else the row), region 0
    train: Sessions
    test: Sessions
    split_day: int
    rows_read: int
    time_kind: str  # "seconds" | "date" | "order"


def parse_spec(spec: str) -> Path:
    fmt, sep, path = spec.partition(":")
    if not sep or fmt not in FORMATS or not path:
        raise DataError(spec, f"expected sessions:PATH (formats: {', '.join(FORMATS)})")
    return Path(path).expanduser()


def _norm(name: str) -> str:
    return re.sub(r"[^a-z]", "", name.lower())


def _columns(header: list[str], path: Path) -> dict[str, int] | None:
    """Column positions by meaning, or None when the first row is not a header."""
    normed = [_norm(h) for h in header]
    found: dict[str, int] = {}
    for key, aliases in NAMES.items():
        for alias in (_norm(key), *aliases):
            if alias in normed:
                found[key] = normed.index(alias)
                break
    if "session_id" in found and "item_id" in found:
        return found
    if found:
        missing = [k for k in ("session_id", "item_id") if k not in found]
        raise DataError(path, f"the header has no column for {missing}", line=1)
    return None


def read_clicks(path: Path) -> tuple[pd.DataFrame, str]:
    """``session, item, t`` per click (file order kept) and the kind of ``t``."""
    if not path.is_file():
        raise DataError(path, "no such file")
    try:
        head = path.read_text(encoding="utf-8", errors="strict")[:65536]
    except UnicodeDecodeError as exc:
        raise DataError(path, f"not UTF-8 text: {exc}") from exc
    if not head.strip():
        raise DataError(path, "empty file")
    try:
        delim = csv.Sniffer().sniff(head.splitlines()[0], delimiters=",;\t|").delimiter
    except csv.Error:
        delim = ","
    with path.open(newline="", encoding="utf-8") as fh:
        rows = list(csv.reader(fh, delimiter=delim))
    cols = _columns(rows[0], path)
    start = 1 if cols is not None else 0
    if cols is None:
        width = len(rows[0])
        if width < 2:
            raise DataError(path, "need at least two columns (session_id, item_id)", line=1)
        cols = {"session_id": 0, "item_id": 1} | ({"time": 2} if width >= 3 else {})
    need = max(cols.values()) + 1
    sess, item, times = [], [], []
    for i, row in enumerate(rows[start:], start=start + 1):
        if not row or all(not c.strip() for c in row):
            continue
        if len(row) < need:
            raise DataError(path, f"{len(row)} columns, expected at least {need}", line=i)
        for key in ("session_id", "item_id"):
            if not row[cols[key]].strip():
                raise DataError(path, "empty", line=i, field=key)
        sess.append(row[cols["session_id"]].strip())
        item.append(row[cols["item_id"]].strip())
        times.append(row[cols["time"]].strip() if "time" in cols else str(i))
    if not sess:
        raise DataError(path, "no clicks")
    order_only = "time" not in cols or (
        start == 1 and _norm(rows[0][cols["time"]]) in ("order", "position")
    )
    t, kind = _times(times, path, start, order_only)
    df = pd.DataFrame({"session": sess, "item": item, "t": t})
    return df, kind


def _times(values: list[str], path: Path, start: int, order_only: bool) -> tuple[np.ndarray, str]:
    num = pd.to_numeric(pd.Series(values), errors="coerce")
    if not num.isna().any():
        arr = num.to_numpy(np.float64)
        return arr, "order" if order_only else "seconds"
    dates = pd.to_datetime(pd.Series(values), errors="coerce", utc=True, format="ISO8601")
    if dates.isna().all():
        bad = int(np.flatnonzero(num.isna())[0])
        raise DataError(
            path,
            f"{values[bad]!r} is neither a number nor a date",
            line=bad + start + 1,
            field="time",
        )
    if dates.isna().any():
        bad = int(np.flatnonzero(dates.isna())[0])
        raise DataError(path, f"{values[bad]!r} is not a date", line=bad + start + 1, field="time")
    secs = (dates - pd.Timestamp(0, tz="UTC")).dt.total_seconds().to_numpy(np.float64)
    return secs, "date"


def _drop_short(df: pd.DataFrame) -> pd.DataFrame:
    size = df.groupby("session")["item"].transform("size")
    return df[size > 1]


def load_sessions_file(spec: str, test_spec: str | None = None) -> FileData:
    """Read ``sessions:PATH`` (and ``--test-data``), apply the protocol and split by time."""
    path = parse_spec(spec)
    df, kind = read_clicks(path)
    rows = len(df)
    df = df.assign(order=np.arange(len(df)))
    df = _drop_short(df)
    counts = df["item"].value_counts()
    df = _drop_short(df[df["item"].map(counts) >= MIN_ITEM_COUNT])
    if df.empty:
        raise DataError(
            path, f"no session of 2+ clicks on items seen {MIN_ITEM_COUNT}+ times is left"
        )
    if test_spec is not None:
        tdf, _ = read_clicks(parse_spec(test_spec))
        tdf = tdf.assign(order=np.arange(len(tdf)))
        train_df, test_df = df, tdf
        split = 0
    else:
        end = df.groupby("session")["t"].max()
        if kind == "order":
            cut = float(np.quantile(end.to_numpy(), 0.9))
            split = 0
        else:
            cut = float(end.max()) - TEST_DAYS * DAY
            split = int(cut // DAY)
        test_ids = set(end.index[end.to_numpy() > cut])
        is_test = df["session"].isin(test_ids)
        train_df, test_df = df[~is_test], df[is_test]
    if train_df.empty:
        raise DataError(path, "every session is in the test period: nothing to train on")
    items = pd.Index(sorted(train_df["item"].unique()))
    test_df = _drop_short(test_df[test_df["item"].isin(items)])
    listing_id = _listing_ids(items)
    listings = pd.DataFrame(
        {
            "listing_id": listing_id,
            "region": np.zeros(len(items), np.int64),
            "type": "unknown",
            "capacity": np.ones(len(items), np.int64),
            "price": np.ones(len(items)),
            "amenities": np.zeros(len(items), np.int64),
        }
    )
    return FileData(
        listings, _sessions(train_df, items), _sessions(test_df, items), split, rows, kind
    )


def _listing_ids(items: pd.Index) -> np.ndarray:
    num = pd.to_numeric(pd.Series(items), errors="coerce")
    if not num.isna().any() and (num % 1 == 0).all() and num.abs().max() < 2**53:
        as_int = num.to_numpy(np.int64)
        if len(np.unique(as_int)) == len(as_int):
            return as_int
    return np.arange(len(items), dtype=np.int64)


def _sessions(df: pd.DataFrame, items: pd.Index) -> Sessions:
    if df.empty:
        return Sessions(
            np.zeros(1, np.int64),
            np.zeros(0, np.int64),
            np.zeros(0, np.int64),
            np.zeros(0, np.int64),
        )
    df = df.sort_values(["session", "t", "order"], kind="stable")
    codes = items.get_indexer(pd.Index(df["item"]))
    sid = df["session"].to_numpy()
    starts = np.flatnonzero(np.r_[True, sid[1:] != sid[:-1]])
    offsets = np.r_[starts, len(df)].astype(np.int64)
    day = (df["t"].to_numpy()[starts] // DAY).astype(np.int64)
    return Sessions(offsets, codes.astype(np.int64), np.full(len(starts), -1, np.int64), day)
