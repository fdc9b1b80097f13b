"""The features of the challenge's rows, point-in-time, and the split by time.

Each row of ``train.csv`` is a (user, event, time ``t``) the user was shown. Its features use
what was known strictly before ``t``:

* **location**: the user's home from ``users.csv``'s free-text location, placed with the
  coordinates of ``events.csv``'s events in that city (or state, or country); else the mean
  place of the events the user was shown before ``t``; distance, same city;
* **time**: hours until the start, day of week, hour (and local hour with the user's time zone);
* **social**: friends who answered interested / not interested / were invited to the event
  before ``t`` (from ``train.csv``'s timestamped rows), the host a friend, invited;
* **user**: age at ``t``, gender, days since joining, locale, rows and interests so far;
* **event**: description similarity (word counts) to the user's interests before ``t``;
* **dynamic**: the event's interested / not interested / shown counts before ``t``.

``event_attendees.csv`` has no times: it is the lists as of the dump, after every row (it
includes each user's own answer), so it gives no feature; :func:`snapshot_features` builds its
counts only to measure how much such a leak would flatter a model. The friend graph has no times
either and is taken as static. Rows split by time: the earliest three fifths train, the next
fifth validates (every choice), the last fifth tests.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from mlsd.features import hash_values
from mlsd.systems.event_rec.datasets import ChallengeFiles

VAL_SHARE = 0.2
TEST_SHARE = 0.2
TRAIN, VAL, TEST = 0, 1, 2


@dataclass(frozen=True)
class ChallengeData:
    X: pd.DataFrame
    y: np.ndarray  # interested
    grade: np.ndarray  # 2 interested, 1 no answer, 0 not interested
    user: np.ndarray
    event: np.ndarray
    request: np.ndarray  # one id per (user, timestamp): the events shown together
    split: np.ndarray  # TRAIN / VAL / TEST
    cutoffs: tuple[int, int]  # first validation and first test timestamps
    home_from_profile: float  # share of rows whose home came from users.csv's location


def _before(key: np.ndarray, ts: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Per row, the sum of ``values`` (1-d or 2-d) over the rows with the same ``key`` and a
    strictly smaller ``ts`` (rows at the same time are not yet known to each other)."""
    order = np.lexsort((ts, key))
    v = values[order]
    cum = np.cumsum(v, axis=0)
    cum = np.concatenate([np.zeros((1, *v.shape[1:])), cum])  # cum[i] = sum of the first i
    k, t = key[order], ts[order]
    run_start = np.r_[True, (k[1:] != k[:-1]) | (t[1:] != t[:-1])]
    key_start = np.r_[True, k[1:] != k[:-1]]
    first_of_run = np.maximum.accumulate(np.where(run_start, np.arange(len(k)), 0))
    first_of_key = np.maximum.accumulate(np.where(key_start, np.arange(len(k)), 0))
    out = np.empty_like(cum[1:])
    out[order] = cum[first_of_run] - cum[first_of_key]
    return out


def _haversine(
    lat1: np.ndarray, lon1: np.ndarray, lat2: np.ndarray, lon2: np.ndarray
) -> np.ndarray:
    r = math.pi / 180.0
    a = (
        np.sin((lat2 - lat1) * r / 2) ** 2
        + np.cos(lat1 * r) * np.cos(lat2 * r) * np.sin((lon2 - lon1) * r / 2) ** 2
    )
    return np.asarray(6371.0 * 2 * np.arcsin(np.sqrt(np.clip(a, 0, 1))))


def place_table(events: pd.DataFrame) -> dict[str, tuple[float, float]]:
    """The mean coordinates of the events in each city, state and country (lower case)."""
    known = events.dropna(subset=["lat", "lng"])
    out: dict[str, tuple[float, float]] = {}
    for col in ("country", "state", "city"):  # a city overrides a state or country of its name
        g = known[known[col] != ""].groupby(col)[["lat", "lng"]].mean()
        for k, a, b in zip(g.index, g["lat"], g["lng"], strict=True):
            out[str(k)] = (float(a), float(b))
    return out


