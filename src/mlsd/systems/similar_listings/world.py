"""The simulated rental platform of similar listings (book ch. 9), deterministic by seed.

**Entities.** Regions (cities) with neighbourhoods at coordinates, each neighbourhood with a
price level. Listings belong to a neighbourhood and have a type, a capacity, a nightly price,
amenities (a bitmask) and a latent *style* (a unit vector drawn around one of a few style
centres; the type and the amenities depend on the centre, so attributes say a little about the
style, never all of it). Users have a latent taste (a unit vector, also near a style centre), a
budget and a group size.

**Behaviour.** A search session: a user looks for a place in one region on one day. The first
click comes from the search results (a softmax of the user's utility over the region's active
listings, ``SEARCH_TEMP``); every next click follows the user's intent, which leans toward the
style just clicked (``INTENT_PREV``), so listings clicked together share style and price.
Sessions end after a geometric number of clicks; the user books one of the clicked listings
with a probability that grows with the best utility found, the booked listing being chosen
(sharply) by its fit to the user: the utility without the listing's quality
(``BOOK_APPEAL``), which makes a listing clicked more and a booking likelier, not which
clicked listing is booked. Utility is the cosine of taste and style, minus a price penalty
(over budget costs more than under), plus the listing's quality and a seasonal taste for
pools; a listing too small for the group is never clicked. New listings appear every day
(cold start).

**Why these settings** (0.7, 1.5 and 1.0 before, with 2,500 sessions a day at small): with
near-uniform first clicks, next clicks as much the user's taste as the listing just viewed,
bookings led by everyone's appeal and ~60 training clicks per listing of a 300-listing region,
co-occurrence counts beat even the oracle (the true similarity), so no model of the listings'
latent similarity could win (:mod:`.model_tuning`). Now clicks follow the latent style within
the region and price band, and a listing has ~20 training clicks (a long tail).

**Ground truth.** :meth:`SimilarListingsWorld.true_similarity`: two listings of one region are
similar by the cosine of their styles minus a price-band distance; listings of other regions
are never similar. It is the oracle's similarity; models only see the logged clicks and the
listings' attributes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import Any, Self

import numpy as np
import pandas as pd

from mlsd.rng import rng
from mlsd.world import Scale

LISTING_TYPES = ("entire_home", "private_room", "shared_room", "hotel_room")
AMENITIES = ("wifi", "kitchen", "pool", "parking", "air_conditioning", "washer", "pets", "desk")
POOL = AMENITIES.index("pool")
TYPE_PRICE = np.array([1.0, 0.55, 0.3, 0.8])  # price factor by type
BASE_PRICE = 90.0
TASTE_WEIGHT = 4.0  # utility: weight of cos(taste, style)
PRICE_OVER, PRICE_ANY = 1.0, 0.8  # utility: per unit of log price over budget / any distance
INTENT_PREV = 3.0  # weight of the last clicked style in the session's intent
CLICK_TEMP = 0.3  # softmax temperature of the next click
SEARCH_TEMP = 0.3  # softmax temperature of the first click (search results are noisy)
BOOK_BIAS, BOOK_SLOPE = -5.5, 2.0  # P(book) = sigmoid(slope * (best utility) + bias)
BOOK_TEMP = 0.15
BOOK_APPEAL = 0.0  # share of the listing's quality in which clicked listing is booked
SIM_PRICE = 0.5  # true similarity: penalty per unit of log price distance
SEASON_POOL = 0.4  # utility bonus for a pool, times sin(2 pi day / SEASON_DAYS)
SEASON_DAYS = 28


@dataclass(frozen=True)
class SimilarListingsConfig:
    """How big the world is; :meth:`for_scale` gives the four scales."""

    n_regions: int = 3
    neighbourhoods_per_region: int = 4
    listings_per_region: int = 60
    n_users: int = 400
    n_days: int = 8
    sessions_per_day: int = 150
    new_listings_per_day: int = 2  # per region
    n_styles: int = 6
    style_dim: int = 8
    style_spread: float = 0.35  # noise around a style centre
    mean_clicks: float = 7.0
    test_days: int = 2
    online_sessions: int = 1500

    @classmethod
    def for_scale(cls, scale: Scale | str) -> SimilarListingsConfig:
        s = Scale(scale)
        if s is Scale.TINY:
            return cls()
        if s is Scale.SMALL:
            return cls(
                n_regions=8,
                neighbourhoods_per_region=6,
                listings_per_region=300,
                n_users=6000,
                n_days=14,
                sessions_per_day=800,
                new_listings_per_day=4,
                online_sessions=12_000,
            )
        if s is Scale.MEDIUM:
            return cls(
                n_regions=40,
                neighbourhoods_per_region=10,
                listings_per_region=1500,
                n_users=100_000,
                n_days=21,
                sessions_per_day=10_000,
                new_listings_per_day=15,
                online_sessions=40_000,
            )
        return cls(
            n_regions=400,
            neighbourhoods_per_region=20,
            listings_per_region=2500,
            n_users=2_000_000,
            n_days=28,
            sessions_per_day=120_000,
            new_listings_per_day=30,
            online_sessions=100_000,
        )

    def with_(self, **changes: Any) -> Self:
        return replace(self, **changes)


def _unit(x: np.ndarray) -> np.ndarray:
    out: np.ndarray = x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)
    return out


@dataclass(frozen=True)
class Session:
    """One search session as the world played it (clicks in order; booked id or -1)."""

    user_id: int
    region: int
    day: int
    clicks: list[int]
    booked: int
    carousel_shown: int = 0
    carousel_clicks: int = 0


#: ``carousel(listing_id, region, day) -> ids``: what a similar-listings carousel shows.
Carousel = Callable[[int, int, int], np.ndarray]


class SimilarListingsWorld:
    """Regions, listings, users and their search sessions, day by day."""

    def __init__(
        self, scale: Scale | str, seed: int, config: SimilarListingsConfig | None = None
    ) -> None:
        self.scale = Scale(scale)
        self.seed = seed
        self.config = config or SimilarListingsConfig.for_scale(self.scale)
        cfg = self.config
        r = rng(seed, "similar-listings/world/regions")
        self.region_centres = r.uniform(-60.0, 60.0, size=(cfg.n_regions, 2))
        nb = cfg.n_regions * cfg.neighbourhoods_per_region
        self.nbhd_region = np.repeat(np.arange(cfg.n_regions), cfg.neighbourhoods_per_region)
        self.nbhd_coords = self.region_centres[self.nbhd_region] + r.normal(0.0, 0.05, (nb, 2))
        self.nbhd_price = np.exp(r.normal(0.0, 0.3, nb))
        rs = rng(seed, "similar-listings/world/styles")
        self.style_centres = _unit(rs.normal(size=(cfg.n_styles, cfg.style_dim)))
        self.style_type = rs.dirichlet(np.full(len(LISTING_TYPES), 0.6), size=cfg.n_styles)
        self.style_amenity = rs.uniform(0.1, 0.9, size=(cfg.n_styles, len(AMENITIES)))
        self.style_price = np.exp(rs.normal(0.0, 0.35, cfg.n_styles))
        n0 = cfg.n_regions * cfg.listings_per_region
        region0 = np.repeat(np.arange(cfg.n_regions), cfg.listings_per_region)
        self.listings, self._styles = self._new_listings(region0, np.zeros(n0, np.int64), "initial")
        self.users = self._users()
        self._budget = self.users["budget"].to_numpy(np.float64)
        self._group = self.users["group_size"].to_numpy(np.int64)
        self._logged = False

    # ---- entities ------------------------------------------------------------------------------
    def _new_listings(
        self, region: np.ndarray, day: np.ndarray, stream: str
    ) -> tuple[pd.DataFrame, np.ndarray]:
        """The listings table of new listings and their latent styles."""
        cfg = self.config
        r = rng(self.seed, f"similar-listings/world/listings/{stream}")
        n = len(region)
        nbhd = region * cfg.neighbourhoods_per_region + r.integers(
            0, cfg.neighbourhoods_per_region, n
        )
        style_id = r.integers(0, cfg.n_styles, n)
        style = _unit(
            self.style_centres[style_id] + r.normal(0, cfg.style_spread, (n, cfg.style_dim))
        )
        type_id = np.array([r.choice(len(LISTING_TYPES), p=self.style_type[s]) for s in style_id])
        capacity = np.where(type_id == 0, r.integers(2, 9, n), r.integers(1, 4, n))
        price = (
            BASE_PRICE
            * TYPE_PRICE[type_id]
            * self.nbhd_price[nbhd]
            * self.style_price[style_id]
            * (1.0 + 0.12 * capacity)
            * np.exp(r.normal(0.0, 0.15, n))
        )
        has = r.random((n, len(AMENITIES))) < self.style_amenity[style_id]
        amenities = (has * (1 << np.arange(len(AMENITIES)))).sum(axis=1)
        coords = self.nbhd_coords[nbhd] + r.normal(0.0, 0.01, (n, 2))
        table = pd.DataFrame(
            {
                "region": region.astype(np.int64),
                "neighbourhood": nbhd.astype(np.int64),
                "lat": coords[:, 0],
                "lon": coords[:, 1],
                "type": np.array(LISTING_TYPES)[type_id],
                "capacity": capacity.astype(np.int64),
                "price": np.round(price, 2),
                "amenities": amenities.astype(np.int64),
                "quality": r.normal(0.0, 0.15, n),
                "created_day": day.astype(np.int64),
            }
        )
        return table, style

    def _users(self) -> pd.DataFrame:
        cfg = self.config
        r = rng(self.seed, "similar-listings/world/users")
        n = cfg.n_users
        sid = r.integers(0, cfg.n_styles, n)
        taste = _unit(self.style_centres[sid] + r.normal(0, cfg.style_spread, (n, cfg.style_dim)))
        self._taste = taste
        return pd.DataFrame(
            {
                "user_id": np.arange(n, dtype=np.int64),
                "budget": np.round(BASE_PRICE * np.exp(r.normal(0.0, 0.45, n)), 2),
                "group_size": np.minimum(1 + r.poisson(1.0, n), 8).astype(np.int64),
            }
        )

    @property
    def n_listings(self) -> int:
        return len(self.listings)

    def add_day_listings(self, day: int) -> None:
        """The day's new listings (``new_listings_per_day`` per region), appended to the table."""
        cfg = self.config
        if cfg.new_listings_per_day <= 0:
            return
        region = np.repeat(np.arange(cfg.n_regions), cfg.new_listings_per_day)
        new, style = self._new_listings(region, np.full(len(region), day), f"day-{day}")
        self._styles = np.concatenate([self._styles, style])
        self.listings = pd.concat([self.listings, new], ignore_index=True)

    # ---- ground truth --------------------------------------------------------------------------
    def true_similarity(self, query: np.ndarray, ids: np.ndarray | None = None) -> np.ndarray:
        """``(Q, N)`` true similarity of listings ``query`` to ``ids`` (default: every listing):
        cosine of styles minus ``SIM_PRICE`` per unit of log price distance; ``-inf`` across
        regions."""
        ids = np.arange(self.n_listings) if ids is None else np.asarray(ids)
        q = np.asarray(query)
        lp = np.log(self.listings["price"].to_numpy())
        reg = self.listings["region"].to_numpy()
        sim = self._styles[q] @ self._styles[ids].T
        sim -= SIM_PRICE * np.abs(lp[q][:, None] - lp[ids][None, :])
        out: np.ndarray = np.where(reg[q][:, None] == reg[ids][None, :], sim, -np.inf)
        return out

    def utility(self, user: int, ids: np.ndarray, day: int) -> np.ndarray:
        """The user's utility of listings ``ids`` on ``day`` (``-inf`` when too small)."""
        li = self.listings
        lp = np.log(li["price"].to_numpy()[ids])
        lb = np.log(self._budget[user])
        over = np.maximum(lp - lb, 0.0)
        pool = (li["amenities"].to_numpy()[ids] >> POOL) & 1
        season = SEASON_POOL * np.sin(2 * np.pi * day / SEASON_DAYS)
        val = (
            TASTE_WEIGHT * (self._styles[ids] @ self._taste[user])
            - PRICE_OVER * over
            - PRICE_ANY * np.abs(lp - lb)
            + li["quality"].to_numpy()[ids]
            + season * pool
        )
        small = li["capacity"].to_numpy()[ids] < self._group[user]
        out: np.ndarray = np.where(small, -np.inf, val)
        return out

    # ---- behaviour -----------------------------------------------------------------------------
    def play_session(
        self,
        user: int,
        region: int,
        day: int,
        r: np.random.Generator,
        carousel: Carousel | None = None,
    ) -> Session:
        """One search session; with ``carousel``, after every click the user sees its similar
        listings (position bias) and may click one, which then is the next click."""
        li = self.listings
        active = np.flatnonzero(
            (li["region"].to_numpy() == region) & (li["created_day"].to_numpy() <= day)
        )
        util = self.utility(user, active, day)
        ok = np.isfinite(util)
        active, util = active[ok], util[ok]
        if len(active) == 0:
            return Session(user, region, day, [], -1)
        pos_of = {int(a): i for i, a in enumerate(active)}
        n_clicks = min(1 + r.geometric(1.0 / max(self.config.mean_clicks - 1.0, 1.0)), 30)
        p = _softmax(util / SEARCH_TEMP / TASTE_WEIGHT)
        clicks = [int(active[r.choice(len(active), p=p)])]
        taste = self._taste[user]
        shown = carousel_clicks = 0
        styles = self._styles[active]
        rest = util - TASTE_WEIGHT * (styles @ taste)  # utility without the taste term
        while len(clicks) < n_clicks:
            last = clicks[-1]
            if carousel is not None:
                picked = self._carousel_click(user, last, region, day, carousel, pos_of, util, r)
                shown += 1
                if picked >= 0 and picked not in clicks:
                    clicks.append(picked)
                    carousel_clicks += 1
                    continue
            intent = _unit(taste + INTENT_PREV * self._styles[last])
            score = TASTE_WEIGHT * (styles @ intent) + rest
            score[[pos_of[c] for c in clicks if c in pos_of]] = -np.inf
            if not np.isfinite(score).any():
                break
            clicks.append(int(active[r.choice(len(active), p=_softmax(score / CLICK_TEMP))]))
        cu = np.array([util[pos_of[c]] for c in clicks])
        booked = -1
        if r.random() < _sigmoid(BOOK_SLOPE * cu.max() + BOOK_BIAS):
            fit = cu - (1.0 - BOOK_APPEAL) * li["quality"].to_numpy()[clicks]
            booked = clicks[int(r.choice(len(clicks), p=_softmax(fit / BOOK_TEMP)))]
        return Session(user, region, day, clicks, booked, shown, carousel_clicks)

    def _carousel_click(
        self,
        user: int,
        last: int,
        region: int,
        day: int,
        carousel: Carousel,
        pos_of: dict[int, int],
        util: np.ndarray,
        r: np.random.Generator,
    ) -> int:
        ids = [int(i) for i in carousel(last, region, day) if int(i) in pos_of]
        for rank, i in enumerate(ids):
            if r.random() > CAROUSEL_EXAMINE**rank:
                break
            if r.random() < _sigmoid(CAROUSEL_SLOPE * (util[pos_of[i]] - CAROUSEL_BAR)):
                return i
        return -1

    def sessions_of_day(self, day: int) -> list[Session]:
        """The day's logged sessions (no carousel): the logging policy of the offline data."""
        cfg = self.config
        r = rng(self.seed, f"similar-listings/world/sessions/day-{day}")
        users = r.integers(0, cfg.n_users, cfg.sessions_per_day)
        regions = r.integers(0, cfg.n_regions, cfg.sessions_per_day)
        return [
            self.play_session(int(u), int(g), day, r) for u, g in zip(users, regions, strict=True)
        ]

    def iter_log(self) -> Iterator[pd.DataFrame]:
        """The click log day by day (the day's new listings appear first): one row per click,
        ``session_id, user_id, region, day, position, listing_id, booked_id``. The
        world grows while it logs, so it logs once."""
        if self._logged:
            raise RuntimeError("the world has logged its days already (build a new one)")
        self._logged = True
        next_id = 0
        for day in range(self.config.n_days):
            if day > 0:
                self.add_day_listings(day)
            rows: dict[str, list[int]] = {k: [] for k in LOG_COLUMNS}
            for s in self.sessions_of_day(day):
                for pos, c in enumerate(s.clicks):
                    for k, v in zip(
                        LOG_COLUMNS,
                        (next_id, s.user_id, s.region, s.day, pos, c, s.booked),
                        strict=True,
                    ):
                        rows[k].append(v)
                next_id += 1
            yield pd.DataFrame({k: np.asarray(v, dtype=np.int64) for k, v in rows.items()})


LOG_COLUMNS = ("session_id", "user_id", "region", "day", "position", "listing_id", "booked_id")
CAROUSEL_EXAMINE = 0.75  # P(look at the next carousel slot)
CAROUSEL_SLOPE, CAROUSEL_BAR = 1.5, 1.5  # P(click a carousel listing) = sigmoid(slope (u - bar))


def _softmax(x: np.ndarray) -> np.ndarray:
    z = np.exp(x - np.max(x))
    out: np.ndarray = z / z.sum()
    return out


def _sigmoid(x: float) -> float:
    return float(1.0 / (1.0 + np.exp(-x)))
