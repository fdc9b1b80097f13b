"""The simulated video platform (book ch. 6): sessions, position bias, freshness, a logging policy.

Each day some users open the app and get one session: a slate of ``slate`` videos chosen by the
*logging policy* (the platform's previous heuristic system: recent popularity, the user's
category history and freshness, with noise), so the training log carries its selection bias.
A shown video is clicked with the world's true probability

    P(click) = sigmoid(-3 + 5 a(u,v) + 1.5 (quality - 0.57) + 0.8 fresh - 0.15 log duration)
               × (position + 1)^-0.6,

with ``a`` the affinity of the user's latent taste and the video's latent vector and ``fresh`` an
exponential decay of the video's age; a re-watch is five times less likely. A click is followed
by a watch fraction around ``sigmoid(-0.5 + 3 a + 2 (quality - 0.57))``. New users and videos
arrive every day and tastes drift. The world knows every user's expected watch minutes for every
video: the oracle that offline metrics are shown next to.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import numpy as np
import pandas as pd

from mlsd.rng import rng
from mlsd.systems.video_rec.world_entities import (
    VideoWorldConfig,
    make_latents,
    make_users,
    make_videos,
    unit_rows,
)
from mlsd.world import Scale

log = logging.getLogger(__name__)

REWATCH_FACTOR = 0.2


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def position_bias(positions: np.ndarray) -> np.ndarray:
    """How much less a slot is looked at than the first one."""
    return (np.asarray(positions, dtype=np.float64) + 1.0) ** -0.6


class VideoRecWorld:
    """A deterministic (by seed) video platform: entities, daily sessions, ground truth."""

    def __init__(self, scale: Scale | str, seed: int, config: VideoWorldConfig | None = None):
        self.scale = Scale(scale)
        self.seed = seed
        self.config = config or VideoWorldConfig.for_scale(self.scale)
        cfg = self.config
        self.n_days = cfg.n_days
        self._rng = rng(seed, "video-rec/world")
        self.latents = make_latents(cfg, self._rng)
        self.users, self.taste = make_users(cfg.n_users, 0, 0, self.latents, self._rng)
        self.users["signup_day"] = self._rng.integers(-60, 1, cfg.n_users).astype(np.int32)
        self.videos, self.video_latent = make_videos(cfg.n_videos, 0, 0, self.latents, self._rng)
        self.videos["upload_day"] = self._rng.integers(-30, 1, cfg.n_videos).astype(np.int32)
        self.day = 0
        self.views = np.zeros(cfg.n_videos)  # clicks per video, decayed daily (trending)
        self.user_cat = np.zeros((cfg.n_users, cfg.n_categories))  # the policy's history counts
        self.watched: dict[int, set[int]] = {}
        self._cat_index = {c: i for i, c in enumerate(pd.unique(self.videos["category"]))}
        self._names = list(self._cat_index)

    # ---- ground truth -------------------------------------------------------------------
    def affinity(self, users: np.ndarray, videos: np.ndarray) -> np.ndarray:
        """Latent taste · video vector for aligned index arrays (any equal shapes)."""
        return np.einsum("...d,...d->...", self.taste[users], self.video_latent[videos])

    def _content(self, videos: np.ndarray, day: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        v = self.videos
        q = v["quality"].to_numpy()[videos] - 0.57
        fresh = np.exp(-np.maximum(day - v["upload_day"].to_numpy()[videos], 0) / 3.0)
        dur = v["duration_min"].to_numpy()[videos]
        return q, fresh, dur

    def p_click(
        self, users: np.ndarray, videos: np.ndarray, day: int, positions: np.ndarray | int = 0
    ) -> np.ndarray:
        """The true click probability of each (user, video, position), re-watches damped."""
        users, videos = np.broadcast_arrays(np.asarray(users), np.asarray(videos))
        q, fresh, dur = self._content(videos, day)
        logit = -3.0 + 5.0 * self.affinity(users, videos) + 1.5 * q + 0.8 * fresh
        p = _sigmoid(logit - 0.15 * np.log(dur)) * position_bias(np.asarray(positions))
        seen = self._seen_mask(users, videos)
        return np.where(seen, p * REWATCH_FACTOR, p)

    def watch_fraction(self, users: np.ndarray, videos: np.ndarray) -> np.ndarray:
        """The expected share of a video watched after a click."""
        q, _, dur = self._content(videos, self.day)
        base = _sigmoid(-0.5 + 3.0 * self.affinity(users, videos) + 2.0 * q)
        return base * (1.0 - 0.25 * np.tanh(dur / 30.0))

    def expected_watch_minutes(self, users: np.ndarray, videos: np.ndarray) -> np.ndarray:
        """Oracle score: P(click at the top slot) × E[watch fraction] × duration."""
        users, videos = np.broadcast_arrays(np.asarray(users), np.asarray(videos))
        dur = self.videos["duration_min"].to_numpy()[videos]
        p = self.p_click(users, videos, self.day)
        return p * self.watch_fraction(users, videos) * dur

    def _seen_mask(self, users: np.ndarray, videos: np.ndarray) -> np.ndarray:
        if not self.watched:
            return np.zeros(users.shape, dtype=bool)
        flat_u, flat_v = users.ravel(), videos.ravel()
        out = np.zeros(flat_u.size, dtype=bool)
        for uid in np.unique(flat_u):
            seen = self.watched.get(int(uid))
            if seen:
                idx = np.flatnonzero(flat_u == uid)
                out[idx] = np.isin(flat_v[idx], np.fromiter(seen, dtype=np.int64))
        return out.reshape(users.shape)

    # ---- behaviour ----------------------------------------------------------------------
    def serve(
        self, users: np.ndarray, slates: np.ndarray, rng: np.random.Generator, record: bool = False
    ) -> tuple[np.ndarray, np.ndarray]:
        """Users react to slates ``(A, K)`` of video ids: ``(clicks, watch_minutes)``, both (A, K).

        ``record=True`` adds the clicks to the users' watch history (the logged days do).
        """
        users_2d = np.repeat(np.asarray(users)[:, None], slates.shape[1], axis=1)
        pos = np.arange(slates.shape[1])[None, :]
        p = self.p_click(users_2d, slates, self.day, pos)
        clicks = rng.random(p.shape) < p
        frac = self.watch_fraction(users_2d, slates)
        frac = np.clip(frac + 0.15 * rng.normal(size=p.shape), 0.02, 1.0)
        minutes = np.where(clicks, frac * self.videos["duration_min"].to_numpy()[slates], 0.0)
        if record:
            for a, k in zip(*np.nonzero(clicks), strict=True):
                self.watched.setdefault(int(users[a]), set()).add(int(slates[a, k]))
        return clicks, minutes

    def logging_slates(self, users: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """The previous production system's slates: popularity + history category + freshness."""
        v = self.videos
        eligible = np.flatnonzero(v["upload_day"].to_numpy() <= self.day)
        cats = v["category"].map(self._cat_index).to_numpy()[eligible]
        _, fresh, _ = self._content(eligible, self.day)
        hist = self.user_cat[users]
        hist = hist / np.maximum(hist.sum(axis=1, keepdims=True), 1.0)
        score = (
            0.6 * np.log1p(self.views[eligible])[None, :]
            + 3.0 * hist[:, cats]
            + 0.5 * fresh[None, :]
            + rng.gumbel(size=(len(users), len(eligible)))
        )
        k = self.config.slate
        top = np.argpartition(-score, k, axis=1)[:, :k]
        order = np.argsort(-np.take_along_axis(score, top, axis=1), axis=1)
        return eligible[np.take_along_axis(top, order, axis=1)]

    # ---- time ---------------------------------------------------------------------------
    def advance_day(self) -> None:
        """Next day: tastes drift, trending decays, new users and videos arrive."""
        cfg = self.config
        self.day += 1
        self.taste = unit_rows(self.taste + cfg.drift * self._rng.normal(size=self.taste.shape))
        self.views *= 0.7
        users, taste = make_users(
            cfg.new_users_per_day, len(self.users), self.day, self.latents, self._rng
        )
        videos, latent = make_videos(
            cfg.new_videos_per_day, len(self.videos), self.day, self.latents, self._rng
        )
        self.users = pd.concat([self.users, users], ignore_index=True)
        self.taste = np.vstack([self.taste, taste])
        self.user_cat = np.vstack([self.user_cat, np.zeros((len(users), cfg.n_categories))])
        self.videos = pd.concat([self.videos, videos], ignore_index=True)
        self.video_latent = np.vstack([self.video_latent, latent])
        self.views = np.concatenate([self.views, np.zeros(len(videos))])

    def active_users(self, rng: np.random.Generator) -> np.ndarray:
        """The users who open the app today (signed up by today)."""
        signed = np.flatnonzero(self.users["signup_day"].to_numpy() <= self.day)
        return signed[rng.random(len(signed)) < self.config.p_active]

    def iter_log(self) -> Iterator[pd.DataFrame]:
        """The logged impressions under the logging policy, one day at a time."""
        n_imp = 0
        for day in range(self.n_days):
            if day > 0:
                self.advance_day()
            users = self.active_users(self._rng)
            slates = self.logging_slates(users, self._rng)
            p_true = self.p_click(
                np.repeat(users[:, None], slates.shape[1], 1),
                slates,
                self.day,
                np.arange(slates.shape[1])[None, :],
            )
            clicks, minutes = self.serve(users, slates, self._rng, record=True)
            k = slates.shape[1]
            n = slates.size
            cats = self.videos["category"].map(self._cat_index).to_numpy()
            np.add.at(self.views, slates[clicks], 1.0)
            np.add.at(self.user_cat, (np.repeat(users, k)[clicks.ravel()], cats[slates[clicks]]), 1)
            dur = self.videos["duration_min"].to_numpy()[slates]
            yield pd.DataFrame(
                {
                    "impression_id": np.arange(n_imp, n_imp + n, dtype=np.int64),
                    "day": np.full(n, day, dtype=np.int32),
                    "session_id": np.repeat(np.arange(len(users)) + day * 10_000_000, k),
                    "user_id": np.repeat(users, k).astype(np.int64),
                    "video_id": slates.ravel().astype(np.int64),
                    "position": np.tile(np.arange(k, dtype=np.int8), len(users)),
                    "click": clicks.ravel().astype(np.int8),
                    "watch_min": minutes.ravel(),
                    "watch_frac": (minutes / dur).ravel(),
                    "p_true": p_true.ravel(),
                }
            )
            n_imp += n

    def log(self) -> pd.DataFrame:
        return pd.concat(list(self.iter_log()), ignore_index=True)

    # ---- evaluation ---------------------------------------------------------------------
    def eligible_videos(self) -> np.ndarray:
        return np.flatnonzero(self.videos["upload_day"].to_numpy() <= self.day)

    def relevance_sample(
        self, users: np.ndarray, rng: np.random.Generator
    ) -> tuple[dict[int, dict[int, float]], np.ndarray]:
        """What each user would watch today if shown every unwatched video at the top slot.

        Returns ``(relevance, oracle)``: per user the sampled watched videos with their minutes
        (the graded held-out truth), and the ``(len(users), n_videos)`` matrix of expected watch
        minutes (the oracle ranking; watched and not-yet-uploaded videos at -inf).
        """
        vids = np.arange(len(self.videos))
        eligible = self.videos["upload_day"].to_numpy() <= self.day
        rel: dict[int, dict[int, float]] = {}
        oracle = np.full((len(users), len(vids)), -np.inf)
        for i, u in enumerate(users):
            p = self.p_click(np.full(len(vids), u), vids, self.day)
            exp_min = self.expected_watch_minutes(np.full(len(vids), u), vids)
            ok = eligible & ~np.isin(vids, np.fromiter(self.watched.get(int(u), ()), np.int64))
            oracle[i, ok] = exp_min[ok]
            hit = ok & (rng.random(len(vids)) < p)
            frac = self.watch_fraction(np.full(len(vids), u), vids)
            minutes = frac * self.videos["duration_min"].to_numpy()
            rel[int(u)] = {int(v): float(minutes[v]) for v in np.flatnonzero(hit)}
        return rel, oracle
