"""The entities of the ad-click world: users, advertisers, campaigns and ads, with latent structure.

What the chapter "Ad Click Prediction on Social Platforms" lists as features (user demographics,
ad category, format, advertiser, bid) are observable here; what decides clicks (a user's interest
in each ad category, their click propensity, an ad's creative quality) is latent. Observable
attributes are correlated with the latent interests, so features carry signal without
determining the answer.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from mlsd.rng import rng as named_rng
from mlsd.systems.ad_click.world_config import (
    CATEGORIES,
    COUNTRIES,
    FORMATS,
    GENDERS,
    N_AGE_BUCKETS,
    AdClickWorldConfig,
)

_CATEGORY_WORDS: dict[str, tuple[str, ...]] = {
    "fashion": ("sneakers", "jackets", "denim", "dresses", "style", "outfits"),
    "travel": ("flights", "hotels", "beach", "getaway", "city breaks", "cruises"),
    "gaming": ("rpg", "battle pass", "console", "multiplayer", "quest", "arcade"),
    "finance": ("savings", "credit card", "investing", "loans", "budgeting", "crypto"),
    "food": ("pizza", "recipes", "delivery", "vegan meals", "coffee", "snacks"),
    "fitness": ("workouts", "yoga", "running shoes", "protein", "gym", "training plan"),
    "tech": ("laptops", "headphones", "smartphones", "cloud", "gadgets", "smartwatch"),
    "auto": ("suvs", "electric cars", "test drive", "tyres", "insurance", "leasing"),
    "home": ("furniture", "decor", "bedding", "kitchen", "garden", "lighting"),
    "beauty": ("skincare", "makeup", "fragrance", "haircare", "serum", "nails"),
    "education": ("courses", "degrees", "languages", "coding bootcamp", "tutoring", "exams"),
    "entertainment": ("movies", "concerts", "streaming", "festival tickets", "series", "music"),
}
_ADJECTIVES = ("new", "best", "exclusive", "limited", "top", "smart", "easy", "premium")
_CALLS = ("shop now", "learn more", "sign up", "play free", "book today", "try it")
_BASE_BID = {  # typical CPC in $ per category
    "finance": 2.0,
    "auto": 1.5,
    "travel": 1.2,
    "tech": 1.2,
    "education": 1.0,
}


@dataclass(frozen=True)
class Latent:
    """The hidden state of the world, as arrays indexed by user id / ad id / day."""

    # users
    age: np.ndarray  # (U,) int
    gender: np.ndarray  # (U,) int index into GENDERS
    country: np.ndarray  # (U,) int index into COUNTRIES
    segment: np.ndarray  # (U,) int: age x gender x country
    signup_day: np.ndarray  # (U,) int
    activity: np.ndarray  # (U,) float: relative request rate
    primary_device: np.ndarray  # (U,) int index into DEVICES
    propensity: np.ndarray  # (U,) float: logit offset of this user's clicks
    interest_base: np.ndarray  # (U, K) float32: interest in each category on day 0
    drift_loading: np.ndarray  # (U, R) float32: the user's position in the taste space
    # drift over days
    taste_walk: np.ndarray  # (D, R, K) random walk in the low-rank taste space
    segment_walk: np.ndarray  # (D, S, K) random walk per demographic segment
    # ads
    ad_category: np.ndarray  # (A,) int index into CATEGORIES
    ad_format: np.ndarray  # (A,) int index into FORMATS
    ad_quality: np.ndarray  # (A,) float: logit offset of the creative
    ad_bid: np.ndarray  # (A,) float: CPC in $
    ad_created: np.ndarray  # (A,) int: first day the ad can be shown
    ad_end: np.ndarray  # (A,) int: first day it can no longer be shown (campaign ended)


def _random_walk(rng: np.random.Generator, shape: tuple[int, ...], step: float) -> np.ndarray:
    """A random walk along axis 0 that starts at zero on day 0."""
    steps = rng.normal(0.0, step, size=shape).astype(np.float32)
    steps[0] = 0.0
    return np.cumsum(steps, axis=0)


def make_users(
    cfg: AdClickWorldConfig, rng: np.random.Generator
) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    """Users with demographics correlated with their latent interests and device."""
    n, k = cfg.n_users, len(CATEGORIES)
    age = rng.choice(N_AGE_BUCKETS, size=n, p=[0.2, 0.27, 0.2, 0.15, 0.11, 0.07])
    gender = rng.choice(len(GENDERS), size=n, p=[0.48, 0.48, 0.04])
    country = rng.choice(len(COUNTRIES), size=n, p=[0.3, 0.1, 0.1, 0.08, 0.18, 0.1, 0.08, 0.06])
    segment = (age * len(GENDERS) + gender) * len(COUNTRIES) + country
    new_user = rng.random(n) < 0.1  # cold-start users sign up while the world runs
    signup_day = np.where(
        new_user, rng.integers(1, max(cfg.horizon, 2), size=n), -rng.integers(0, 366, size=n)
    )
    activity = rng.lognormal(0.0, 0.8, size=n)
    # older users browse on the web more, young ones on phones
    p_web = 0.1 + 0.08 * age
    u = rng.random(n)
    p_ios = (1.0 - p_web) * np.where(np.isin(country, [0, 6]), 0.6, 0.4)
    primary_device = np.where(u < p_ios, 0, np.where(u < 1.0 - p_web, 1, 2))
    # interests: a part explained by demographics, a part that is not
    attr_sd = cfg.interest_attr_scale / np.sqrt(3.0)
    by_age = rng.normal(0.0, attr_sd, size=(N_AGE_BUCKETS, k))
    by_gender = rng.normal(0.0, attr_sd, size=(len(GENDERS), k))
    by_country = rng.normal(0.0, attr_sd, size=(len(COUNTRIES), k))
    popularity = rng.normal(0.0, 0.3, size=k)
    interest = (
        popularity
        + by_age[age]
        + by_gender[gender]
        + by_country[country]
        + rng.normal(0.0, cfg.interest_indiv_scale, size=(n, k))
    ).astype(np.float32)
    propensity = rng.normal(0.0, cfg.propensity_scale, size=n) + 0.08 * (age - 2)
    users = pd.DataFrame(
        {
            "user_id": np.arange(n, dtype=np.int64),
            "age_bucket": age.astype(np.int64),
            "gender": np.asarray(GENDERS)[gender],
            "country": np.asarray(COUNTRIES)[country],
            "signup_day": signup_day.astype(np.int64),
        }
    )
    arrays = {
        "age": age,
        "gender": gender,
        "country": country,
        "segment": segment,
        "signup_day": signup_day,
        "activity": activity,
        "primary_device": primary_device,
        "propensity": propensity,
        "interest_base": interest,
        "drift_loading": rng.normal(0.0, 1.0, size=(n, cfg.drift_rank)).astype(np.float32),
    }
    return users, arrays


def make_ads(
    cfg: AdClickWorldConfig, rng: np.random.Generator
) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    """Ads in campaigns of advertisers: an initial stock, then new ones every day (cold start).

    Ad ids grow with the day an ad arrives, so ids never seen before appear every day. A campaign
    ends on its ``end_day``; its ads stop being shown from then on.
    """
    k = len(CATEGORIES)
    cohort_sizes = [cfg.n_ads_initial] + [cfg.new_ads_per_day] * (cfg.horizon - 1)
    ad_campaign: list[np.ndarray] = []
    camp_created: list[np.ndarray] = []
    camp_end: list[np.ndarray] = []
    n_camp = 0
    for day, size in enumerate(cohort_sizes):
        n_new = max(1, size // 3)
        idx = np.concatenate([np.arange(n_new), rng.integers(0, n_new, size=max(size - n_new, 0))])
        ad_campaign.append(n_camp + np.sort(idx[:size]))
        if day == 0:
            created = -rng.integers(0, 15, size=n_new)
            end = rng.integers(2, 2 * cfg.horizon + 2, size=n_new)
        else:
            created = np.full(n_new, day)
            end = created + 3 + rng.geometric(1.0 / 8.0, size=n_new)
        camp_created.append(created)
        camp_end.append(end)
        n_camp += n_new
    campaign = np.concatenate(ad_campaign)
    c_created, c_end = np.concatenate(camp_created), np.concatenate(camp_end)
    n_ads = len(campaign)

    n_adv = max(3, n_camp // 3)
    adv_category = rng.integers(0, k, size=n_adv)
    camp_adv = rng.integers(0, n_adv, size=n_camp)
    camp_cat = np.where(
        rng.random(n_camp) < 0.8, adv_category[camp_adv], rng.integers(0, k, size=n_camp)
    )
    base_bid = np.array([_BASE_BID.get(c, 0.7) for c in CATEGORIES])
    camp_bid = base_bid[camp_cat] * rng.lognormal(0.0, 0.4, size=n_camp)
    camp_quality = rng.normal(0.0, cfg.quality_scale * 0.7, size=n_camp)

    category = camp_cat[campaign]
    fmt = rng.choice(len(FORMATS), size=n_ads, p=[0.5, 0.3, 0.2])
    bid = np.maximum(np.round(camp_bid[campaign] * rng.lognormal(0.0, 0.1, size=n_ads), 2), 0.05)
    quality = camp_quality[campaign] + rng.normal(0.0, cfg.quality_scale * 0.7, size=n_ads)

    words = np.array([_CATEGORY_WORDS[c] for c in CATEGORIES])  # (K, 6)
    w = rng.integers(0, words.shape[1], size=(n_ads, 2))
    text = np.char.add(np.asarray(_ADJECTIVES)[rng.integers(0, len(_ADJECTIVES), n_ads)], " ")
    text = np.char.add(np.char.add(text, words[category, w[:, 0]]), " & ")
    text = np.char.add(np.char.add(text, words[category, w[:, 1]]), " - ")
    text = np.char.add(text, np.asarray(_CALLS)[rng.integers(0, len(_CALLS), n_ads)])

    ads = pd.DataFrame(
        {
            "ad_id": np.arange(n_ads, dtype=np.int64),
            "advertiser_id": camp_adv[campaign].astype(np.int64),
            "campaign_id": campaign.astype(np.int64),
            "category": np.asarray(CATEGORIES)[category],
            "format": np.asarray(FORMATS)[fmt],
            "bid": bid.astype(np.float64),
            "created_day": c_created[campaign].astype(np.int64),
            "end_day": c_end[campaign].astype(np.int64),
            "creative_text": text.astype(str),
        }
    )
    arrays = {
        "ad_category": category,
        "ad_format": fmt,
        "ad_quality": quality,
        "ad_bid": bid,
        "ad_created": c_created[campaign],
        "ad_end": c_end[campaign],
    }
    return ads, arrays


def make_world_entities(
    cfg: AdClickWorldConfig, seed: int
) -> tuple[pd.DataFrame, pd.DataFrame, Latent]:
    """Users, ads and the latent state of a world, deterministic by ``seed``."""
    users, u = make_users(cfg, named_rng(seed, "ad-click/world/users"))
    ads, a = make_ads(cfg, named_rng(seed, "ad-click/world/ads"))
    drift = named_rng(seed, "ad-click/world/drift")
    k, n_seg = len(CATEGORIES), N_AGE_BUCKETS * len(GENDERS) * len(COUNTRIES)
    taste_step = cfg.drift_step / np.sqrt(cfg.drift_rank)
    latent = Latent(
        **u,
        taste_walk=_random_walk(drift, (cfg.horizon, cfg.drift_rank, k), taste_step),
        segment_walk=_random_walk(drift, (cfg.horizon, n_seg, k), cfg.segment_drift_step),
        **a,
    )
    return users, ads, latent


__all__ = ["Latent", "make_ads", "make_users", "make_world_entities"]
