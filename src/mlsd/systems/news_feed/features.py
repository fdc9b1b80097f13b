"""Step 3: the chapter's features of a (user, post) pair, point-in-time.

:class:`FeedState` holds the platform's reaction counts from the impressions logged strictly
before a moment (per post, author, user, user-author pair and user-topic); :func:`pair_frame`
turns it plus the platform's tables into the feature frame. The offline path (one state per
day, from the impressions of earlier days) and the server (one state at the serving clock) call
the same function, so training and serving cannot drift apart. Groups, from the chapter:

* **post**: topic, media type, hashtag, age, flagged by another system, reactions so far;
* **author**: person, page or group, the author's past reaction rates;
* **user**: demographics, days since sign-up, the user's past reaction rates, their click rate on
  the post's topic;
* **affinity** (user-author): friend, friendship length, followed page or group, past reactions
  with this author (the observable trace of the world's hidden closeness).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from mlsd.features import hash_values
from mlsd.systems.news_feed.features_retrieval import connection_matrix, in_sorted, pair_keys
from mlsd.systems.news_feed.world_config import BINARY_HEADS, DAY_S, HEADS

#: the counts a state keeps per key: impressions, the six reactions, summed dwell seconds
COUNTS = ("impressions", *BINARY_HEADS, "dwell")
FEATURE_GROUPS: dict[str, tuple[str, ...]] = {
    "post": (
        "c_topic",
        "c_media",
        "c_hashtag",
        "d_post_age_h",
        "d_flagged",
        "d_post_impressions",
        "d_post_ctr",
        "d_post_like_rate",
        "d_post_reactions",
        "d_post_hide_rate",
    ),
    "author": (
        "d_is_page",
        "d_is_group",
        "d_author_ctr",
        "d_author_like_rate",
        "d_author_comment_rate",
        "d_author_share_rate",
        "d_author_hide_rate",
        "d_author_block_rate",
        "d_author_dwell",
    ),
    "user": (
        "c_age_bucket",
        "c_country",
        "d_user_days",
        "d_user_impressions",
        "d_user_ctr",
        "d_user_like_rate",
        "d_user_hide_rate",
        "d_user_dwell",
        "d_user_topic_ctr",
    ),
    "affinity": (
        "d_is_friend",
        "d_friend_days",
        "d_follows",
        "d_pair_impressions",
        "d_pair_ctr",
        "d_pair_like_rate",
        "d_pair_comment_rate",
        "d_pair_dwell",
    ),
}
POSITION = "d_position"  # the logged slot: a training feature, 0 when ranking (position bias)
FEATURES: tuple[str, ...] = tuple(c for cols in FEATURE_GROUPS.values() for c in cols)
SOURCE = {
    "post": "attributes (batch) + reactions so far (streaming)",
    "author": "attributes (batch) + reaction rates (streaming)",
    "user": "profile (batch) + history (streaming)",
    "affinity": "social graph (batch) + past reactions with the author (streaming)",
}
PRIOR = 20.0  # pseudo-impressions of the smoothed rates
N_TOPICS = 10


@dataclass
class Platform:
    """The tables the platform knows: users, authors, posts, friends, follows."""

    users: pd.DataFrame
    authors: pd.DataFrame
    posts: pd.DataFrame
    friends: pd.DataFrame  # user_id, friend_id, since_day
    follows: pd.DataFrame  # user_id, author_id, since_day
    connections: Any = field(init=False)
    _friend_keys: np.ndarray = field(init=False)
    _friend_since: np.ndarray = field(init=False)
    _follow_keys: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        na = len(self.authors)
        self.connections = connection_matrix(self.friends, self.follows, len(self.users), na)
        f = self.friends
        keys = np.r_[
            pair_keys(f["user_id"], f["friend_id"], na), pair_keys(f["friend_id"], f["user_id"], na)
        ]
        since = np.r_[f["since_day"], f["since_day"]].astype(np.float64)
        order = np.argsort(keys, kind="stable")
        self._friend_keys, self._friend_since = keys[order], since[order]
        self._follow_keys = np.sort(
            pair_keys(self.follows["user_id"], self.follows["author_id"], na)
        )

    @property
    def n_authors(self) -> int:
        return len(self.authors)

    def friend_since(self, u: np.ndarray, a: np.ndarray) -> np.ndarray:
        """The day the friendship began, NaN for no friendship."""
        keys = pair_keys(u, a, self.n_authors)
        i = np.clip(np.searchsorted(self._friend_keys, keys), 0, max(len(self._friend_keys) - 1, 0))
        hit = self._friend_keys[i] == keys if len(self._friend_keys) else np.zeros(len(keys), bool)
        return np.where(hit, self._friend_since[i] if len(self._friend_keys) else 0.0, np.nan)

    def follows_page(self, u: np.ndarray, a: np.ndarray) -> np.ndarray:
        return in_sorted(pair_keys(u, a, self.n_authors), self._follow_keys)


@dataclass
class FeedState:
    """Reaction counts of the impressions logged before ``ts`` (columns :data:`COUNTS`)."""

    ts: int
    post: np.ndarray  # posts x counts
    author: np.ndarray  # authors x counts
    user: np.ndarray  # users x counts
    pair_keys: np.ndarray  # sorted user-author keys
    pair: np.ndarray  # their counts
    user_topic: np.ndarray  # users x topics x (impressions, clicks)
    total: np.ndarray  # counts over everything

    @classmethod
    def build(cls, impressions: pd.DataFrame, ts: int, platform: Platform) -> FeedState:
        """The state from the impressions with ``ts`` < ``ts``."""
        imp = impressions[impressions["ts"].to_numpy() < ts]
        values = np.column_stack(
            [np.ones(len(imp))] + [imp[c].to_numpy(np.float64) for c in (*BINARY_HEADS, "dwell")]
        )
        p = imp["post_id"].to_numpy(np.int64)
        a = imp["author_id"].to_numpy(np.int64)
        u = imp["user_id"].to_numpy(np.int64)
        n_posts = max(len(platform.posts), int(p.max()) + 1 if len(p) else 0)

        def sums(idx: np.ndarray, n: int) -> np.ndarray:
            out = np.zeros((n, len(COUNTS)))
            np.add.at(out, idx, values)
            return out

        keys = pair_keys(u, a, platform.n_authors)
        uniq, inverse = np.unique(keys, return_inverse=True)
        topic = platform.posts["topic"].to_numpy(np.int64)[p]
        ut = np.zeros((len(platform.users), N_TOPICS, 2))
        flat = ut.reshape(-1)  # (user, topic, 0 | 1) as one index
        base = (u * N_TOPICS + topic) * 2
        np.add.at(flat, base, 1.0)
        np.add.at(flat, base + 1, imp["click"].to_numpy(np.float64))
        return cls(
            ts=int(ts),
            post=sums(p, n_posts),
            author=sums(a, platform.n_authors),
            user=sums(u, len(platform.users)),
            pair_keys=uniq,
            pair=sums(inverse, len(uniq)),
            user_topic=ut,
            total=values.sum(axis=0) if len(values) else np.zeros(len(COUNTS)),
        )

    def pair_counts(self, u: np.ndarray, a: np.ndarray, n_authors: int) -> np.ndarray:
        keys = pair_keys(u, a, n_authors)
        if len(self.pair_keys) == 0:
            return np.zeros((len(keys), len(COUNTS)))
        i = np.clip(np.searchsorted(self.pair_keys, keys), 0, len(self.pair_keys) - 1)
        hit = self.pair_keys[i] == keys
        return np.where(hit[:, None], self.pair[i], 0.0)

    def post_counts(self, p: np.ndarray) -> np.ndarray:
        """Counts per post; posts newer than the state (published since) have none."""
        out = np.zeros((len(p), len(COUNTS)))
        known = p < len(self.post)
        out[known] = self.post[p[known]]
        return out

    def rate(self, counts: np.ndarray, what: str) -> np.ndarray:
        """``what`` per impression, smoothed towards the overall rate."""
        j = COUNTS.index(what)
        prior = self.total[j] / max(self.total[0], 1.0)
        return np.asarray((counts[:, j] + PRIOR * prior) / (counts[:, 0] + PRIOR))


def pair_frame(
    platform: Platform,
    state: FeedState,
    u: np.ndarray,
    p: np.ndarray,
    ts: np.ndarray,
    position: np.ndarray | None = None,
) -> pd.DataFrame:
    """The feature frame of the pairs ``(u[i], p[i])`` at times ``ts[i]`` (counts before the
    state's time)."""
    u, p, ts = (np.asarray(x, np.int64) for x in (u, p, ts))
    posts, users = platform.posts, platform.users
    a = posts["author_id"].to_numpy(np.int64)[p]
    topic = posts["topic"].to_numpy(np.int64)[p]
    pc, ac, uc = state.post_counts(p), state.author[a], state.user[u]
    pair = state.pair_counts(u, a, platform.n_authors)
    ut = state.user_topic[u, topic]
    topic_prior = state.total[1] / max(state.total[0], 1.0)
    since = platform.friend_since(u, a)
    day = ts // DAY_S
    dwell = COUNTS.index("dwell")
    X = pd.DataFrame(
        {
            "c_topic": hash_values("topic", topic),
            "c_media": hash_values("media", posts["media"].to_numpy()[p]),
            "c_hashtag": hash_values("hashtag", posts["hashtag"].take(p).to_numpy()),
            "d_post_age_h": (ts - posts["created_ts"].to_numpy()[p]) / 3600.0,
            "d_flagged": posts["flagged"].to_numpy(np.float64)[p],
            "d_post_impressions": np.log1p(pc[:, 0]),
            "d_post_ctr": state.rate(pc, "click"),
            "d_post_like_rate": state.rate(pc, "like"),
            "d_post_reactions": np.log1p(pc[:, 2:5].sum(axis=1)),
            "d_post_hide_rate": state.rate(pc, "hide"),
            "d_is_page": platform.authors["is_page"].to_numpy(np.float64)[a],
            "d_is_group": platform.authors["is_group"].to_numpy(np.float64)[a],
            "d_author_ctr": state.rate(ac, "click"),
            "d_author_like_rate": state.rate(ac, "like"),
            "d_author_comment_rate": state.rate(ac, "comment"),
            "d_author_share_rate": state.rate(ac, "share"),
            "d_author_hide_rate": state.rate(ac, "hide"),
            "d_author_block_rate": state.rate(ac, "block"),
            "d_author_dwell": state.rate(ac, "dwell"),
            "c_age_bucket": hash_values("age_bucket", users["age_bucket"].to_numpy()[u]),
            "c_country": hash_values("country", users["country"].to_numpy()[u]),
            "d_user_days": (day - users["signup_day"].to_numpy()[u]).astype(np.float64),
            "d_user_impressions": np.log1p(uc[:, 0]),
            "d_user_ctr": state.rate(uc, "click"),
            "d_user_like_rate": state.rate(uc, "like"),
            "d_user_hide_rate": state.rate(uc, "hide"),
            "d_user_dwell": state.rate(uc, "dwell"),
            "d_user_topic_ctr": (ut[:, 1] + PRIOR * topic_prior) / (ut[:, 0] + PRIOR),
            "d_is_friend": np.isfinite(since).astype(np.float64),
            "d_friend_days": np.where(np.isfinite(since), day - np.nan_to_num(since), -1.0),
            "d_follows": platform.follows_page(u, a).astype(np.float64),
            "d_pair_impressions": np.log1p(pair[:, 0]),
            "d_pair_ctr": state.rate(pair, "click"),
            "d_pair_like_rate": state.rate(pair, "like"),
            "d_pair_comment_rate": state.rate(pair, "comment"),
            "d_pair_dwell": (pair[:, dwell] + PRIOR * state.total[dwell] / max(state.total[0], 1))
            / (pair[:, 0] + PRIOR),
        }
    )
    X[POSITION] = 0.0 if position is None else np.asarray(position, np.float64)
    return X


def labels(impressions: pd.DataFrame) -> np.ndarray:
    """``(n, 7)``: the six reactions (0/1) and dwell seconds, in :data:`HEADS` order."""
    return np.column_stack([impressions[h].to_numpy(np.float64) for h in HEADS])


@dataclass
class TrainingData:
    """Logged impressions with point-in-time features and every head's label."""

    X: pd.DataFrame
    Y: np.ndarray  # (n, 7) in HEADS order
    day: np.ndarray
    session: np.ndarray
    user: np.ndarray
    new_user: np.ndarray  # signed up less than a week before the impression
    train_days: tuple[int, ...]
    valid_days: tuple[int, ...]
    test_days: tuple[int, ...]

    def rows(self, days: tuple[int, ...]) -> np.ndarray:
        return np.isin(self.day, days)

    def metrics(self) -> dict[str, Any]:
        return {
            "features": {
                "rows": len(self.Y),
                "rates": {h: float(self.Y[:, i].mean()) for i, h in enumerate(HEADS)},
                "columns": list(FEATURES),
                "groups": {g: list(c) for g, c in FEATURE_GROUPS.items()},
                "train_days": list(self.train_days),
                "valid_days": list(self.valid_days),
                "test_days": list(self.test_days),
            }
        }


def impression_features(platform: Platform, impressions: pd.DataFrame) -> pd.DataFrame:
    """Features of logged impressions, each day from the state at the start of that day."""
    parts = []
    for d in np.unique(impressions["day"].to_numpy(np.int64)):
        rows = impressions[impressions["day"].to_numpy() == d]
        state = FeedState.build(impressions, int(d) * DAY_S, platform)
        X = pair_frame(
            platform,
            state,
            rows["user_id"].to_numpy(),
            rows["post_id"].to_numpy(),
            rows["ts"].to_numpy(),
            position=rows["position"].to_numpy(),
        )
        X.index = rows.index
        parts.append(X)
    return pd.concat(parts).loc[impressions.index].reset_index(drop=True)
