"""Step 3: the chapter's feature groups, point-in-time, and event filtering.

One pure function, :func:`pair_frame`, turns the platform's records as of ``t``
(:class:`~mlsd.systems.event_rec.world_state.SocialState`, built from the logs of what happened
strictly before ``t``) plus the users' and events' attributes into the feature frame of
``(user, event, t)`` pairs; the offline path (one state per day, from the log) and the server
(one state at the serving clock, from the run's saved logs) call it alike, so training and
serving cannot drift apart. No feature is an id: every event is new.

Which features come from where (the chapter's batch vs. streaming split):

* **static, batch** (recomputed daily, they change slowly): the user's age, travel mode and
  declared interests, home neighbourhood, the event's price, category, description, place and
  duration, the host followed;
* **dynamic, streaming** (they change within minutes of a registration): registrations so far,
  friends registered, invitations, the host's past attendance, the user's registration
  history and calendar (overlap), the event's age.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from mlsd.features import hash_values
from mlsd.systems.event_rec.features_text import TextVectors
from mlsd.systems.event_rec.world import Log
from mlsd.systems.event_rec.world_config import CATEGORY_WORDS, DAY_S
from mlsd.systems.event_rec.world_state import CATEGORIES, N_CATEGORIES, SocialState

FEATURE_GROUPS: dict[str, tuple[str, ...]] = {
    "location": ("d_dist_km", "d_same_hood", "d_travel_min", "d_has_car"),
    "time": ("d_hours_until", "d_start_dow", "d_start_hour", "d_weekend", "d_overlap"),
    "social": (
        "d_friends_registered",
        "d_invited",
        "d_host_followed",
        "d_host_past_regs",
        "d_n_friends",
    ),
    "user": ("d_age", "d_user_regs"),
    "event": (
        "d_price",
        "d_price_vs_paid",
        "d_declared_interest",
        "d_cat_history_share",
        "d_desc_match",
        "d_desc_sim",
        "d_duration_h",
        "c_category",
    ),
    "dynamic": ("d_event_regs", "d_event_age_h", "d_fill_rate"),
}
POSITION = "d_position"  # the logged slot: a training feature, 0 when ranking (position bias)
FEATURES: tuple[str, ...] = tuple(c for cols in FEATURE_GROUPS.values() for c in cols)
SOURCE = {
    "location": "batch (home and venue change rarely)",
    "time": "request time + streaming calendar (overlap)",
    "social": "streaming (friends registered, invitations) + batch (follows)",
    "user": "batch (profile) + streaming (history)",
    "event": "batch (attributes, description embeddings) + streaming (history, profile)",
    "dynamic": "streaming (registrations so far)",
}
WALK_KMH, DRIVE_KMH = 5.0, 30.0
DEFAULT_RADIUS_KM = 8.0
DEFAULT_WINDOW_H = 7 * 24
SIM_CHUNK = 32768  # pairs per block of the description similarity (bounds its memory)


@dataclass
class Platform:
    """The attributes the platform knows (no hidden taste, budget or quality)."""

    users: pd.DataFrame  # user_id (= row), hood_id, x, y, age, has_car, interest_1, interest_2
    events: pd.DataFrame  # event_id (= row), host_id, category, x, y, created_ts, start_ts, ...
    hoods: pd.DataFrame  # hood_id, x, y
    text: TextVectors | None = None  # description embeddings (features_text); None: zeros
    event_words: np.ndarray = field(init=False)  # events × categories: description words

    def __post_init__(self) -> None:
        self.event_words = description_words(self.events["description"].tolist())

    def description_similarity(
        self, state: SocialState, u: np.ndarray, e: np.ndarray
    ) -> np.ndarray:
        """Cosine of the event's description with the user's text profile (declared interests
        and the descriptions of past registrations, before the state's time)."""
        if self.text is None or len(u) == 0:
            return np.zeros(len(u))
        users, inverse = np.unique(u, return_inverse=True)
        vec = self.text.events.astype(np.float64)
        interest = self.text.interests.astype(np.float64)
        prof = np.asarray(state.R[users] @ vec)
        prof += interest[self.users["interest_1"].to_numpy()[users]]
        prof += interest[self.users["interest_2"].to_numpy()[users]]
        prof /= np.maximum(np.linalg.norm(prof, axis=1, keepdims=True), 1e-12)
        out = np.empty(len(u))
        for a in range(0, len(u), SIM_CHUNK):  # rows × 384 floats at once would be gigabytes
            b = min(a + SIM_CHUNK, len(u))
            out[a:b] = np.einsum("ij,ij->i", prof[inverse[a:b]], vec[e[a:b]])
        return out

    def event_hood(self) -> np.ndarray:
        hx, hy = self.hoods["x"].to_numpy(), self.hoods["y"].to_numpy()
        ex, ey = self.events["x"].to_numpy(), self.events["y"].to_numpy()
        return np.asarray(np.argmin((ex[:, None] - hx) ** 2 + (ey[:, None] - hy) ** 2, axis=1))


_WORD_CATEGORY = {w: i for i, c in enumerate(CATEGORIES) for w in CATEGORY_WORDS[c]}


def description_words(descriptions: list[str]) -> np.ndarray:
    """Per description, the share of its words in each category's vocabulary (the stand-in
    for a text embedding: a bag of words over the categories' vocabularies)."""
    out = np.zeros((len(descriptions), N_CATEGORIES))
    for i, text in enumerate(descriptions):
        words = str(text).split()
        for w in words:
            c = _WORD_CATEGORY.get(w)
            if c is not None:
                out[i, c] += 1.0
        out[i] /= max(len(words), 1)
    return out


def distance_km(platform: Platform, u: np.ndarray, e: np.ndarray) -> np.ndarray:
    users, ev = platform.users, platform.events
    return np.asarray(
        np.hypot(
            users["x"].to_numpy()[u] - ev["x"].to_numpy()[e],
            users["y"].to_numpy()[u] - ev["y"].to_numpy()[e],
        )
    )


def pair_frame(
    platform: Platform,
    state: SocialState,
    u: np.ndarray,
    e: np.ndarray,
    ts: np.ndarray,
    position: np.ndarray | None = None,
    event_hood: np.ndarray | None = None,
) -> pd.DataFrame:
    """The feature frame of the pairs ``(u[i], e[i])`` at times ``ts[i]`` (state before ``ts``)."""
    users, ev = platform.users, platform.events
    u = np.asarray(u, np.int64)
    e = np.asarray(e, np.int64)
    ts = np.asarray(ts, np.int64)
    hood_e = platform.event_hood() if event_hood is None else event_hood
    km = distance_km(platform, u, e)
    car = users["has_car"].to_numpy()[u].astype(np.float64)
    start = ev["start_ts"].to_numpy()[e]
    cat = ev["category"].to_numpy()[e]
    price = ev["price"].to_numpy(np.float64)[e]
    host = ev["host_id"].to_numpy()[e]
    declared = (users["interest_1"].to_numpy()[u] == cat) | (
        users["interest_2"].to_numpy()[u] == cat
    )
    hist = state.user_cat[u]
    n_hist = hist.sum(axis=1)
    top_hist = np.argmax(hist, axis=1)
    vocab = np.zeros((len(u), N_CATEGORIES))
    rows = np.arange(len(u))
    vocab[rows, users["interest_1"].to_numpy()[u]] = 1.0
    vocab[rows, users["interest_2"].to_numpy()[u]] = 1.0
    vocab[rows[n_hist > 0], top_hist[n_hist > 0]] = 1.0
    paid = state.user_paid[u]
    X = pd.DataFrame(
        {
            "d_dist_km": km,
            "d_same_hood": (users["hood_id"].to_numpy()[u] == hood_e[e]).astype(np.float64),
            "d_travel_min": 60.0 * km / np.where(car > 0, DRIVE_KMH, WALK_KMH),
            "d_has_car": car,
            "d_hours_until": (start - ts) / 3600.0,
            "d_start_dow": ((start // DAY_S) % 7).astype(np.float64),
            "d_start_hour": ((start % DAY_S) // 3600).astype(np.float64),
            "d_weekend": ((start // DAY_S) % 7 >= 5).astype(np.float64),
            "d_overlap": state.overlap(u, start, ev["duration_h"].to_numpy()[e]),
            "d_friends_registered": np.log1p(state.pair_lookup(state.friends_registered, u, e)),
            "d_invited": state.pair_lookup(state.invited, u, e),
            "d_host_followed": state.pair_lookup(state.follows, u, host),
            "d_host_past_regs": np.log1p(state.host_regs[host]),
            "d_n_friends": np.log1p(state.n_friends[u]),
            "d_age": users["age"].to_numpy(np.float64)[u],
            "d_user_regs": np.log1p(state.user_regs[u]),
            "d_price": np.log1p(price),
            "d_price_vs_paid": np.where(paid > 0, price / np.maximum(paid, 1.0), -1.0),
            "d_declared_interest": declared.astype(np.float64),
            "d_cat_history_share": np.where(
                n_hist > 0, hist[rows, cat] / np.maximum(n_hist, 1), -1.0
            ),
            "d_desc_match": (platform.event_words[e] * vocab).sum(axis=1),
            "d_desc_sim": platform.description_similarity(state, u, e),
            "d_duration_h": ev["duration_h"].to_numpy(np.float64)[e],
            "c_category": hash_values("category", cat),
            "d_event_regs": np.log1p(state.event_regs[e]),
            "d_event_age_h": (ts - ev["created_ts"].to_numpy()[e]) / 3600.0,
            "d_fill_rate": state.event_regs[e] / ev["capacity"].to_numpy(np.float64)[e],
        }
    )
    X[POSITION] = 0.0 if position is None else np.asarray(position, np.float64)
    return X


def in_filter(
    platform: Platform,
    u: np.ndarray,
    e: np.ndarray,
    ts: np.ndarray,
    radius_km: float = DEFAULT_RADIUS_KM,
    window_h: float = DEFAULT_WINDOW_H,
    origin: tuple[float, float] | None = None,
) -> np.ndarray:
    """Event filtering: the venue within ``radius_km`` of home (or ``origin``), the start within
    ``window_h`` hours. (Eligibility, open and not full, comes with the candidates.)"""
    ev = platform.events
    if origin is None:
        km = distance_km(platform, u, e)
    else:
        km = np.hypot(origin[0] - ev["x"].to_numpy()[e], origin[1] - ev["y"].to_numpy()[e])
    hours = (ev["start_ts"].to_numpy()[e] - ts) / 3600.0
    return np.asarray((km <= radius_km) & (hours <= window_h))


# ---- the step's data: training rows from the log, evaluation candidates from the world -------
@dataclass
class TrainingData:
    """Logged impressions of every logged day (training, validation, test), point-in-time."""

    X: pd.DataFrame
    y: np.ndarray  # registered
    grade: np.ndarray  # 2 registered, 1 clicked or bookmarked, 0 shown (graded LambdaRank)
    session: np.ndarray  # the list each row was shown in (LambdaRank's groups)
    day: np.ndarray
    p_true: np.ndarray
    train_days: tuple[int, ...]
    val_days: tuple[int, ...]
    test_days: tuple[int, ...]

    def metrics(self) -> dict[str, Any]:
        return {
            "features": {
                "rows": len(self.y),
                "positive_rate": float(self.y.mean()) if len(self.y) else 0.0,
                "columns": list(FEATURES),
                "groups": {g: list(c) for g, c in FEATURE_GROUPS.items()},
                "train_days": list(self.train_days),
                "validation_days": list(self.val_days),
                "test_days": list(self.test_days),
            }
        }


@dataclass(frozen=True)
class Rows:
    """The training rows of some days: features, registrations, grades, lists (query groups)."""

    X: pd.DataFrame
    y: np.ndarray
    grade: np.ndarray
    group: np.ndarray


def rows_of(data: TrainingData, days: tuple[int, ...]) -> Rows:
    m = np.isin(data.day, days)
    return Rows(data.X[m].reset_index(drop=True), data.y[m], data.grade[m], data.session[m])


class DailyStates(Mapping[int, SocialState]):
    """The platform's state at the start of each day, built from the logs when asked for and
    not kept: one day's state (a users × hours calendar among it) in memory at a time."""

    def __init__(
        self,
        platform: Platform,
        log: Log,
        days: list[int],
        n_hosts: int,
        friends: pd.DataFrame,
        follows: pd.DataFrame,
        n_slots: int,
    ) -> None:
        self.platform, self.log, self.days = platform, log, list(days)
        self.n_hosts, self.friends, self.follows, self.n_slots = n_hosts, friends, follows, n_slots

    def __getitem__(self, day: int) -> SocialState:
        if day not in self.days:
            raise KeyError(day)
        return SocialState.build(
            day * DAY_S,
            len(self.platform.users),
            self.platform.events,
            self.friends,
            self.follows,
            self.n_hosts,
            self.log.registrations,
            self.log.invites,
            self.n_slots,
        )

    def __iter__(self) -> Iterator[int]:
        return iter(self.days)

    def __len__(self) -> int:
        return len(self.days)


def daily_states(
    platform: Platform,
    log: Log,
    days: list[int],
    n_hosts: int,
    friends: pd.DataFrame,
    follows: pd.DataFrame,
    n_slots: int,
) -> Mapping[int, SocialState]:
    return DailyStates(platform, log, days, n_hosts, friends, follows, n_slots)


def impression_features(
    platform: Platform, states: Mapping[int, SocialState], impressions: pd.DataFrame
) -> pd.DataFrame:
    """Features of logged impressions, each day from the state at the start of that day."""
    hood_e = platform.event_hood()
    parts = []
    for _, rows in impressions.groupby("day", sort=True):
        X = pair_frame(
            platform,
            states[int(rows["day"].to_numpy()[0])],
            rows["user_id"].to_numpy(),
            rows["event_id"].to_numpy(),
            rows["ts"].to_numpy(),
            position=rows["position"].to_numpy(),
            event_hood=hood_e,
        )
        X.index = rows.index
        parts.append(X)
    return pd.concat(parts).loc[impressions.index].reset_index(drop=True)
