"""The simulated social network (book ch. 10): users, friends, pages, posts and their reactions.

Users have an age bucket, a country, a sign-up day, hidden interests over ten topics, a hidden
taste per media type and an activity level. Friendships carry a start day and a hidden
**closeness** (longer friendships and shared interests are closer); users also follow a few pages.
Every day users and pages post: an author, a topic (the author's), a media type (text, image,
video), a hashtag, a creation time, a hidden quality and a hidden **clickbait** level; another
system flags some posts (mostly clickbait) as misleading, and a few authors are toxic.

Each day some users open the feed. Their candidates are the unseen posts of their friends, followed
pages and groups created in the last ``lookback_h`` hours (blocked authors excluded); the logging
policy (recency with noise) ranks them and the top ``list_len`` are shown. A shown post is seen
with probability ``(position + 1)^-0.5`` (position bias); a seen post draws each reaction from its
own true probability, ``sigmoid(logit_r)``, with ``z`` the post's relevance to the user

    z = 0.9 (interest - 1) + 2 closeness + 0.6 quality + media taste + 0.3 freshness
    click   -2.0 + z + 1.2 clickbait       like  -3.0 + z + closeness
    comment -5.0 + 0.7 z + 2.5 closeness   share -5.2 + 0.8 z + 0.8 quality + 0.5 clickbait
    hide    -4.5 - 0.8 z + clickbait + 1.2 flagged
    block   -6.5 - 0.5 z + 3 toxic

and dwell seconds from a log-normal whose mean grows with ``z``, quality and video, and shrinks
with clickbait. Clickbait draws clicks and shares but costs dwell time and satisfaction.

Now and then a user answers a satisfaction survey (1-5) about the session: the world derives it
from the **value** of what they saw, ``0.8 (interest - 1) + closeness + 0.8 quality - 1.5
clickbait - 1.5 flagged - 2 toxic``, so engagement and satisfaction can disagree, as the
chapter warns. ``true_heads`` (the expected reactions at the top slot) is the oracle.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

from mlsd.rng import rng
from mlsd.systems.news_feed.features_retrieval import pair_keys, retrieve
from mlsd.systems.news_feed.world_config import (
    BINARY_HEADS,
    DAY_S,
    DEFAULT_WEIGHTS,
    TOPICS,
    EngagementWeights,
)
from mlsd.systems.news_feed.world_entities import FeedNetwork

log = logging.getLogger(__name__)

N_TOPICS = len(TOPICS)
DWELL_BASE_S = np.array([8.0, 6.0, 20.0])  # text, image, video
DWELL_SIGMA = 0.6
#: A ranking policy: (candidates with session/user_id/post_id/ts, impressions so far) -> scores.
Policy = Callable[[pd.DataFrame, pd.DataFrame], np.ndarray]


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return np.asarray(1.0 / (1.0 + np.exp(-x)))


def position_bias(positions: np.ndarray) -> np.ndarray:
    """The chance a post at this slot is seen at all (scrolled to), relative to the top."""
    return np.asarray((np.asarray(positions, np.float64) + 1.0) ** -0.5)


@dataclass
class Log:
    """What the platform logged: feed sessions (with survey answers) and impressions."""

    sessions: pd.DataFrame  # session_id, user_id, ts, day, candidates, survey (NaN: none)
    impressions: pd.DataFrame  # session_id, user_id, post_id, author_id, ts, day, position,
    # the six reactions and dwell; true_score and true_value are the world's (never features)


class NewsFeedWorld(FeedNetwork):
    """A deterministic (by seed) social network, its posts and its users' reactions."""

    # ---- behaviour -----------------------------------------------------------------------
    def _relevance(
        self, u: np.ndarray, p: np.ndarray, ts: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        posts = self.posts
        a = posts["author_id"].to_numpy()[p]
        close = np.asarray(self.closeness[u, a]).ravel() if len(u) else np.zeros(0)
        age_h = np.maximum(ts - posts["created_ts"].to_numpy()[p], 0) / 3600.0
        z = (
            0.9 * (self.interests[u, posts["topic"].to_numpy()[p]] - 1.0)
            + 2.0 * close
            + 0.6 * self.post_quality[p]
            + self.media_taste[u, posts["media"].to_numpy()[p]]
            + 0.3 * np.exp(-age_h / 24.0)
        )
        return z, close

    def true_heads(self, u: ArrayLike, p: ArrayLike, ts: ArrayLike) -> np.ndarray:
        """The oracle: ``(n, 7)``, each reaction's probability and the expected dwell seconds
        of user ``u`` for post ``p`` at ``ts``, given the post is seen (the top slot)."""
        u, p, ts = (np.asarray(x, np.int64) for x in (u, p, ts))
        z, close = self._relevance(u, p, ts)
        cb, q = self.post_clickbait[p], self.post_quality[p]
        flagged = self.posts["flagged"].to_numpy()[p]
        toxic = self.author_toxic[self.posts["author_id"].to_numpy()[p]]
        logits = np.column_stack(
            [
                -2.0 + z + 1.2 * cb,
                -3.0 + z + close,
                -5.0 + 0.7 * z + 2.5 * close,
                -5.2 + 0.8 * z + 0.8 * q + 0.5 * cb,
                -4.5 - 0.8 * z + cb + 1.2 * flagged,
                -6.5 - 0.5 * z + 3.0 * toxic,
            ]
        )
        mu = self._dwell_mu(z, p)
        return np.column_stack([_sigmoid(logits), np.exp(mu + DWELL_SIGMA**2 / 2)])

    def _dwell_mu(self, z: np.ndarray, p: np.ndarray) -> np.ndarray:
        media = self.posts["media"].to_numpy()[p]
        return np.asarray(
            np.log(DWELL_BASE_S[media])
            + 0.35 * z
            + 0.3 * self.post_quality[p]
            - 0.5 * self.post_clickbait[p]
        )

    def true_value(self, u: ArrayLike, p: ArrayLike, ts: ArrayLike) -> np.ndarray:
        """What a seen post is worth to the user (the survey's source), not what it engages."""
        u, p, ts = (np.asarray(x, np.int64) for x in (u, p, ts))
        _, close = self._relevance(u, p, ts)
        posts = self.posts
        return np.asarray(
            0.8 * (self.interests[u, posts["topic"].to_numpy()[p]] - 1.0)
            + close
            + 0.8 * self.post_quality[p]
            - 1.5 * self.post_clickbait[p]
            - 1.5 * posts["flagged"].to_numpy()[p]
            - 2.0 * self.author_toxic[posts["author_id"].to_numpy()[p]]
        )

    def true_score(
        self,
        u: ArrayLike,
        p: ArrayLike,
        ts: ArrayLike,
        weights: EngagementWeights = DEFAULT_WEIGHTS,
    ) -> np.ndarray:
        """The expected weighted engagement score at the top slot (what the oracle ranks by)."""
        return weights.score(self.true_heads(u, p, ts))

    def draw(
        self,
        r: np.random.Generator,
        u: np.ndarray,
        p: np.ndarray,
        ts: np.ndarray,
        positions: np.ndarray | None,
    ) -> pd.DataFrame:
        """Reactions drawn from the true probabilities (``positions`` None: as if at the top)."""
        heads = self.true_heads(u, p, ts)
        n = len(u)
        seen = np.ones(n, bool) if positions is None else r.random(n) < position_bias(positions)
        out = {
            h: (seen & (r.random(n) < heads[:, i])).astype(np.int8)
            for i, h in enumerate(BINARY_HEADS)
        }
        z, _ = self._relevance(u, p, ts)
        dwell = np.exp(self._dwell_mu(z, p) + DWELL_SIGMA * r.normal(size=n))
        out["dwell"] = np.where(seen, np.round(dwell, 1), 0.0)
        frame = pd.DataFrame(out)
        frame["seen"] = seen
        return frame

    def sessions(self, day: int) -> pd.DataFrame:
        """The users who open the feed on ``day`` and when."""
        cfg = self.config
        r = rng(self.seed, f"news-feed/world/sessions/{day}")
        joined = self.users["signup_day"].to_numpy() <= day
        visit = joined & (r.random(cfg.n_users) < np.clip(cfg.visit_rate * self.activity, 0, 0.95))
        users = np.flatnonzero(visit).astype(np.int64)
        ts = day * DAY_S + r.integers(7 * 3600, 23 * 3600, len(users))
        return pd.DataFrame({"user_id": users, "ts": ts.astype(np.int64)})

    def candidates(
        self, sessions: pd.DataFrame, seen: np.ndarray, blocked: np.ndarray
    ) -> pd.DataFrame:
        """Retrieval (:func:`~.features_retrieval.retrieve`) for each session."""
        return retrieve(
            self.connections,
            self.posts["author_id"].to_numpy(),
            self.posts["created_ts"].to_numpy(),
            sessions["user_id"].to_numpy(),
            sessions["ts"].to_numpy(),
            self.config.lookback_h * 3600,
            seen,
            blocked,
        )

    def simulate(
        self,
        days: range,
        policy: Policy,
        purpose: str,
        history: pd.DataFrame | None = None,
        progress: Callable[[str, float, float], None] | None = None,
    ) -> Log:
        """Run ``days``: sessions, retrieval, the policy's ranking, reactions and surveys.
        ``history``: impressions logged before (what is seen or blocked, and the policy's
        input)."""
        cfg = self.config
        n_posts = len(self.posts)
        hist = history if history is not None else _empty_impressions()
        seen = np.sort(pair_keys(hist["user_id"], hist["post_id"], n_posts))
        blocked_rows = hist[hist["block"] == 1]
        blocked = np.sort(
            pair_keys(blocked_rows["user_id"], blocked_rows["author_id"], cfg.n_authors)
        )
        sessions_out, shown_out = [], []
        n_sessions = int(hist["session_id"].max()) + 1 if len(hist) else 0
        for i, day in enumerate(days):
            r = rng(self.seed, f"news-feed/{purpose}/day/{day}")
            sess = self.sessions(day)
            sess["session_id"] = np.arange(len(sess), dtype=np.int64) + n_sessions
            sess["day"] = day
            n_sessions += len(sess)
            cand = self.candidates(sess, seen, blocked)
            sess["candidates"] = np.bincount(cand["session"], minlength=len(sess)).astype(np.int64)
            score = np.asarray(policy(cand, hist), np.float64) if len(cand) else np.zeros(0)
            cand = cand.assign(score=score).sort_values(
                ["session", "score"], ascending=[True, False], kind="stable"
            )
            cand["position"] = cand.groupby("session").cumcount()
            shown = cand[cand["position"] < cfg.list_len].reset_index(drop=True)
            u, p, ts = (shown[c].to_numpy(np.int64) for c in ("user_id", "post_id", "ts"))
            drawn = self.draw(r, u, p, ts, shown["position"].to_numpy())
            value = self.true_value(u, p, ts)
            shown = shown.assign(
                session_id=sess["session_id"].to_numpy()[shown["session"].to_numpy()],
                author_id=self.posts["author_id"].to_numpy()[p],
                day=day,
                **{c: drawn[c].to_numpy() for c in (*BINARY_HEADS, "dwell")},
                true_score=self.true_score(u, p, ts),
                true_value=value,
            ).drop(columns=["session", "score"])
            sess["survey"] = self._surveys(r, shown, drawn["seen"].to_numpy(), value, sess)
            shown_out.append(shown)
            sessions_out.append(sess)
            hist = pd.concat([hist, shown], ignore_index=True)
            seen = np.union1d(seen, pair_keys(u, p, n_posts))
            new_blocks = shown[shown["block"] == 1]
            blocked = np.union1d(
                blocked, pair_keys(new_blocks["user_id"], new_blocks["author_id"], cfg.n_authors)
            )
            if progress is not None:
                progress(f"simulating {purpose}", i + 1, len(days))
        return Log(
            sessions=pd.concat(sessions_out, ignore_index=True),
            impressions=pd.concat(shown_out, ignore_index=True),
        )

    def _surveys(
        self,
        r: np.random.Generator,
        shown: pd.DataFrame,
        seen: np.ndarray,
        value: np.ndarray,
        sess: pd.DataFrame,
    ) -> np.ndarray:
        """A 1-5 answer for a ``survey_rate`` share of the sessions (NaN for the others): the
        mean value of the posts seen, plus noise."""
        idx = (
            shown["session_id"].to_numpy() - int(sess["session_id"].iloc[0])
            if len(shown)
            else np.zeros(0, np.int64)
        )
        total = np.bincount(idx[seen], weights=value[seen], minlength=len(sess))
        count = np.bincount(idx[seen], minlength=len(sess))
        mean = np.where(count > 0, total / np.maximum(count, 1), -0.5)
        answer = np.clip(np.round(3.0 + 1.2 * mean + r.normal(0, 0.7, len(sess))), 1, 5)
        asked = r.random(len(sess)) < self.config.survey_rate
        return np.where(asked, answer, np.nan)

    def logging_policy(self) -> Policy:
        """The platform's old ranking: newest first, with noise (the log's selection)."""
        r = rng(self.seed, "news-feed/world/logging-policy")
        created = self.posts["created_ts"].to_numpy()

        def score(cand: pd.DataFrame, history: pd.DataFrame) -> np.ndarray:
            age_h = (cand["ts"].to_numpy() - created[cand["post_id"].to_numpy()]) / 3600.0
            return np.asarray(-age_h / 12.0 + r.gumbel(0, 1, len(cand)))

        return score

    def oracle_policy(self, weights: EngagementWeights = DEFAULT_WEIGHTS) -> Policy:
        def score(cand: pd.DataFrame, history: pd.DataFrame) -> np.ndarray:
            return self.true_score(cand["user_id"], cand["post_id"], cand["ts"], weights)

        return score

    def log(self, progress: Callable[[str, float, float], None] | None = None) -> Log:
        """The logged days, under the logging policy."""
        return self.simulate(
            range(self.config.n_days), self.logging_policy(), "log", progress=progress
        )

    def platform_tables(self) -> dict[str, pd.DataFrame]:
        """What the platform knows (no interests, closeness, quality, clickbait or toxicity)."""
        return {
            "users": self.users,
            "authors": self.authors,
            "posts": self.posts,
            "friends": self.friends.drop(columns=["closeness"]),
            "follows": self.follows,
        }


def _empty_impressions() -> pd.DataFrame:
    cols = ("session_id", "user_id", "post_id", "author_id", "ts", "day", "position", *BINARY_HEADS)
    frame = pd.DataFrame({c: pd.Series(dtype=np.int64) for c in cols})
    frame["dwell"] = pd.Series(dtype=np.float64)
    return frame
