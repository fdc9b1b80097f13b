"""``--data eventrec:DIR``: the layout of the public event-recommendation challenge.

``DIR`` holds ``train.csv`` (user, event, invited, timestamp, interested, not_interested),
``events.csv`` (event_id, user_id, start_time, city, state, zip, country, lat, lng, then the
word-count columns c_1 ... c_100, c_other), ``users.csv`` (user_id, locale, birthyear, gender,
joinedAt, location, timezone), ``user_friends.csv`` (user, friends: space-separated ids) and
``event_attendees.csv`` (event, yes, maybe, invited, no: space-separated ids).

Every column is read and checked: ``users.csv``'s birth year, gender, join date, time zone,
locale and free-text location; ``events.csv``'s city, state, zip and country next to the
coordinates; ``train.csv``'s ``not_interested`` (a graded label). Blank and ``None`` cells are
missing values (the challenge's files have many); anything else malformed, a flag that is not 0/1,
a row both interested and not, or an id that no other file knows, is a
:class:`~mlsd.data.DataError` naming the file, the line and the field (the CLI: one line, exit 2).
The features of the rows are in :mod:`.datasets_features`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mlsd.data import DataError

FORMAT = "eventrec"
FILES = ("train.csv", "events.csv", "users.csv", "user_friends.csv", "event_attendees.csv")
COLUMNS = {
    "train.csv": ("user", "event", "invited", "timestamp", "interested", "not_interested"),
    "events.csv": ("event_id", "user_id", "start_time", "city", "state", "country", "lat", "lng"),
    "users.csv": (
        "user_id",
        "locale",
        "birthyear",
        "gender",
        "joinedAt",
        "location",
        "timezone",
    ),
    "user_friends.csv": ("user", "friends"),
    "event_attendees.csv": ("event", "yes", "maybe", "invited", "no"),
}
MISSING = ("", "none", "nan", "na", "null")
GENDERS = ("male", "female")


@dataclass
class ChallengeFiles:
    root: Path
    train: pd.DataFrame  # user, event, invited, ts, interested, not_interested
    events: pd.DataFrame  # event_id, creator, start, city, state, country, lat, lng, c_*
    users: pd.DataFrame  # user_id, locale, birthyear, gender, joined_ts, location, timezone
    friends: dict[int, set[int]]
    attendees: dict[str, dict[int, set[int]]]  # yes/maybe/invited/no -> event -> users


def parse_spec(spec: str) -> Path:
    fmt, sep, rest = spec.partition(":")
    if not sep or fmt.strip().lower() != FORMAT:
        raise DataError(spec, f"unknown data format {fmt!r}: event-rec reads {FORMAT}:DIR")
    root = Path(rest).expanduser()
    if not root.is_dir():
        raise DataError(root, f"no such directory (from data spec {spec!r})")
    for name in FILES:
        if not (root / name).is_file():
            raise DataError(root / name, "no such file (the eventrec layout needs it)")
    return root


def _read(path: Path) -> pd.DataFrame:
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as exc:
        raise DataError(path, f"not a CSV file: {exc}") from exc
    missing = [c for c in COLUMNS[path.name] if c not in df.columns]
    if missing:
        raise DataError(path, "missing column", line=1, field=missing[0])
    return df


def _ints(df: pd.DataFrame, col: str, path: Path, allowed: tuple[int, ...] | None = None) -> Any:
    values = pd.to_numeric(df[col], errors="coerce")
    bad = values.isna() | (values != values.round())
    if allowed is not None:
        bad |= ~values.isin(allowed)
    if bad.any():
        i = int(np.flatnonzero(bad.to_numpy())[0])
        what = f"one of {allowed}" if allowed else "an integer id"
        raise DataError(path, f"{df[col].iat[i]!r} is not {what}", line=i + 2, field=col)
    return values.astype(np.int64).to_numpy()


def _blank(df: pd.DataFrame, col: str) -> np.ndarray:
    return np.asarray(df[col].str.strip().str.lower().isin(MISSING).to_numpy())


def _times(df: pd.DataFrame, col: str, path: Path, optional: bool = False) -> np.ndarray:
    """Seconds since the epoch; with ``optional``, blank cells are -1 (missing)."""
    blank = _blank(df, col) if optional else np.zeros(len(df), bool)
    raw = df[col].where(~blank, "1970-01-01T00:00:00Z")
    ts = pd.to_datetime(raw, errors="coerce", utc=True, format="mixed")
    if ts.isna().any():
        i = int(np.flatnonzero(ts.isna().to_numpy())[0])
        raise DataError(path, f"{df[col].iat[i]!r} is not a timestamp", line=i + 2, field=col)
    out = np.asarray(ts.astype("int64").to_numpy() // 10**9, np.int64)
    return np.where(blank, -1, out)


def _floats(
    df: pd.DataFrame, col: str, path: Path, lo: float = -np.inf, hi: float = np.inf
) -> np.ndarray:
    """Numbers within ``[lo, hi]``; blank cells are NaN (missing)."""
    raw = df[col].str.strip()
    blank = _blank(df, col)
    values = pd.to_numeric(raw.where(~blank, "nan"), errors="coerce").to_numpy(np.float64)
    bad = (np.isnan(values) & ~blank) | (~np.isnan(values) & ((values < lo) | (values > hi)))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        what = "a number" if np.isinf(lo) and np.isinf(hi) else f"a number in [{lo:g}, {hi:g}]"
        raise DataError(path, f"{df[col].iat[i]!r} is not {what}", line=i + 2, field=col)
    return values


def _choice(df: pd.DataFrame, col: str, path: Path, allowed: tuple[str, ...]) -> np.ndarray:
    """A lower-cased category from ``allowed``; blank cells are ""."""
    raw = df[col].str.strip().str.lower()
    blank = _blank(df, col)
    bad = ~blank & ~raw.isin(allowed).to_numpy()
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise DataError(
            path, f"{df[col].iat[i]!r} is not one of {allowed} (or blank)", line=i + 2, field=col
        )
    return np.asarray(np.where(blank, "", raw.to_numpy()), dtype=object)


def _text(df: pd.DataFrame, col: str) -> np.ndarray:
    """Free text, lower-cased with single spaces; blank cells are ""."""
    raw = df[col].str.lower().str.split().str.join(" ")
    return np.asarray(np.where(_blank(df, col), "", raw.fillna("").to_numpy()), dtype=object)


def _id_lists(df: pd.DataFrame, key: str, col: str, path: Path) -> dict[int, set[int]]:
    keys = _ints(df, key, path)
    out: dict[int, set[int]] = {}
    for i, (k, text) in enumerate(zip(keys, df[col], strict=True)):
        try:
            out[int(k)] = {int(x) for x in str(text).split()}
        except ValueError as exc:
            raise DataError(path, f"not space-separated ids: {exc}", line=i + 2, field=col) from exc
    return out


def read_challenge(spec: str) -> ChallengeFiles:
    root = parse_spec(spec)
    p = {name: root / name for name in FILES}
    tr = _read(p["train.csv"])
    if len(tr) == 0:
        raise DataError(p["train.csv"], "no rows")
    train = pd.DataFrame(
        {
            "user": _ints(tr, "user", p["train.csv"]),
            "event": _ints(tr, "event", p["train.csv"]),
            "invited": _ints(tr, "invited", p["train.csv"], (0, 1)),
            "ts": _times(tr, "timestamp", p["train.csv"]),
            "interested": _ints(tr, "interested", p["train.csv"], (0, 1)),
            "not_interested": _ints(tr, "not_interested", p["train.csv"], (0, 1)),
        }
    )
    both = (train["interested"] & train["not_interested"]).to_numpy() > 0
    if both.any():
        i = int(np.flatnonzero(both)[0])
        raise DataError(
            p["train.csv"], "interested and not_interested both 1", line=i + 2, field="interested"
        )
    ev = _read(p["events.csv"])
    words = [c for c in ev.columns if c.startswith("c_")]
    events = pd.DataFrame(
        {
            "event_id": _ints(ev, "event_id", p["events.csv"]),
            "creator": _ints(ev, "user_id", p["events.csv"]),
            "start": _times(ev, "start_time", p["events.csv"]),
            "city": _text(ev, "city"),
            "state": _text(ev, "state"),
            "country": _text(ev, "country"),
            "lat": _floats(ev, "lat", p["events.csv"], -90.0, 90.0),
            "lng": _floats(ev, "lng", p["events.csv"], -180.0, 180.0),
        }
    )
    for c in words:
        events[c] = np.nan_to_num(_floats(ev, c, p["events.csv"], 0.0))
    us = _read(p["users.csv"])
    pu = p["users.csv"]
    users = pd.DataFrame(
        {
            "user_id": _ints(us, "user_id", pu),
            "locale": _text(us, "locale"),
            "birthyear": _floats(us, "birthyear", pu, 1900.0, 2030.0),
            "gender": _choice(us, "gender", pu, GENDERS),
            "joined_ts": _times(us, "joinedAt", pu, optional=True),
            "location": _text(us, "location"),
            "timezone": _floats(us, "timezone", pu, -720.0, 840.0),  # minutes from UTC
        }
    )
    for name, df, col in (("events.csv", events, "event_id"), ("users.csv", users, "user_id")):
        dup = df[col].duplicated().to_numpy()
        if dup.any():
            i = int(np.flatnonzero(dup)[0])
            raise DataError(p[name], f"{df[col].iat[i]} appears twice", line=i + 2, field=col)
    known_events = set(events["event_id"].tolist())
    known_users = set(users["user_id"].tolist())
    for col, known, where in (
        ("event", known_events, "events.csv"),
        ("user", known_users, "users.csv"),
    ):
        unknown = ~train[col].isin(known).to_numpy()
        if unknown.any():
            i = int(np.flatnonzero(unknown)[0])
            raise DataError(
                p["train.csv"],
                f"{col} {train[col].iat[i]} is not in {where}",
                line=i + 2,
                field=col,
            )
    fr = _read(p["user_friends.csv"])
    att = _read(p["event_attendees.csv"])
    attendees = {
        c: _id_lists(att, "event", c, p["event_attendees.csv"])
        for c in ("yes", "maybe", "invited", "no")
    }
    return ChallengeFiles(
        root,
        train,
        events,
        users,
        _id_lists(fr, "user", "friends", p["user_friends.csv"]),
        attendees,
    )
