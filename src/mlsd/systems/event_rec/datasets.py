"""``--data eventrec:DIR``: the layout of the public event-recommendation challenge.

``DIR`` holds ``train.csv`` (user, event, invited, timestamp, interested, not_interested),
``events.csv`` (event_id, user_id, start_time, city, state, zip, country, lat, lng, then the
word-count columns c_1 ... c_100, c_other), ``users.csv`` (user_id, locale, birthyear, gender,
joinedAt, location, timezone), ``user_friends.csv`` (user, friends: space-separated ids) and
``event_attendees.csv`` (event, yes, maybe, invited, no: space-separated ids).

The rows of ``train.csv`` are split by time (the last fifth of timestamps is the test set); each
user's candidate events in the test set are ranked and scored with MAP@200 and nDCG@10 against
``interested``. Missing coordinates stay missing (LightGBM handles them; the linear model sees
a -1 and a missing flag). A malformed timestamp, a non-0/1 flag or an id that no other file
knows is a :class:`~mlsd.data.DataError` naming the file, the line and the field.
"""

from __future__ import annotations

import math
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
    "events.csv": ("event_id", "user_id", "start_time", "lat", "lng"),
    "users.csv": ("user_id", "birthyear"),
    "user_friends.csv": ("user", "friends"),
    "event_attendees.csv": ("event", "yes", "maybe", "invited", "no"),
}
TEST_SHARE = 0.2


@dataclass
class ChallengeFiles:
    root: Path
    train: pd.DataFrame
    events: pd.DataFrame
    users: pd.DataFrame
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


def _times(df: pd.DataFrame, col: str, path: Path) -> np.ndarray:
    ts = pd.to_datetime(df[col], errors="coerce", utc=True, format="mixed")
    if ts.isna().any():
        i = int(np.flatnonzero(ts.isna().to_numpy())[0])
        raise DataError(path, f"{df[col].iat[i]!r} is not a timestamp", line=i + 2, field=col)
    return np.asarray(ts.astype("int64").to_numpy() // 10**9, np.int64)


def _floats(df: pd.DataFrame, col: str, path: Path) -> np.ndarray:
    raw = df[col].str.strip()
    blank = raw.isin(("", "NA", "nan")).to_numpy()
    values = pd.to_numeric(raw.where(~blank, "nan"), errors="coerce")
    bad = values.isna() & ~blank
    if bad.any():
        i = int(np.flatnonzero(bad.to_numpy())[0])
        raise DataError(path, f"{df[col].iat[i]!r} is not a number", line=i + 2, field=col)
    return np.asarray(values.to_numpy(np.float64))


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
        }
    )
    ev = _read(p["events.csv"])
    words = [c for c in ev.columns if c.startswith("c_")]
    events = pd.DataFrame(
        {
            "event_id": _ints(ev, "event_id", p["events.csv"]),
            "creator": _ints(ev, "user_id", p["events.csv"]),
            "start": _times(ev, "start_time", p["events.csv"]),
            "lat": _floats(ev, "lat", p["events.csv"]),
            "lng": _floats(ev, "lng", p["events.csv"]),
        }
    )
    for c in words:
        events[c] = np.nan_to_num(_floats(ev, c, p["events.csv"]))
    us = _read(p["users.csv"])
    by = pd.to_numeric(us["birthyear"], errors="coerce")  # "None" in the challenge's file
    users = pd.DataFrame({"user_id": _ints(us, "user_id", p["users.csv"]), "birthyear": by})
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


# ---- features of the challenge's rows ----------------------------------------------------------
def _haversine(
    lat1: np.ndarray, lon1: np.ndarray, lat2: np.ndarray, lon2: np.ndarray
) -> np.ndarray:
    r = math.pi / 180.0
    a = (
        np.sin((lat2 - lat1) * r / 2) ** 2
        + np.cos(lat1 * r) * np.cos(lat2 * r) * np.sin((lon2 - lon1) * r / 2) ** 2
    )
    return np.asarray(6371.0 * 2 * np.arcsin(np.sqrt(np.clip(a, 0, 1))))