def geocode(location: str, places: dict[str, tuple[float, float]]) -> tuple[float, float]:
    """A free-text location ("san francisco california", "djakarta indonesia") placed at the
    longest leading run of words that names a known city, else any trailing run (a state or
    country); NaN when nothing matches."""
    words = location.split()
    for n in range(len(words), 0, -1):
        hit = places.get(" ".join(words[:n]))
        if hit is not None:
            return hit
    for n in range(1, len(words)):
        hit = places.get(" ".join(words[n:]))
        if hit is not None:
            return hit
    return (math.nan, math.nan)


def split_by_time(ts: np.ndarray) -> tuple[np.ndarray, tuple[int, int]]:
    val_ts = int(np.quantile(ts, 1.0 - TEST_SHARE - VAL_SHARE))
    test_ts = int(np.quantile(ts, 1.0 - TEST_SHARE))
    split = np.where(ts >= test_ts, TEST, np.where(ts >= val_ts, VAL, TRAIN))
    if len(np.unique(split)) < 3:  # too few distinct times: by row order instead
        order = np.argsort(ts, kind="stable")
        pos = np.empty(len(ts), np.int64)
        pos[order] = np.arange(len(ts))
        n = len(ts)
        split = np.where(
            pos >= n * (1 - TEST_SHARE),
            TEST,
            np.where(pos >= n * (1 - TEST_SHARE - VAL_SHARE), VAL, TRAIN),
        )
    return split.astype(np.int64), (val_ts, test_ts)


def _friends_before(
    files: ChallengeFiles, u: np.ndarray, e: np.ndarray, ts: np.ndarray, flag: np.ndarray
) -> np.ndarray:
    """Per row, the user's friends with a row for the same event, ``flag`` set, before ``ts``."""
    first: dict[int, dict[int, int]] = {}
    for uu, ee, tt in zip(u[flag], e[flag], ts[flag], strict=True):
        by_user = first.setdefault(int(ee), {})
        by_user[int(uu)] = min(by_user.get(int(uu), int(tt)), int(tt))
    out = np.zeros(len(u))
    for i, (uu, ee, tt) in enumerate(zip(u, e, ts, strict=True)):
        seen = first.get(int(ee))
        if seen:
            fr = files.friends.get(int(uu), set())
            out[i] = sum(1 for f in fr if seen.get(f, tt) < tt)
    return out


