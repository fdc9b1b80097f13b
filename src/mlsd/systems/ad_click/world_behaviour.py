"""The behaviour model of the ad-click world: who clicks on what, and why.

It contains every effect the chapter "Ad Click Prediction on Social Platforms" asks a click model
to handle:

* interests: a user's affinity to the ad's category is the dominant term;
* feature interactions a linear model cannot capture: device x format (video works on phones and
  fails on the web), hour x category (food at lunch, gaming at night), age x format;
* position bias: a click needs the slot to be examined, with probability ``(1 + pos) ** -decay``;
* ad fatigue: each earlier impression of the same ad to the same user that day lowers the logit;
* freshness: new ads get a boost that fades over days;
* drift: interests follow a random walk (per user in a low-rank taste space, per demographic
  segment), and from ``trend_day`` on young users turn to gaming and away from finance.

``P(click) = examination(position) * sigmoid(intercept + click_logit(...))``.
"""

from __future__ import annotations

import numpy as np

from mlsd.systems.ad_click.world_config import CATEGORIES, AdClickWorldConfig
from mlsd.systems.ad_click.world_entities import Latent

# rows: ios, android, web; columns: image, video, carousel
DEVICE_X_FORMAT = np.array([[0.0, 0.6, 0.2], [0.0, 0.5, 0.1], [0.2, -0.8, -0.2]])
# rows: age buckets 18-24 .. 65+; columns: image, video, carousel
AGE_X_FORMAT = np.array(
    [
        [-0.2, 0.5, 0.2],
        [-0.1, 0.3, 0.1],
        [0.0, 0.0, 0.0],
        [0.1, -0.2, 0.0],
        [0.2, -0.4, -0.1],
        [0.3, -0.6, -0.2],
    ]
)
_PEAK_HOUR = {
    "fashion": 18,
    "travel": 20,
    "gaming": 23,
    "finance": 9,
    "food": 12,
    "fitness": 7,
    "tech": 14,
    "auto": 17,
    "home": 16,
    "beauty": 19,
    "education": 10,
    "entertainment": 21,
}
_peaks = np.array([_PEAK_HOUR[c] for c in CATEGORIES])
# (24, K): each category is most clickable around its peak hour
HOUR_X_CATEGORY = 0.4 * np.cos(2 * np.pi * (np.arange(24)[:, None] - _peaks[None, :]) / 24.0)
# share of feed requests per hour of day: quiet nights, lunch and evening peaks
HOUR_WEIGHTS = np.array(
    [2, 1, 1, 1, 1, 2, 3, 5, 6, 6, 6, 7, 8, 7, 6, 6, 6, 7, 8, 9, 10, 10, 8, 5], dtype=np.float64
)
HOUR_WEIGHTS /= HOUR_WEIGHTS.sum()
_GAMING, _FINANCE = CATEGORIES.index("gaming"), CATEGORIES.index("finance")


def _day_index(cfg: AdClickWorldConfig, day: np.ndarray | int) -> np.ndarray:
    return np.clip(np.asarray(day, dtype=np.int64), 0, cfg.horizon - 1)


def _trend(cfg: AdClickWorldConfig, day: np.ndarray, age: np.ndarray) -> np.ndarray:
    """The trend's logit shift for young users from ``trend_day`` on (per row)."""
    t = cfg.trend_slope * np.maximum(0, np.asarray(day) - cfg.trend_day)
    return np.where(age <= 1, t, 0.0)


def interest_matrix(
    latent: Latent, cfg: AdClickWorldConfig, users: np.ndarray, day: int
) -> np.ndarray:
    """Interests of ``users`` in every category on ``day``: ``(n, K)``."""
    d = int(_day_index(cfg, day))
    m = (
        latent.interest_base[users]
        + latent.segment_walk[d][latent.segment[users]]
        + latent.drift_loading[users] @ latent.taste_walk[d]
    ).astype(np.float64)
    shift = _trend(cfg, np.full(len(users), d), latent.age[users])
    m[:, _GAMING] += shift
    m[:, _FINANCE] -= shift
    return m


def interest_of(
    latent: Latent,
    cfg: AdClickWorldConfig,
    users: np.ndarray,
    categories: np.ndarray,
    day: np.ndarray,
) -> np.ndarray:
    """Interest of each row's user in each row's category on each row's day: ``(n,)``."""
    d = _day_index(cfg, day)
    walk = latent.taste_walk[d, :, categories]  # (n, R)
    value = (
        latent.interest_base[users, categories]
        + latent.segment_walk[d, latent.segment[users], categories]
        + np.einsum("nr,nr->n", latent.drift_loading[users], walk)
    ).astype(np.float64)
    shift = _trend(cfg, d, latent.age[users])
    return (
        value
        + np.where(categories == _GAMING, shift, 0.0)
        - np.where(categories == _FINANCE, shift, 0.0)
    )


def click_logit(
    latent: Latent,
    cfg: AdClickWorldConfig,
    users: np.ndarray,
    ads: np.ndarray,
    day: np.ndarray,
    hour: np.ndarray,
    device: np.ndarray,
    prior_impressions: np.ndarray,
) -> np.ndarray:
    """The click logit without the intercept, one value per row (all arguments are row arrays)."""
    cat, fmt = latent.ad_category[ads], latent.ad_format[ads]
    age_days = np.maximum(np.asarray(day) - latent.ad_created[ads], 0)
    s = cfg.interaction_scale
    return (
        latent.propensity[users]
        + latent.ad_quality[ads]
        + interest_of(latent, cfg, users, cat, day)
        + s * DEVICE_X_FORMAT[device, fmt]
        + s * HOUR_X_CATEGORY[hour, cat]
        + s * AGE_X_FORMAT[latent.age[users], fmt]
        + cfg.freshness_boost * np.exp(-age_days / cfg.freshness_tau_days)
        - cfg.fatigue * np.log1p(prior_impressions)
    )


def examination(cfg: AdClickWorldConfig, position: np.ndarray) -> np.ndarray:
    """Probability that a user examines the slot at ``position`` (0-based): position bias."""
    return (1.0 + np.asarray(position, dtype=np.float64)) ** -cfg.position_decay


def click_probability(logit: np.ndarray, intercept: float, exam: np.ndarray) -> np.ndarray:
    """``examination * sigmoid(intercept + logit)``."""
    return exam / (1.0 + np.exp(-(intercept + logit)))


def calibrate_intercept(logit: np.ndarray, exam: np.ndarray, target_ctr: float) -> float:
    """The intercept at which the mean click probability of these impressions is ``target_ctr``.

    The mean is increasing in the intercept, so bisection finds it.
    """
    lo, hi = -30.0, 30.0
    for _ in range(80):
        mid = 0.5 * (lo + hi)
        if click_probability(logit, mid, exam).mean() < target_ctr:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)
