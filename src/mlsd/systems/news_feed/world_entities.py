"""The news-feed world's entities: users, pages, friendships, follows and posts.

Users have an age bucket, a country, a sign-up day (a few join during the log), hidden interests
over ten topics, a hidden taste per media type and an activity level. Friendships carry a start
day and a hidden **closeness** (longer friendships and shared interests are closer); users follow
a few pages and join a few groups, chosen by interest (a group's posts, written by its members,
show the group as their author). Every day users and pages post: an author, a topic (the author's),
a media type, a hashtag, a creation time, a hidden quality and a hidden clickbait level; another
system flags some posts (mostly clickbait), and a few authors are toxic. Behaviour is in
:mod:`.world`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import sparse

from mlsd.rng import rng
from mlsd.systems.news_feed.features_retrieval import connection_matrix
from mlsd.systems.news_feed.world_config import DAY_S, MEDIA, TOPIC_TAGS, TOPICS, FeedWorldConfig
from mlsd.world import Scale

N_TOPICS = len(TOPICS)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return np.asarray(1.0 / (1.0 + np.exp(-x)))


class FeedNetwork:
    """The network's entities, deterministic by seed: users (with hidden interests, media
    taste and activity), pages, groups, authors' hidden quality, clickbait and toxicity,
    friendships with a hidden closeness, page follows and group memberships, and every day's
    posts."""

    def __init__(self, scale: Scale | str, seed: int, config: FeedWorldConfig | None = None):
        self.scale = Scale(scale)
        self.seed = seed
        self.config = cfg = config or FeedWorldConfig.for_scale(self.scale)
        r = rng(seed, "news-feed/world/entities")
        n, n_p = cfg.n_users, cfg.n_pages
        new = r.random(n) < cfg.new_user_share
        signup = np.where(new, r.integers(1, max(cfg.n_days, 2), n), -r.integers(30, 2000, n))
        self.interests = r.dirichlet(np.full(N_TOPICS, 0.4), n) * N_TOPICS  # mean 1
        self.media_taste = r.normal(0.0, 0.5, (n, len(MEDIA)))
        self.activity = np.clip(r.gamma(3.0, 1 / 3, n), 0.1, 2.5)
        self.users = pd.DataFrame(
            {
                "user_id": np.arange(n, dtype=np.int64),
                "age_bucket": r.integers(0, 5, n).astype(np.int64),
                "country": r.integers(0, 4, n).astype(np.int64),
                "signup_day": signup.astype(np.int64),
            }
        )
        n_g = cfg.n_groups
        # pages, then groups: authors n .. n + n_p - 1 and n + n_p .. n_authors - 1
        page_topic = r.integers(0, N_TOPICS, n_p + n_g)
        kind = np.r_[np.zeros(n), np.ones(n_p), np.full(n_g, 2)].astype(np.int64)
        self.author_quality = np.r_[
            r.normal(0.0, 0.4, n), r.normal(0.2, 0.6, n_p), r.normal(0.0, 0.3, n_g)
        ]
        self.author_clickbait = np.r_[
            np.clip(r.normal(0.0, 0.3, n), 0, None),
            np.clip(r.normal(0.4, 0.6, n_p), 0, None),
            np.clip(r.normal(0.1, 0.3, n_g), 0, None),
        ]
        self.author_toxic = (r.random(cfg.n_authors) < 0.03).astype(np.float64)
        self.authors = pd.DataFrame(
            {
                "author_id": np.arange(cfg.n_authors, dtype=np.int64),
                "is_page": (kind == 1).astype(np.int64),
                "is_group": (kind == 2).astype(np.int64),
                "topic": np.r_[np.full(n, -1), page_topic].astype(np.int64),
            }
        )
        self.friends = self._friends(r, signup)
        self.follows = self._follows(r, page_topic, signup)
        self.closeness = self._closeness_matrix()
        self.connections = connection_matrix(self.friends, self.follows, n, cfg.n_authors)
        self.posts, self.post_quality, self.post_clickbait = self._posts(
            rng(seed, "news-feed/world/posts"), page_topic
        )

    # ---- entities ------------------------------------------------------------------------
    def _friends(self, r: np.random.Generator, signup: np.ndarray) -> pd.DataFrame:
        n, k = self.config.n_users, self.config.friends_per_user
        m = n * k // 2
        a, b = r.integers(0, n, m), r.integers(0, n, m)
        # half of the friendships are between users with a shared top interest
        top = np.argmax(self.interests, axis=1)
        by_top = [np.flatnonzero(top == t) for t in range(N_TOPICS)]
        similar = r.random(m) < 0.5
        for i in np.flatnonzero(similar):
            pool = by_top[int(top[a[i]])]
            b[i] = pool[int(r.integers(0, len(pool)))]
        keep = a != b
        lo, hi = np.minimum(a, b)[keep], np.maximum(a, b)[keep]
        edges = pd.DataFrame({"user_id": lo, "friend_id": hi}).drop_duplicates()
        lo, hi = edges["user_id"].to_numpy(), edges["friend_id"].to_numpy()
        start = np.maximum(signup[lo], signup[hi])
        since = np.maximum(start, -r.integers(1, 2500, len(lo)))
        length = np.maximum(-since, 1)
        shared = (self.interests[lo] * self.interests[hi]).sum(axis=1) / N_TOPICS
        close = _sigmoid(
            -2.2 + 0.45 * np.log1p(length / 30.0) + 0.5 * shared + r.normal(0, 1, len(lo))
        )
        return pd.DataFrame(
            {
                "user_id": lo.astype(np.int64),
                "friend_id": hi.astype(np.int64),
                "since_day": since.astype(np.int64),
                "closeness": close,  # hidden: the world's, dropped before the platform sees it
            }
        ).reset_index(drop=True)

    def _follows(
        self, r: np.random.Generator, page_topic: np.ndarray, signup: np.ndarray
    ) -> pd.DataFrame:
        cfg = self.config
        rows_u, rows_p = [], []
        pages, groups = np.arange(cfg.n_pages), cfg.n_pages + np.arange(cfg.n_groups)
        for u in range(cfg.n_users):
            for pool, most in ((pages, cfg.follows_per_user), (groups, cfg.groups_per_user)):
                if len(pool) == 0:
                    continue
                w = self.interests[u, page_topic[pool]] + 0.05
                k = min(int(r.integers(1, most + 1)), len(pool))
                for page in r.choice(pool, size=k, replace=False, p=w / w.sum()):
                    rows_u.append(u)
                    rows_p.append(cfg.n_users + int(page))
        users = np.asarray(rows_u, np.int64)
        since = np.maximum(signup[users], -r.integers(1, 1500, len(users)))
        return pd.DataFrame(
            {"user_id": users, "author_id": np.asarray(rows_p, np.int64), "since_day": since}
        )

    def _closeness_matrix(self) -> sparse.csr_matrix:
        """Users x authors: the hidden closeness of every connection (0.1 for a followed page,
        0.2 for a group's community)."""
        n, na = self.config.n_users, self.config.n_authors
        f = self.friends
        u = np.r_[f["user_id"], f["friend_id"], self.follows["user_id"]]
        a = np.r_[f["friend_id"], f["user_id"], self.follows["author_id"]]
        group = self.authors["is_group"].to_numpy()[self.follows["author_id"].to_numpy()] == 1
        c = np.r_[f["closeness"], f["closeness"], np.where(group, 0.2, 0.1)]
        return sparse.csr_matrix((c, (u, a)), shape=(n, na))

    def _posts(
        self, r: np.random.Generator, page_topic: np.ndarray
    ) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
        cfg = self.config
        n = cfg.n_users
        start = -int(np.ceil(cfg.lookback_h / 24))  # posts from before the log, for day 0
        parts = []
        signup = self.users["signup_day"].to_numpy()
        for day in range(start, cfg.total_days):
            k_users = r.poisson(cfg.user_post_rate * self.activity)
            k_users[signup > day] = 0
            users = np.repeat(np.arange(n), k_users)
            pages = np.repeat(
                n + np.arange(cfg.n_pages), r.poisson(cfg.page_posts_per_day, cfg.n_pages)
            )
            groups = np.repeat(  # members' posts to a group: the group is the author shown
                n + cfg.n_pages + np.arange(cfg.n_groups),
                r.poisson(cfg.group_posts_per_day, cfg.n_groups),
            )
            authors = np.r_[users, pages, groups]
            parts.append((day, authors))
        author = np.concatenate([a for _, a in parts]).astype(np.int64)
        days = np.concatenate([np.full(len(a), d) for d, a in parts]).astype(np.int64)
        m = len(author)
        user_topic = np.array(
            [r.choice(N_TOPICS, p=self.interests[a] / N_TOPICS) if a < n else 0 for a in author]
        )
        topic = np.where(author < n, user_topic, page_topic[np.clip(author - n, 0, None)])
        media = r.choice(len(MEDIA), m, p=[0.4, 0.4, 0.2])
        quality = self.author_quality[author] + r.normal(0.0, 0.5, m)
        clickbait = np.clip(self.author_clickbait[author] + r.normal(0.0, 0.3, m), 0, None)
        flagged = r.random(m) < _sigmoid(-4.0 + 2.5 * clickbait)
        created = days * DAY_S + r.integers(0, DAY_S, m)
        order = np.argsort(created, kind="stable")
        tags = np.array([TOPIC_TAGS[TOPICS[t]][int(r.integers(0, 4))] for t in topic])
        posts = pd.DataFrame(
            {
                "post_id": np.arange(m, dtype=np.int64),
                "author_id": author[order],
                "topic": topic[order].astype(np.int64),
                "media": media[order].astype(np.int64),
                "hashtag": tags[order],
                "created_ts": created[order].astype(np.int64),
                "flagged": flagged[order].astype(np.int64),
            }
        )
        return posts, quality[order], clickbait[order]
