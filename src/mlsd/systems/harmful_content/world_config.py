"""The harmful-content world's sizes and vocabulary.

Posts pick their text from a pool of messages (benign chatter, harmful messages of each class,
and counter-speech that quotes harm to condemn it); messages repeat the way copied text does on
a platform, so the pool, not the number of posts, bounds how many texts are embedded. Harmful
messages carry explicit words, coded words that are harmless on their own and harmful next to a
context word, and obfuscations (leetspeak, misspellings, spacing). Late in the world a new harm
vocabulary appears (the drift that monitoring must catch).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Self

from mlsd.systems.harmful_content import CLASSES
from mlsd.world import Scale

# Share of posts whose content carries a signal of each class (about half of them are
# harmful, so the harmful share of posts is about 1%, unequal across classes).
SIGNAL_RATE = {
    "hate": 0.0045,
    "violence": 0.0040,
    "sexual": 0.0030,
    "spam": 0.0070,
    "self_harm": 0.0020,
}

BENIGN_TOPICS = {
    "food": "pizza pasta recipe dinner baked bread coffee brunch tacos salad soup dessert",
    "sports": "match goal team league coach season striker marathon training win score",
    "travel": "beach flight hotel mountains trip museum train passport sunset island city",
    "music": "concert album guitar playlist singer band festival drums song vinyl lyrics",
    "pets": "puppy kitten dog cat walk vet adopted leash treats fluffy shelter",
    "tech": "laptop update phone app coding bug release keyboard battery server cloud",
    "family": "birthday wedding kids grandma holiday picnic graduation garden weekend home",
    "weather": "rain sunny storm snow forecast windy cloudy heatwave umbrella spring",
}
FILLER = "today just really so the a my this our with and love great finally anyone".split()  # noqa: SIM905

# Explicit words: what a keyword blocklist knows.
EXPLICIT = {
    "hate": ["vermin", "subhuman", "inferior race", "filthy outsiders", "go back home"],
    "violence": ["kill", "shoot", "stab", "bomb", "beat them up"],
    "sexual": ["nude pics", "xxx", "explicit video", "naked", "nsfw"],
    "spam": ["free money", "click here", "crypto giveaway", "limited offer", "earn cash fast"],
    "self_harm": ["end it all", "cut myself", "no reason to live", "want to disappear", "overdose"],
}
# Coded words: harmless alone (benign posts use them too), harmful next to the class's context.
CODED = {
    "hate": ["cockroaches", "animals", "those people"],
    "violence": ["tomorrow at noon", "bring the tools", "make them pay"],
    "sexual": ["spicy content", "private pics", "after dark"],
    "spam": ["link in bio", "dm me", "guaranteed returns"],
    "self_harm": ["so tired", "goodbye everyone", "last post"],
}
CONTEXT = {
    "hate": ["immigrants", "that religion", "their kind"],
    "violence": ["at the school", "the office", "his house"],
    "sexual": ["for sale", "subscribe", "minors"],
    "spam": ["wallet", "investment", "bitcoin"],
    "self_harm": ["pills", "bridge", "forever"],
}
# The vocabulary that appears in the drift days (new slang the model never saw).
NEW_VOCAB = {
    "hate": ["groypers", "replacement"],
    "violence": ["unalive them", "go postal"],
    "sexual": ["corn star", "seggs"],
    "spam": ["airdrop claim", "rug pull"],
    "self_harm": ["unalive myself", "sewerslide"],
}
COUNTER_FRAMES = (
    "reporting this post: '{x}' is not ok",
    "stop saying '{x}' it hurts people",
    "someone wrote '{x}' under my video, unacceptable",
    "quoting the troll: '{x}' - blocked",
)
LEET = str.maketrans({"a": "4", "e": "3", "i": "1", "o": "0", "s": "5"})


@dataclass(frozen=True)
class HarmWorldConfig:
    """Sizes of one world; :meth:`for_scale` gives the standard ones."""

    # small: ~4,400 posts a day. At 1% harm that is ~1,000 harmful training posts (~80-380 a
    # class) and ~300 harmful test posts: with 60,000 posts a class had 14-43 test positives
    # (PR-AUC noise of +-0.1) and the enforcement A/B could not decide a 30% change
    n_posts: int = 150_000
    n_days: int = 28  # train, validation and test days
    drift_days: int = 6  # days after them in which the new vocabulary spreads
    n_authors: int = 20_000
    benign_messages: int = 5_000
    harmful_messages: int = 600  # per class
    image_size: int = 32
    image_share: float = 0.5  # benign posts with an image
    signal_boost: float = 1.0  # multiplies SIGNAL_RATE (the tiny world raises it)
    val_days: int = 4
    test_days: int = 6

    @classmethod
    def for_scale(cls, scale: Scale) -> Self:
        if scale == Scale.TINY:
            return cls(
                n_posts=3_000,
                n_days=12,
                drift_days=3,
                n_authors=600,
                benign_messages=400,
                harmful_messages=60,
                image_size=16,
                signal_boost=6.0,
                val_days=3,
                test_days=3,
            )
        if scale == Scale.MEDIUM:
            return cls(
                n_posts=300_000, n_authors=40_000, benign_messages=15_000, harmful_messages=2_500
            )
        return cls()

    def with_(self, **changes: object) -> Self:
        return replace(self, **changes)  # type: ignore[arg-type]

    @property
    def train_days(self) -> int:
        return self.n_days - self.val_days - self.test_days

    @property
    def total_days(self) -> int:
        return self.n_days + self.drift_days


def signal_rates(cfg: HarmWorldConfig) -> dict[str, float]:
    return {c: SIGNAL_RATE[c] * cfg.signal_boost for c in CLASSES}
