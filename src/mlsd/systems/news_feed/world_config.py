"""How big the news-feed world is, the reactions it draws, and the engagement weights.

The chapter's reactions are the heads of the multi-task model: six binary ones (click, like,
comment, share, hide, block) and dwell time (seconds, a regression head). The ranking score is a
weighted sum of the predicted reactions (:class:`EngagementWeights`): positive weights for the
reactions the platform wants, negative ones for hide and block.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np

from mlsd.world import Scale

DAY_S = 86400
BINARY_HEADS = ("click", "like", "comment", "share", "hide", "block")
DWELL = "dwell"
HEADS = (*BINARY_HEADS, DWELL)
RARE_HEADS = ("comment", "share", "block")
POSITIVE_ENGAGEMENT = ("click", "like", "comment", "share")  # the single classifier's label
TOPICS = (
    "politics",
    "sports",
    "tech",
    "music",
    "food",
    "travel",
    "science",
    "fashion",
    "gaming",
    "pets",
)
MEDIA = ("text", "image", "video")
AGE_BUCKETS = ("18-24", "25-34", "35-44", "45-54", "55+")
TOPIC_TAGS = {t: (f"#{t}", f"#{t}news", f"#{t}life", f"#best{t}") for t in TOPICS}


@dataclass(frozen=True)
class EngagementWeights:
    """The weighted engagement score: ``sum_r w_r P(r) + dwell_per_s * E[dwell seconds]``."""

    click: float = 1.0
    like: float = 3.0
    comment: float = 6.0
    share: float = 8.0
    hide: float = -15.0
    block: float = -60.0
    dwell_per_s: float = 0.1

    def vector(self) -> np.ndarray:
        """The weights in :data:`HEADS` order (dwell per second last)."""
        return np.array([getattr(self, h) for h in BINARY_HEADS] + [self.dwell_per_s])

    def to_dict(self) -> dict[str, float]:
        return asdict(self)

    def score(self, heads: np.ndarray) -> np.ndarray:
        """``heads``: ``(n, 7)`` probabilities and expected dwell seconds -> ``(n,)`` scores."""
        return np.asarray(np.asarray(heads, np.float64) @ self.vector())


DEFAULT_WEIGHTS = EngagementWeights()
#: The weight settings the online weights experiment compares (name -> weights).
WEIGHT_SETTINGS: dict[str, EngagementWeights] = {
    "default": DEFAULT_WEIGHTS,
    "clicks only": EngagementWeights(1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0),
    "no negatives": EngagementWeights(hide=0.0, block=0.0),
    "dwell heavy": EngagementWeights(dwell_per_s=0.4),
}


@dataclass(frozen=True)
class FeedWorldConfig:
    n_users: int
    n_pages: int
    n_groups: int
    n_days: int  # logged days
    test_days: int  # the last logged days: offline evaluation
    valid_days: int  # the days before them: validation (choices are made here)
    ab_days: int  # days simulated after the log: the A/B test and the weights experiment
    list_len: int  # posts shown per session
    eval_sessions: int  # test sessions whose every candidate the world labels
    friends_per_user: int = 20
    follows_per_user: int = 8
    groups_per_user: int = 3
    user_post_rate: float = 0.3  # posts per user per day (times activity)
    page_posts_per_day: float = 3.0
    group_posts_per_day: float = 4.0
    visit_rate: float = 0.6  # a user's chance to open the feed on a day (times activity)
    lookback_h: int = 48  # retrieval: unseen posts created this recently
    survey_rate: float = 0.15  # a session's chance of a satisfaction survey
    new_user_share: float = 0.08  # users who sign up during the logged days

    @classmethod
    def for_scale(cls, scale: Scale | str) -> FeedWorldConfig:
        s = Scale(scale)
        if s == Scale.TINY:
            return cls(300, 12, 6, 8, 2, 1, 2, 10, 200)
        if s == Scale.SMALL:
            return cls(3000, 60, 30, 14, 3, 2, 4, 10, 1500)
        raise ValueError(f"news-feed has no {s.value} world (tiny and small run)")

    def with_(self, **changes: Any) -> FeedWorldConfig:
        return replace(self, **changes)

    @property
    def n_authors(self) -> int:
        return self.n_users + self.n_pages + self.n_groups

    @property
    def total_days(self) -> int:
        return self.n_days + self.ab_days

    @property
    def train_days(self) -> tuple[int, ...]:
        """Day 0 has no history yet (every count is empty): it is the warm-up, not trained on."""
        return tuple(range(1, self.n_days - self.test_days - self.valid_days))

    @property
    def validation_days(self) -> tuple[int, ...]:
        end = self.n_days - self.test_days
        return tuple(range(end - self.valid_days, end))

    @property
    def eval_days(self) -> tuple[int, ...]:
        return tuple(range(self.n_days - self.test_days, self.n_days))
