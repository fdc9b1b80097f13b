"""AdClickWorld: the simulated platform of the chapter "Ad Click Prediction on Social Platforms".

Every simulated day, users send feed requests (at an hour, from a device); a targeting stage picks
candidate ads from the ads live that day (partly by a noisy estimate of relevance, partly at
random); the logging policy ranks them by a noisy pCTR x bid and shows the top ``slots``; users
click with the true probability of :mod:`~mlsd.systems.ad_click.world_behaviour`. The log thus
carries the selection and position bias of a real ads system, and its ``p_true`` column is the
ground truth every offline metric can be compared with.

A policy under test acts in the same world through :meth:`AdClickWorld.sample_requests` and
:meth:`AdClickWorld.show`, which is what the online A/B tests of the chapter's step 5 run on.

Fatigue counts the impressions of an ad to a user earlier the same day (it recovers overnight),
so every day, and every online batch, is generated on its own: large worlds stream day by day.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd

from mlsd.rng import rng as named_rng
from mlsd.systems.ad_click import world_behaviour as wb
from mlsd.systems.ad_click.world_config import CATEGORIES, DEVICES, AdClickWorldConfig
from mlsd.systems.ad_click.world_entities import make_world_entities
from mlsd.world import Scale

logger = logging.getLogger(__name__)

SECONDS_PER_DAY = 86_400
_MAX_REQUESTS_PER_DAY = 10_000_000  # request ids are day * this + index
_ONLINE_ID_BASE = 1 << 40  # request ids of online traffic never collide with logged ones
LOG_COLUMNS: tuple[str, ...] = (
    "impression_id",
    "ts",
    "day",
    "hour",
    "request_id",
    "user_id",
    "ad_id",
    "advertiser_id",
    "campaign_id",
    "position",
    "device",
    "click",
    "p_true",
)


@dataclass
class _Traffic:
    """Feed requests (aligned per-request arrays) and their candidate ads (``req``, ``ad``)."""

    request_id: np.ndarray
    user: np.ndarray
    ts: np.ndarray
    day: np.ndarray
    hour: np.ndarray
    device: np.ndarray  # index into DEVICES
    req: np.ndarray  # per candidate row: index of its request
    ad: np.ndarray  # per candidate row: the ad

    def column(self, name: str) -> np.ndarray:
        """A per-request attribute broadcast to the candidate rows."""
        values: np.ndarray = getattr(self, name)
        return values[self.req]


class AdClickWorld:
    """A deterministic (by ``seed``) ad-click world satisfying :class:`mlsd.world.World`.

    Attributes: ``users`` and ``ads`` (entity tables; ``ads`` holds every ad ever, future arrivals
    included, with ``created_day`` and ``end_day``), ``n_days`` (logged days), ``config``, and
    ``intercept`` (calibrated so the logged CTR is about ``config.target_ctr``).
    """

    def __init__(
        self,
        scale: Scale | str = Scale.TINY,
        seed: int = 0,
        config: AdClickWorldConfig | None = None,
    ) -> None:
        self.scale = Scale(scale)
        self.seed = int(seed)
        self.config = config if config is not None else AdClickWorldConfig.for_scale(self.scale)
        self.n_days = self.config.n_days
        self.users, self.ads, self._latent = make_world_entities(self.config, self.seed)
        self._n_ads = len(self.ads)
        self._ad_meta = (
            self.ads["advertiser_id"].to_numpy(np.int64),
            self.ads["campaign_id"].to_numpy(np.int64),
        )
        self.intercept = 0.0
        self.intercept = self._calibrate_intercept()
        msg = "ad-click world: scale=%s seed=%d users=%d ads=%d days=%d intercept=%.3f"
        logger.info(
            msg, self.scale, seed, len(self.users), self._n_ads, self.n_days, self.intercept
        )

    # ----------------------------------------------------------------------------- the log
    def iter_log(self) -> Iterator[pd.DataFrame]:
        """The logged impressions, one DataFrame per day, in time order (bounded memory)."""
        for day in range(self.n_days):
            yield self.log_day(day)

    def log_day(self, day: int) -> pd.DataFrame:
        """Day ``day`` of the log: a pure function of the world and the day (its own random
        stream), so days can be generated anywhere, in any order (``mlsd.engine``)."""
        if not 0 <= day < self.n_days:
            raise ValueError(f"day must be in 0..{self.n_days - 1}, got {day}")
        rng = named_rng(self.seed, f"ad-click/world/log/day-{day}")
        traffic, estimate = self._traffic(rng, day, self._requests_on(day), base=0)
        scores = self._logging_policy_scores(rng, traffic, estimate)
        return self._serve(traffic, scores, rng)

    def log(self) -> pd.DataFrame:
        """The whole log as one DataFrame (tiny/small/medium; use :meth:`iter_log` for large)."""
        if self.scale is Scale.LARGE:
            raise ValueError("the large world's log does not fit in memory: stream iter_log()")
        return pd.concat(list(self.iter_log()), ignore_index=True)

    # ----------------------------------------------------------------------------- ground truth
    def true_ctr(self, requests: pd.DataFrame) -> np.ndarray:
        """The true click probability of arbitrary rows.

        Columns: ``user_id``, ``ad_id``, ``ts`` (or ``day`` and ``hour``), ``device``; optional
        ``position`` (default 0) and ``prior_impressions`` (impressions of the ad to the user
        earlier that day, default 0).
        """
        n = len(requests)
        users = self._ids(requests, "user_id", len(self.users))
        ads = self._ids(requests, "ad_id", self._n_ads)
        if "ts" in requests:
            ts = requests["ts"].to_numpy(np.int64)
            day, hour = ts // SECONDS_PER_DAY, (ts % SECONDS_PER_DAY) // 3600
        elif "day" in requests and "hour" in requests:
            day = requests["day"].to_numpy(np.int64)
            hour = requests["hour"].to_numpy(np.int64)
        else:
            raise ValueError("true_ctr needs a 'ts' column or both 'day' and 'hour'")
        if ((hour < 0) | (hour > 23)).any():
            raise ValueError("column 'hour': values must lie in 0..23")
        device = self._device_codes(requests["device"])
        position = self._optional(requests, "position", n)
        prior = self._optional(requests, "prior_impressions", n)
        logit = wb.click_logit(self._latent, self.config, users, ads, day, hour, device, prior)
        return wb.click_probability(logit, self.intercept, wb.examination(self.config, position))

    def user_interests(self, day: int, user_ids: np.ndarray | None = None) -> np.ndarray:
        """Latent interests ``(n, n_categories)`` of users on ``day`` (for drift analyses)."""
        users = np.arange(len(self.users)) if user_ids is None else np.asarray(user_ids)
        return wb.interest_matrix(self._latent, self.config, users, day)

    def active_ads(self, day: int) -> np.ndarray:
        """Ids of the ads that can be shown on ``day``."""
        lat = self._latent
        return np.flatnonzero((lat.ad_created <= day) & (day < lat.ad_end))

    # ----------------------------------------------------------------------------- online
    def sample_requests(self, day: int, n_requests: int, batch: int) -> pd.DataFrame:
        """Fresh feed requests on ``day`` with the logging policy's candidates, one row each.

        Columns: request_id, user_id, ts, day, hour, device, ad_id. Score them with the policy
        under test and pass them to :meth:`show`. ``batch`` numbers the batches of online
        traffic: each batch is its own random stream with its own request ids, so batches can
        be pooled.
        """
        self._check_day(day)
        if not 0 < n_requests <= _MAX_REQUESTS_PER_DAY:
            raise ValueError(f"n_requests must be in 1..{_MAX_REQUESTS_PER_DAY}, got {n_requests}")
        if batch < 0:
            raise ValueError(f"batch must be >= 0, got {batch}")
        rng = named_rng(self.seed, f"ad-click/world/requests/day-{day}/batch-{batch}")
        base = _ONLINE_ID_BASE + ((batch % (1 << 20)) << 30)  # other batches, other request ids
        t, _ = self._traffic(rng, day, n_requests, base=base)
        return pd.DataFrame(
            {
                "request_id": t.column("request_id"),
                "user_id": t.column("user").astype(np.int64),
                "ts": t.column("ts"),
                "day": t.column("day").astype(np.int32),
                "hour": t.column("hour").astype(np.int8),
                "device": np.asarray(DEVICES)[t.column("device")],
                "ad_id": t.ad.astype(np.int64),
            }
        )

    def show(self, candidates: pd.DataFrame, scores: np.ndarray, batch: int) -> pd.DataFrame:
        """Show the top ``slots`` candidates of each request, ranked by ``scores`` (descending).

        Clicks are drawn from the true probability (position bias and fatigue within this batch
        included), from the random stream of ``batch`` (the same batch, the same draws). Returns
        impressions in the log schema plus ``bid`` and ``revenue`` (bid x click).
        """
        scores = np.asarray(scores, dtype=np.float64)
        if scores.shape != (len(candidates),):
            raise ValueError(f"scores has shape {scores.shape}, expected ({len(candidates)},)")
        if not np.isfinite(scores).all():
            raise ValueError("scores must be finite")
        ts = candidates["ts"].to_numpy(np.int64)
        n = len(candidates)
        t = _Traffic(
            request_id=candidates["request_id"].to_numpy(np.int64),
            user=self._ids(candidates, "user_id", len(self.users)),
            ts=ts,
            day=ts // SECONDS_PER_DAY,
            hour=(ts % SECONDS_PER_DAY) // 3600,
            device=self._device_codes(candidates["device"]),
            req=np.arange(n),
            ad=self._ids(candidates, "ad_id", self._n_ads),
        )
        out = self._serve(t, scores, named_rng(self.seed, f"ad-click/world/show/batch-{batch}"))
        bid = self._latent.ad_bid[out["ad_id"].to_numpy()]
        out["bid"] = bid
        out["revenue"] = bid * out["click"].to_numpy()
        return out

    # ----------------------------------------------------------------------------- internals
    def _requests_on(self, day: int) -> int:
        weekly = 1.0 + 0.1 * np.sin(2 * np.pi * day / 7.0)  # a weekly rhythm in traffic
        return round(self.config.requests_per_day * weekly)

    def _traffic(
        self, rng: np.random.Generator, day: int, n_requests: int, base: int
    ) -> tuple[_Traffic, np.ndarray]:
        """Feed requests on ``day`` and their candidates (the targeting stage).

        Returns the candidate rows and the logging policy's noisy relevance estimate of each.
        """
        lat, cfg = self._latent, self.config
        eligible = lat.signup_day <= day
        weights = lat.activity * eligible
        user = rng.choice(len(weights), size=n_requests, p=weights / weights.sum())
        hour = rng.choice(24, size=n_requests, p=wb.HOUR_WEIGHTS)
        ts = day * SECONDS_PER_DAY + hour * 3600 + rng.integers(0, 3600, size=n_requests)
        order = np.argsort(ts, kind="stable")
        user, hour, ts = user[order], hour[order], ts[order]
        request_id = base + day * _MAX_REQUESTS_PER_DAY + np.arange(n_requests, dtype=np.int64)
        device = np.where(
            rng.random(n_requests) < 0.85,
            lat.primary_device[user],
            rng.integers(0, len(DEVICES), size=n_requests),
        )

        active = self.active_ads(day)
        if len(active) == 0:
            raise RuntimeError(f"no ads are live on day {day}")
        k = len(CATEGORIES)
        cat_of_active = lat.ad_category[active]
        by_cat = active[np.argsort(cat_of_active, kind="stable")]
        counts = np.bincount(cat_of_active, minlength=k)
        starts = np.cumsum(counts) - counts
        # targeting: categories drawn by a noisy estimate of the user's interests
        estimate = wb.interest_matrix(lat, cfg, user, day)
        estimate += rng.normal(0.0, cfg.policy_noise, size=estimate.shape)
        weights_k = np.where(counts > 0, np.exp(estimate - estimate.max(axis=1, keepdims=True)), 0)
        cum = np.cumsum(weights_k / weights_k.sum(axis=1, keepdims=True), axis=1)
        n_targeted = round(cfg.targeted_fraction * cfg.n_candidates)
        row = np.arange(n_requests)[:, None]
        u = rng.random((n_requests, n_targeted)) + row  # inverse CDF, all rows in one search
        cats = np.searchsorted((cum + row).ravel(), u.ravel()).reshape(u.shape) - row * k
        cats = np.clip(cats, 0, k - 1)
        within = np.floor(rng.random(cats.shape) * counts[cats]).astype(np.int64)
        targeted = by_cat[np.minimum(starts[cats] + within, len(by_cat) - 1)]
        n_random = cfg.n_candidates - n_targeted
        randoms = active[rng.integers(0, len(active), size=(n_requests, n_random))]
        cand = np.sort(np.concatenate([targeted, randoms], axis=1), axis=1)  # (R, C)
        # one row per distinct (request, ad)
        distinct = np.ones(cand.shape, dtype=bool)
        distinct[:, 1:] = cand[:, 1:] != cand[:, :-1]
        req = np.broadcast_to(row, cand.shape)[distinct]
        ad = cand[distinct]
        traffic = _Traffic(
            request_id=request_id,
            user=user,
            ts=ts,
            day=np.full(n_requests, day, dtype=np.int64),
            hour=hour,
            device=device,
            req=req,
            ad=ad,
        )
        return traffic, estimate[req, lat.ad_category[ad]]

    def _logging_policy_scores(
        self, rng: np.random.Generator, t: _Traffic, estimate: np.ndarray
    ) -> np.ndarray:
        """The production ranker that logged the data: noisy pCTR x bid."""
        lat = self._latent
        quality = lat.ad_quality[t.ad] + rng.normal(0.0, 0.3, size=len(t.ad))
        p_est = 1.0 / (1.0 + np.exp(-(estimate + 0.5 * quality - 3.5)))
        return p_est * lat.ad_bid[t.ad] * rng.lognormal(0.0, 0.2, size=len(t.ad))

    def _serve(self, t: _Traffic, scores: np.ndarray, rng: np.random.Generator) -> pd.DataFrame:
        """Rank within each request, show the top slots, draw clicks: impressions in log schema.

        Output rows are ordered by request id (request ids increase with time), then position.
        """
        shown, position = _top_slots(t.column("request_id"), scores, self.config.slots)
        req, ad = t.req[shown], t.ad[shown]
        user, day = t.user[req], t.day[req]
        hour, device, request_id = t.hour[req], t.device[req], t.request_id[req]
        prior = self._prior_impressions(user, ad)
        logit = wb.click_logit(self._latent, self.config, user, ad, day, hour, device, prior)
        p_true = wb.click_probability(logit, self.intercept, wb.examination(self.config, position))
        click = rng.random(len(p_true)) < p_true
        advertiser, campaign = self._ad_meta
        return pd.DataFrame(
            {
                "impression_id": request_id * self.config.slots + position,
                "ts": t.ts[req].astype(np.int64),
                "day": day.astype(np.int32),
                "hour": hour.astype(np.int8),
                "request_id": request_id.astype(np.int64),
                "user_id": user.astype(np.int64),
                "ad_id": ad.astype(np.int64),
                "advertiser_id": advertiser[ad],
                "campaign_id": campaign[ad],
                "position": position.astype(np.int8),
                "device": np.asarray(DEVICES)[device],
                "click": click.astype(np.int8),
                "p_true": p_true,
            }
        )

    def _prior_impressions(self, user: np.ndarray, ad: np.ndarray) -> np.ndarray:
        """For rows in time order: how often this user already saw this ad among earlier rows."""
        key = user.astype(np.int64) * self._n_ads + ad
        order = np.argsort(key, kind="stable")
        k = key[order]
        idx = np.arange(len(k))
        new = np.r_[True, k[1:] != k[:-1]] if len(k) else np.zeros(0, bool)
        prior = np.empty(len(k), dtype=np.int64)
        prior[order] = idx - np.maximum.accumulate(np.where(new, idx, 0))
        return prior

    def _calibrate_intercept(self) -> float:
        """The intercept giving the logged CTR ``config.target_ctr`` on a pilot day of traffic."""
        rng = named_rng(self.seed, "ad-click/world/calibration")
        n = min(self.config.requests_per_day, 20_000)
        traffic, estimate = self._traffic(rng, 0, n, base=0)
        pilot = self._serve(traffic, self._logging_policy_scores(rng, traffic, estimate), rng)
        users = pilot["user_id"].to_numpy()
        ads = pilot["ad_id"].to_numpy()
        logit = wb.click_logit(
            self._latent,
            self.config,
            users,
            ads,
            pilot["day"].to_numpy(np.int64),
            pilot["hour"].to_numpy(np.int64),
            self._device_codes(pilot["device"]),
            self._prior_impressions(users, ads),
        )
        exam = wb.examination(self.config, pilot["position"].to_numpy())
        return wb.calibrate_intercept(logit, exam, self.config.target_ctr)

    def _check_day(self, day: int) -> None:
        if not 0 <= day < self.config.horizon:
            raise ValueError(f"day must be in 0..{self.config.horizon - 1}, got {day}")

    @staticmethod
    def _ids(frame: pd.DataFrame, column: str, n: int) -> np.ndarray:
        ids = frame[column].to_numpy(np.int64)
        if len(ids) and (ids.min() < 0 or ids.max() >= n):
            raise ValueError(f"column '{column}': ids must lie in 0..{n - 1}")
        return ids

    @staticmethod
    def _device_codes(values: pd.Series) -> np.ndarray:
        codes = pd.Index(list(DEVICES)).get_indexer(pd.Index(values)).astype(np.int64)
        if (codes < 0).any():
            bad = pd.Series(values)[codes < 0].iloc[0]
            raise ValueError(f"column 'device': unknown device {bad!r}; known: {list(DEVICES)}")
        return codes

    @staticmethod
    def _optional(frame: pd.DataFrame, column: str, n: int) -> np.ndarray:
        if column in frame:
            return frame[column].to_numpy(np.int64)
        return np.zeros(n, dtype=np.int64)


def _top_slots(
    request_id: np.ndarray, scores: np.ndarray, slots: int
) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the rows shown and their positions: the top ``slots`` scores of each request.

    Rows come back ordered by request id, then position; ties keep the input order. Ranking runs
    on a padded (requests, max candidates) matrix, so it costs a row-wise sort, not a global one.
    """
    n = len(request_id)
    if n == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    pre = np.arange(n)
    if (request_id[1:] < request_id[:-1]).any():
        pre = np.argsort(request_id, kind="stable")
    rid = request_id[pre]
    new = np.r_[True, rid[1:] != rid[:-1]]
    group = np.cumsum(new) - 1
    start = np.flatnonzero(new)
    within = np.arange(n) - start[group]
    padded = np.full((len(start), int(within.max()) + 1), np.inf)
    padded[group, within] = -scores[pre]
    ranked = np.argsort(padded, axis=1, kind="stable")[:, :slots]  # (G, slots) columns
    sizes = np.diff(np.r_[start, n])
    valid = ranked < sizes[:, None]
    groups, position = np.nonzero(valid)
    return pre[start[groups] + ranked[valid]], position
