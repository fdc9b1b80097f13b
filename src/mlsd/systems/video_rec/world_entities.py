"""The video platform's entities: users, creators and videos, with latent structure.

Every category has a latent centre; a video's latent vector sits near its category's centre and
its creator's style; a user's taste is a mixture of one or two categories, tilted by the
demographics (age bucket), and drifts a little every day. Titles and tags are generated from
category vocabularies, so the title text (and its MiniLM embedding) carries real signal about
what the video is: this is what lets the content tower recommend a video nobody watched yet
(book ch. 6, "cold start").
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from mlsd.world import Scale

CATEGORIES: dict[str, tuple[str, ...]] = {
    "music": ("guitar", "piano", "concert", "album", "singer", "drums"),
    "gaming": ("minecraft", "speedrun", "boss fight", "esports", "strategy", "walkthrough"),
    "cooking": ("pasta", "baking", "curry", "street food", "dessert", "grill"),
    "sports": ("football", "tennis", "basketball", "marathon", "highlights", "cycling"),
    "news": ("election", "economy", "weather", "world news", "interview", "debate"),
    "comedy": ("stand-up", "sketch", "prank", "parody", "bloopers", "roast"),
    "science": ("physics", "space", "biology", "chemistry", "experiment", "telescope"),
    "travel": ("japan", "road trip", "hiking", "beach", "city tour", "camping"),
    "fitness": ("workout", "yoga", "running", "strength", "stretching", "cardio"),
    "tech": ("smartphone", "laptop", "programming", "gadget", "unboxing", "ai"),
    "education": ("math", "history", "language", "exam", "lecture", "tutorial"),
    "fashion": ("outfit", "makeup", "haul", "streetwear", "skincare", "sneakers"),
}
TEMPLATES = (
    "best {tag} {what} of the year",
    "{tag} {what} for beginners",
    "my first {tag} {what}",
    "the ultimate {tag} {what}",
)
WHAT = ("video", "guide", "review")
AGE_BUCKETS = ("13-17", "18-24", "25-34", "35-49", "50+")
COUNTRIES = ("us", "in", "br", "de", "jp", "fr")
LANGUAGES = ("en", "hi", "pt", "de", "ja", "fr")


@dataclass(frozen=True)
class VideoWorldConfig:
    """Sizes and behaviour knobs of the simulated platform."""

    n_users: int
    n_videos: int
    n_days: int
    new_users_per_day: int
    new_videos_per_day: int
    n_categories: int = 12
    dim: int = 16
    p_active: float = 0.6  # chance a user opens the app on a day
    slate: int = 20  # impressions per session
    drift: float = 0.08  # daily taste drift (std of the step, before renormalising)

    @classmethod
    def for_scale(cls, scale: Scale) -> VideoWorldConfig:
        sizes = {
            Scale.TINY: (400, 500, 6, 20, 30),
            Scale.SMALL: (3_000, 4_000, 12, 100, 150),
            Scale.MEDIUM: (20_000, 30_000, 14, 500, 1_000),
            Scale.LARGE: (1_000_000, 1_000_000, 14, 20_000, 20_000),
        }[Scale(scale)]
        return cls(*sizes)

    def with_(self, **changes: int | float) -> VideoWorldConfig:
        return replace(self, **changes)  # type: ignore[arg-type]


def unit_rows(x: np.ndarray) -> np.ndarray:
    """Rows of ``x`` scaled to unit length."""
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


@dataclass
class Latents:
    """The world's hidden state: category centres, demographic tilts, creator styles."""

    centres: np.ndarray  # (C, D)
    age_tilt: np.ndarray  # (A, D)
    creator_style: np.ndarray  # (n_creators, D)
    creator_category: np.ndarray  # (n_creators,)


def make_latents(cfg: VideoWorldConfig, rng: np.random.Generator) -> Latents:
    centres = unit_rows(rng.normal(size=(cfg.n_categories, cfg.dim)))
    age_pref = rng.dirichlet(np.full(cfg.n_categories, 0.5), size=len(AGE_BUCKETS))
    n_creators = max(10, (cfg.n_videos + cfg.n_days * cfg.new_videos_per_day) // 25)
    return Latents(
        centres=centres,
        age_tilt=age_pref @ centres,
        creator_style=0.35 * rng.normal(size=(n_creators, cfg.dim)),
        creator_category=rng.integers(0, cfg.n_categories, n_creators),
    )


def make_users(
    n: int, start_id: int, day: int, lat: Latents, rng: np.random.Generator
) -> tuple[pd.DataFrame, np.ndarray]:
    """``n`` new users who sign up on ``day``: their table and their latent tastes ``(n, D)``."""
    n_cat = lat.centres.shape[0]
    age = rng.integers(0, len(AGE_BUCKETS), n)
    country = rng.integers(0, len(COUNTRIES), n)
    language = np.where(rng.random(n) < 0.85, country, rng.integers(0, len(LANGUAGES), n))
    main = rng.integers(0, n_cat, n)
    second = rng.integers(0, n_cat, n)
    taste = (
        lat.centres[main]
        + 0.5 * lat.centres[second]
        + 0.8 * lat.age_tilt[age]
        + 0.25 * rng.normal(size=(n, lat.centres.shape[1]))
    )
    users = pd.DataFrame(
        {
            "user_id": np.arange(start_id, start_id + n, dtype=np.int64),
            "age_bucket": np.asarray(AGE_BUCKETS, dtype=object)[age],
            "country": np.asarray(COUNTRIES, dtype=object)[country],
            "language": np.asarray(LANGUAGES, dtype=object)[language],
            "signup_day": np.full(n, day, dtype=np.int32),
        }
    )
    return users, unit_rows(taste)


def make_videos(
    n: int, start_id: int, day: int, lat: Latents, rng: np.random.Generator
) -> tuple[pd.DataFrame, np.ndarray]:
    """``n`` videos uploaded on ``day``: their table and their latent vectors ``(n, D)``."""
    names = list(CATEGORIES)[: lat.centres.shape[0]]
    creator = rng.integers(0, len(lat.creator_category), n)
    cat = np.where(
        rng.random(n) < 0.8, lat.creator_category[creator], rng.integers(0, len(names), n)
    )
    latent = unit_rows(
        lat.centres[cat]
        + lat.creator_style[creator]
        + 0.3 * rng.normal(size=(n, lat.centres.shape[1]))
    )
    tag_idx = rng.integers(0, 6, size=(n, 2))
    titles, tags = [], []
    tmpl = rng.integers(0, len(TEMPLATES), n)
    what = rng.integers(0, len(WHAT), n)
    for i in range(n):
        words = CATEGORIES[names[cat[i]]]
        t0, t1 = words[tag_idx[i, 0]], words[tag_idx[i, 1]]
        titles.append(TEMPLATES[tmpl[i]].format(tag=t0, what=WHAT[what[i]]))
        tags.append(f"{names[cat[i]]}|{t0}|{t1}" if t0 != t1 else f"{names[cat[i]]}|{t0}")
    videos = pd.DataFrame(
        {
            "video_id": np.arange(start_id, start_id + n, dtype=np.int64),
            "creator_id": creator.astype(np.int64),
            "category": np.asarray(names, dtype=object)[cat],
            "tags": tags,
            "title": titles,
            "duration_min": np.round(np.exp(rng.normal(2.0, 0.7, n)).clip(0.5, 90.0), 2),
            "upload_day": np.full(n, day, dtype=np.int32),
            "quality": rng.beta(4.0, 3.0, n).round(4),
        }
    )
    return videos, latent
