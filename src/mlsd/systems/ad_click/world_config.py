"""How big the ad-click world is and how strongly each effect of the chapter acts.

The book's chapter "Ad Click Prediction on Social Platforms" names the forces a click model must
cope with: user interests (the dominant signal), feature interactions a linear model misses,
position bias, ad fatigue, freshness of new ads, cold start, drift and class imbalance. Every one
of them has a knob here, so tests and experiments can switch effects on and off.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from mlsd.world import Scale

CATEGORIES: tuple[str, ...] = (
    "fashion",
    "travel",
    "gaming",
    "finance",
    "food",
    "fitness",
    "tech",
    "auto",
    "home",
    "beauty",
    "education",
    "entertainment",
)
FORMATS: tuple[str, ...] = ("image", "video", "carousel")
DEVICES: tuple[str, ...] = ("ios", "android", "web")
GENDERS: tuple[str, ...] = ("f", "m", "u")
COUNTRIES: tuple[str, ...] = ("us", "gb", "de", "fr", "in", "br", "jp", "ng")
N_AGE_BUCKETS = 6  # 18-24, 25-34, 35-44, 45-54, 55-64, 65+


@dataclass(frozen=True)
class AdClickWorldConfig:
    """Sizes and effect strengths of :class:`~mlsd.systems.ad_click.world.AdClickWorld`.

    Logit of a click (before position bias) = ``intercept`` (calibrated so the logged CTR is
    ``target_ctr``) + user propensity + ad quality + the user's interest in the ad's category
    (the dominant term) + interactions (device x format, hour x category, age x format)
    + freshness - fatigue. The probability of a click is that sigmoid times the examination
    probability of the slot, ``(1 + position) ** -position_decay``.
    """

    n_users: int
    n_ads_initial: int  # ads live on day 0
    new_ads_per_day: int  # cold start: fresh ad ids every day
    n_days: int  # days of logged traffic
    requests_per_day: int  # feed requests per day under the logging policy
    slots: int = 4  # ad slots per feed request
    n_candidates: int = 12  # candidates the targeting stage hands to ranking
    online_days: int = 7  # days after the log that online experiments may use
    target_ctr: float = 0.02
    # latent structure
    interest_attr_scale: float = 1.0  # how much age/gender/country explain interests
    interest_indiv_scale: float = 0.35  # what they do not
    propensity_scale: float = 0.3
    quality_scale: float = 0.4
    # interactions a linear model cannot capture
    interaction_scale: float = 1.0
    # position bias, fatigue, freshness
    position_decay: float = 0.7
    fatigue: float = 0.5  # logit penalty per log1p(prior impressions of this ad to this user)
    freshness_boost: float = 0.6
    freshness_tau_days: float = 2.0
    # drift
    drift_rank: int = 4  # the individual random walk lives in a low-rank taste space
    drift_step: float = 0.06  # per day
    segment_drift_step: float = 0.05
    trend_day: int = 3  # from this day on, young users turn to gaming and away from finance
    trend_slope: float = 0.06  # logit per day
    # logging policy
    targeted_fraction: float = 0.7  # candidates drawn by a noisy relevance estimate
    policy_noise: float = 0.8  # noise of the logging policy's relevance estimate (logit scale)

    @classmethod
    def for_scale(cls, scale: Scale | str) -> AdClickWorldConfig:
        """The preset for a :class:`~mlsd.world.Scale`: tiny runs in seconds, large ~20M rows."""
        scale = Scale(scale)
        if scale is Scale.TINY:  # ~30k impressions
            return cls(
                n_users=500,
                n_ads_initial=60,
                new_ads_per_day=5,
                n_days=6,
                online_days=3,
                requests_per_day=1250,
                n_candidates=10,
                trend_day=3,
            )
        if scale is Scale.SMALL:  # ~460k impressions
            return cls(
                n_users=20_000,
                n_ads_initial=800,
                new_ads_per_day=50,
                n_days=10,
                online_days=5,
                requests_per_day=11_500,
                n_candidates=16,
                trend_day=5,
            )
        if scale is Scale.MEDIUM:  # ~2M impressions
            return cls(
                n_users=100_000,
                n_ads_initial=3_000,
                new_ads_per_day=200,
                n_days=14,
                requests_per_day=36_000,
                n_candidates=20,
                trend_day=7,
            )
        # LARGE: ~20M impressions, streamed one day at a time
        return cls(
            n_users=2_000_000,
            n_ads_initial=15_000,
            new_ads_per_day=1_000,
            n_days=30,
            requests_per_day=167_000,
            n_candidates=24,
            trend_day=15,
        )

    @property
    def horizon(self) -> int:
        """Days the world is defined for: the logged days plus the online days after them."""
        return self.n_days + self.online_days

    def with_(self, **changes: float | int) -> AdClickWorldConfig:
        """A copy with some fields changed (e.g. ``fatigue=0`` to switch an effect off)."""
        return replace(self, **changes)  # type: ignore[arg-type]