def challenge_features(files: ChallengeFiles) -> ChallengeData:
    tr = files.train
    u, e = tr["user"].to_numpy(np.int64), tr["event"].to_numpy(np.int64)
    ts = tr["ts"].to_numpy(np.int64)
    interested = tr["interested"].to_numpy(np.int64)
    not_int = tr["not_interested"].to_numpy(np.int64)
    invited = tr["invited"].to_numpy(np.int64)
    ev = files.events.set_index("event_id")
    lat, lng = ev.loc[e, "lat"].to_numpy(), ev.loc[e, "lng"].to_numpy()
    start = ev.loc[e, "start"].to_numpy(np.int64)
    users = files.users.set_index("user_id").loc[u]
    places = place_table(files.events)
    profile = {loc: geocode(loc, places) for loc in set(users["location"].tolist()) if loc}
    home = np.array([profile.get(loc, (math.nan, math.nan)) for loc in users["location"]])
    home = home.reshape(len(u), 2)
    known = ~np.isnan(lat) & ~np.isnan(lng)
    sums = _before(u, ts, np.c_[np.where(known, lat, 0), np.where(known, lng, 0), known * 1.0])
    seen_home = sums[:, :2] / np.maximum(sums[:, 2:3], 1.0)
    seen_home[sums[:, 2] == 0] = np.nan
    from_profile = ~np.isnan(home[:, 0])
    home = np.where(from_profile[:, None], home, seen_home)
    km = _haversine(home[:, 0], home[:, 1], lat, lng)
    city = ev.loc[e, "city"].to_numpy()
    same_city = np.array(
        [bool(c) and str(c) in str(loc) for c, loc in zip(city, users["location"], strict=True)]
    )
    words = [c for c in ev.columns if c.startswith("c_")]
    if words:
        W = ev.loc[e, words].to_numpy(np.float64)
        W /= np.maximum(np.linalg.norm(W, axis=1, keepdims=True), 1e-9)
        prof = _before(u, ts, W * interested[:, None])
        sim = (W * prof).sum(axis=1) / np.maximum(np.linalg.norm(prof, axis=1), 1e-9)
    else:
        sim = np.zeros(len(u))
    tz = users["timezone"].to_numpy(np.float64)
    joined = users["joined_ts"].to_numpy(np.int64)
    year = pd.to_datetime(ts, unit="s").year.to_numpy()
    gender = users["gender"].to_numpy()
    creator = ev.loc[e, "creator"].to_numpy()
    ones = np.ones(len(u))
    X = pd.DataFrame(
        {
            "d_dist_km": np.nan_to_num(km, nan=-1.0),
            "d_dist_missing": np.isnan(km).astype(np.float64),
            "d_home_from_profile": from_profile.astype(np.float64),
            "d_same_city": same_city.astype(np.float64),
            "d_hours_until": (start - ts) / 3600.0,
            "d_start_dow": ((start // 86400 + 3) % 7).astype(np.float64),
            "d_start_hour": ((start % 86400) // 3600).astype(np.float64),
            "d_start_hour_local": np.where(
                np.isnan(tz), -1.0, ((start + np.nan_to_num(tz) * 60) % 86400) // 3600
            ),
            "d_invited": invited.astype(np.float64),
            "d_friends_interested": np.log1p(_friends_before(files, u, e, ts, interested > 0)),
            "d_friends_not_interested": np.log1p(_friends_before(files, u, e, ts, not_int > 0)),
            "d_friends_invited": np.log1p(_friends_before(files, u, e, ts, invited > 0)),
            "d_host_is_friend": np.array(
                [
                    int(c) in files.friends.get(int(a), set())
                    for a, c in zip(u, creator, strict=True)
                ],
                np.float64,
            ),
            "d_n_friends": np.log1p([len(files.friends.get(int(a), ())) for a in u]),
            "d_age": np.nan_to_num(year - users["birthyear"].to_numpy(np.float64), nan=-1.0),
            "d_gender_male": np.where(gender == "", -1.0, (gender == "male") * 1.0),
            "d_days_since_joined": np.where(joined < 0, -1.0, np.maximum(ts - joined, 0) / 86400),
            "d_user_rows": np.log1p(_before(u, ts, ones)),
            "d_user_interested": np.log1p(_before(u, ts, interested * 1.0)),
            "d_desc_sim": sim,
            "d_event_regs": np.log1p(_before(e, ts, interested * 1.0)),
            "d_event_not_interested": np.log1p(_before(e, ts, not_int * 1.0)),
            "d_event_shown": np.log1p(_before(e, ts, ones)),
            "d_event_invited": np.log1p(_before(e, ts, invited * 1.0)),
            "c_locale": hash_values("locale", users["locale"].to_numpy()),
        }
    )
    split, cutoffs = split_by_time(ts)
    _, request = np.unique(np.c_[u, ts], axis=0, return_inverse=True)
    return ChallengeData(
        X=X,
        y=interested,
        grade=np.where(interested > 0, 2, np.where(not_int > 0, 0, 1)),
        user=u,
        event=e,
        request=request.ravel().astype(np.int64),
        split=split,
        cutoffs=cutoffs,
        home_from_profile=float(from_profile.mean()),
    )


def snapshot_features(files: ChallengeFiles, data: ChallengeData) -> pd.DataFrame:
    """The event_attendees.csv counts (as of the dump: the future, with each user's own answer):
    only to measure the leak, never a model's input."""
    att = files.attendees

    def count(kind: str) -> np.ndarray:
        return np.log1p(np.array([len(att[kind].get(int(b), ())) for b in data.event], float))

    def friends_in(kind: str) -> np.ndarray:
        return np.log1p(
            [
                len(files.friends.get(int(a), set()) & att[kind].get(int(b), set()))
                for a, b in zip(data.user, data.event, strict=True)
            ]
        )

    return data.X.assign(
        d_snapshot_yes=count("yes"),
        d_snapshot_no=count("no"),
        d_snapshot_maybe=count("maybe"),
        d_snapshot_friends_yes=friends_in("yes"),
        d_snapshot_friends_no=friends_in("no"),
    )