@dataclass(frozen=True)
class ChallengeData:
    X: pd.DataFrame
    y: np.ndarray
    user: np.ndarray
    event: np.ndarray
    test: np.ndarray  # bool: the last fifth of timestamps
    cutoff_ts: int


def challenge_features(files: ChallengeFiles) -> ChallengeData:
    """Per row of ``train.csv``: location, time, social, user and event features. The user's
    home and word profile come from their training rows only (before the cut-off)."""
    tr = files.train
    cutoff = int(np.quantile(tr["ts"].to_numpy(), 1.0 - TEST_SHARE))
    test = tr["ts"].to_numpy() >= cutoff
    if test.all() or not test.any():
        test = np.arange(len(tr)) >= int(len(tr) * (1 - TEST_SHARE))
    ev = files.events.set_index("event_id")
    e = tr["event"].to_numpy()
    u = tr["user"].to_numpy()
    lat, lng = ev.loc[e, "lat"].to_numpy(), ev.loc[e, "lng"].to_numpy()
    start = ev.loc[e, "start"].to_numpy()
    words = [c for c in ev.columns if c.startswith("c_")]
    past = pd.DataFrame({"user": u[~test], "lat": lat[~test], "lng": lng[~test]})
    home = past.groupby("user")[["lat", "lng"]].mean()
    h = home.reindex(u)
    km = _haversine(h["lat"].to_numpy(), h["lng"].to_numpy(), lat, lng)
    liked = ~test & (tr["interested"].to_numpy() == 1)
    if words:
        W = ev.loc[e, words].to_numpy(np.float64)
        W /= np.maximum(np.linalg.norm(W, axis=1, keepdims=True), 1e-9)
        prof = pd.DataFrame(W[liked], index=u[liked]).groupby(level=0).mean()
        P = prof.reindex(u).fillna(0.0).to_numpy()
        sim = (W * P).sum(axis=1) / np.maximum(np.linalg.norm(P, axis=1), 1e-9)
    else:
        sim = np.zeros(len(tr))
    friends = files.friends
    att = files.attendees

    def friends_in(kind: str) -> np.ndarray:
        return np.array(
            [
                len(friends.get(int(a), set()) & att[kind].get(int(b), set()))
                for a, b in zip(u, e, strict=True)
            ],
            np.float64,
        )

    def count(kind: str) -> np.ndarray:
        return np.log1p(np.array([len(att[kind].get(int(b), ())) for b in e], np.float64))

    creator = ev.loc[e, "creator"].to_numpy()
    by = files.users.set_index("user_id")["birthyear"].reindex(u).to_numpy(np.float64)
    year = pd.to_datetime(tr["ts"], unit="s").dt.year.to_numpy()
    X = pd.DataFrame(
        {
            "d_dist_km": np.nan_to_num(km, nan=-1.0),
            "d_dist_missing": np.isnan(km).astype(np.float64),
            "d_hours_until": (start - tr["ts"].to_numpy()) / 3600.0,
            "d_start_dow": ((start // 86400 + 3) % 7).astype(np.float64),
            "d_start_hour": ((start % 86400) // 3600).astype(np.float64),
            "d_invited": tr["invited"].to_numpy(np.float64),
            "d_friends_yes": np.log1p(friends_in("yes")),
            "d_friends_maybe": np.log1p(friends_in("maybe")),
            "d_friends_no": np.log1p(friends_in("no")),
            "d_friends_invited": np.log1p(friends_in("invited")),
            "d_host_is_friend": np.array(
                [int(c) in friends.get(int(a), set()) for a, c in zip(u, creator, strict=True)],
                np.float64,
            ),
            "d_age": np.nan_to_num(year - by, nan=-1.0),
            "d_event_regs": count("yes"),
            "d_maybe": count("maybe"),
            "d_no": count("no"),
            "d_invited_count": count("invited"),
            "d_desc_sim": sim,
        }
    )
    return ChallengeData(X, tr["interested"].to_numpy(np.int64), u, e, test, cutoff)
