"""How big the event-rec world is, and the vocabulary its event descriptions are drawn from."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from mlsd.world import Scale

DAY_S = 86400
WORDS_PER_CATEGORY = 6
GENERIC_WORDS = (
    "join",
    "weekly",
    "friendly",
    "open",
    "special",
    "night",
    "edition",
    "local",
    "free",
    "guided",
    "beginners",
    "live",
    "session",
    "community",
    "pop-up",
    "evening",
)
CATEGORY_WORDS = {
    "music": ("concert", "band", "jazz", "dj", "acoustic", "choir"),
    "sports": ("run", "football", "yoga", "climbing", "match", "cycling"),
    "tech": ("python", "startup", "ai", "hackathon", "cloud", "talk"),
    "food": ("tasting", "wine", "cooking", "street-food", "brunch", "bakery"),
    "arts": ("gallery", "theatre", "painting", "poetry", "film", "museum"),
    "outdoors": ("hike", "kayak", "park", "garden", "birdwatching", "picnic"),
    "family": ("kids", "puppet", "zoo", "crafts", "storytime", "playground"),
    "nightlife": ("party", "club", "karaoke", "bar", "comedy", "dance"),
}
YOUNG_CATEGORIES = (0, 7)  # music, nightlife
OLDER_CATEGORIES = (3, 4, 6)  # food, arts, family
SOCIAL_CATEGORIES = (0, 1, 7)  # music, sports, nightlife: friends matter more


@dataclass(frozen=True)
class EventWorldConfig:
    n_users: int
    grid: int  # neighbourhoods per side
    city_km: float
    n_hosts: int
    n_days: int  # logged days
    events_per_day: int
    sessions_per_day: int
    list_len: int
    test_days: int  # the last logged days, for offline evaluation
    ab_days: int  # days simulated after the log for the A/B test
    eval_sessions: int  # test sessions whose every candidate the world labels
    val_days: int = 2  # the logged days before the test days: every choice is made on them
    friends_per_user: int = 8
    follows_per_user: int = 3

    @classmethod
    def for_scale(cls, scale: Scale | str) -> EventWorldConfig:
        s = Scale(scale)
        if s == Scale.TINY:
            return cls(300, 3, 10.0, 30, 10, 24, 150, 10, 3, 3, 300, val_days=2)
        if s == Scale.SMALL:
            return cls(4000, 5, 20.0, 200, 21, 90, 1600, 10, 4, 4, 3000, val_days=3)
        if s == Scale.MEDIUM:
            return cls(12000, 6, 24.0, 500, 28, 160, 4000, 10, 4, 4, 2000, val_days=3)
        raise ValueError(f"event-rec has no {s.value} world (tiny, small and medium run)")

    def with_(self, **changes: Any) -> EventWorldConfig:
        return replace(self, **changes)

    @property
    def train_days(self) -> tuple[int, ...]:
        return tuple(range(self.n_days - self.test_days - self.val_days))

    @property
    def validation_days(self) -> tuple[int, ...]:
        start = self.n_days - self.test_days - self.val_days
        return tuple(range(start, self.n_days - self.test_days))

    @property
    def testing_days(self) -> tuple[int, ...]:
        return tuple(range(self.n_days - self.test_days, self.n_days))

    @property
    def total_days(self) -> int:
        return self.n_days + self.ab_days

    @property
    def n_slots(self) -> int:  # hours covered by every event (start up to 9 days after the end)
        return (self.total_days + 11) * 24
