"""The simulated city (book ch. 7): users with homes and friends, hosts, short-lived events.

A square city of ``grid × grid`` neighbourhoods. Users live near a neighbourhood's centre, have an
age, a travel mode (car or on foot), a hidden budget and hidden interests (two of which they
declared), and friends mostly in their own neighbourhood. Hosts follow a category and have a
hidden quality; users follow a few hosts. Every hour new events appear: a host's category, a
secondary tag, a place near the host, a start 6 hours to 9 days ahead, a duration, a price (free
four times in ten), a capacity and a short description. An event is a candidate while it is
open: created, not started, not full.

Each day some users open the app and see a list of ``list_len`` events chosen by the **logging
policy** (the platform's old heuristic: popularity and distance, with noise). A shown event is
registered for with probability ``p(u, e) × (position + 1)^-0.6`` (position bias), where the
world's true relevance ``p(u, e) = sigmoid(logit)`` adds up

    -1.5 - (0.12 km by car | 0.5 max(km - 2, 0) on foot) - 0.6 |ln((hours ahead + 2) / 30)|
    - 1.5 overlap + (1.4 | 0.5 for the less social categories) ln(1 + friends registered)
    + 1.2 invited + 1.0 host followed + 3 affinity(category) + 1.5 affinity(tag) - 0.8
    - 2 (price over budget) / budget - 0.1 ln(1 + price) + quality + season(category, day)
    + 0.3 weekend + 0.6 age fits category + start hour fits age (evenings young, days older)

with the hidden budget growing with age. The effects interact (travel mode and distance, age
and price, category and friends, age and hour), as a city's do.

A registration is preceded by a click (``P(click) = sigmoid(logit + 1.2)`` × position bias) and
invites each friend with probability 0.2. ``p(u, e)`` is the oracle: offline metrics are shown
next to the ranking it gives.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from mlsd.rng import rng
from mlsd.systems.event_rec.world_config import (
    CATEGORY_WORDS,
    DAY_S,
    GENERIC_WORDS,
    OLDER_CATEGORIES,
    SOCIAL_CATEGORIES,
    YOUNG_CATEGORIES,
    EventWorldConfig,
)
from mlsd.systems.event_rec.world_state import CATEGORIES, N_CATEGORIES, SocialState
from mlsd.world import Scale

log = logging.getLogger(__name__)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def position_bias(positions: np.ndarray) -> np.ndarray:
    """How much less a slot is looked at than the first one."""
    return (np.asarray(positions, dtype=np.float64) + 1.0) ** -0.6


@dataclass
class Log:
    """What the platform logged: sessions, impressions, registrations, invitations."""

    sessions: pd.DataFrame  # session_id, user_id, ts, day
    impressions: pd.DataFrame  # session_id, user_id, event_id, ts, day, position, click, ...
    registrations: pd.DataFrame  # user_id, event_id, ts, day
    invites: pd.DataFrame  # user_id (invited), event_id, ts, day


#: A ranking policy: (state, candidate pairs with user_id/event_id/ts) -> a score per pair.
Policy = Callable[[SocialState, pd.DataFrame], np.ndarray]


class EventRecWorld:
    """A deterministic (by seed) city of users, friends, hosts and short-lived events."""

    def __init__(self, scale: Scale | str, seed: int, config: EventWorldConfig | None = None):
        self.scale = Scale(scale)
        self.seed = seed
        self.config = cfg = config or EventWorldConfig.for_scale(self.scale)
        r = rng(seed, "event-rec/world/entities")
        g = cfg.grid
        cell = cfg.city_km / g
        hx, hy = np.meshgrid(np.arange(g), np.arange(g), indexing="ij")
        self.hoods = pd.DataFrame(
            {
                "hood_id": np.arange(g * g),
                "x": (hx.ravel() + 0.5) * cell,
                "y": (hy.ravel() + 0.5) * cell,
            }
        )
        n = cfg.n_users
        hood = r.integers(0, g * g, n)
        self.affinity = r.dirichlet(np.full(N_CATEGORIES, 0.5), n)
        declared = np.argsort(-self.affinity, axis=1)[:, :2]
        age = r.integers(18, 71, n)
        self.budget = np.exp(r.normal(2.3 + 0.03 * (age - 18), 0.4, n))  # older, richer
        self.activity = r.gamma(2.0, 0.5, n)
        self.users = pd.DataFrame(
            {
                "user_id": np.arange(n, dtype=np.int64),
                "hood_id": hood,
                "x": np.clip(self.hoods["x"].to_numpy()[hood] + r.normal(0, cell / 3, n), 0, None),
                "y": np.clip(self.hoods["y"].to_numpy()[hood] + r.normal(0, cell / 3, n), 0, None),
                "age": age,
                "has_car": (r.random(n) < 0.4).astype(np.int64),
                "interest_1": declared[:, 0],
                "interest_2": declared[:, 1],
            }
        )
        self.friends = self._friends(r, hood)
        h = cfg.n_hosts
        host_hood = r.integers(0, g * g, h)
        self.hosts = pd.DataFrame(
            {
                "host_id": np.arange(h, dtype=np.int64),
                "hood_id": host_hood,
                "category": r.integers(0, N_CATEGORIES, h),
            }
        )
        self.host_quality = r.normal(0.0, 0.4, h)
        self.follows = self._follows(r)
        self.events, self.event_quality = self._events(rng(seed, "event-rec/world/events"))
        self.season_phase = r.uniform(0, 2 * np.pi, N_CATEGORIES)

    # ---- entities ------------------------------------------------------------------------
    def _friends(self, r: np.random.Generator, hood: np.ndarray) -> pd.DataFrame:
        n, k = self.config.n_users, self.config.friends_per_user
        by_hood = {int(h): np.flatnonzero(hood == h) for h in np.unique(hood)}
        a, b = [], []
        lonely = r.random(n) < 0.1  # a tenth of the users have no friends on the platform
        for u in range(n):
            if lonely[u]:
                continue
            m = int(r.integers(1, k))
            local = by_hood[int(hood[u])]
            near = r.random(m) < 0.7
            picks = np.where(near, r.choice(local, m), r.integers(0, n, m))
            for v in picks:
                if v != u and not lonely[v]:
                    a.append(min(u, int(v)))
                    b.append(max(u, int(v)))
        edges = pd.DataFrame({"user_id": a, "friend_id": b}, dtype=np.int64).drop_duplicates()
        return edges.sort_values(["user_id", "friend_id"]).reset_index(drop=True)

    def _follows(self, r: np.random.Generator) -> pd.DataFrame:
        cat = self.hosts["category"].to_numpy()
        rows = []
        for u in range(self.config.n_users):
            w = self.affinity[u, cat] + 0.02
            k = int(r.integers(0, self.config.follows_per_user + 1))
            for host in r.choice(len(cat), size=k, replace=False, p=w / w.sum()):
                rows.append((u, int(host)))
        return pd.DataFrame(rows, columns=["user_id", "host_id"], dtype=np.int64)

    def _events(self, r: np.random.Generator) -> tuple[pd.DataFrame, np.ndarray]:
        cfg = self.config
        n = cfg.events_per_day * cfg.total_days
        host = r.integers(0, cfg.n_hosts, n)
        cat = self.hosts["category"].to_numpy()[host]
        tag = np.where(r.random(n) < 0.5, cat, r.integers(0, N_CATEGORIES, n))
        hood = self.hosts["hood_id"].to_numpy()[host]
        cell = cfg.city_km / cfg.grid
        created = np.sort(r.integers(0, cfg.total_days * DAY_S, n))
        lead_h = r.uniform(6, 9 * 24, n)
        start = created + (lead_h * 3600).astype(np.int64)
        start = (start // 3600) * 3600 + 3600  # on the hour
        free = r.random(n) < 0.4
        price = np.where(free, 0.0, np.round(np.exp(r.normal(2.8, 0.7, n)), 0))
        words = []
        cat_names = [CATEGORIES[c] for c in range(N_CATEGORIES)]
        for c, t in zip(cat, tag, strict=True):
            w = list(r.choice(CATEGORY_WORDS[cat_names[c]], 3, replace=False))
            w += list(r.choice(CATEGORY_WORDS[cat_names[t]], 2, replace=False))
            w += list(r.choice(GENERIC_WORDS, 2, replace=False))
            words.append(" ".join(str(x) for x in r.permutation(w)))
        events = pd.DataFrame(
            {
                "event_id": np.arange(n, dtype=np.int64),
                "host_id": host.astype(np.int64),
                "category": cat.astype(np.int64),
                "tag": tag.astype(np.int64),
                "x": self.hoods["x"].to_numpy()[hood] + r.normal(0, cell / 2, n),
                "y": self.hoods["y"].to_numpy()[hood] + r.normal(0, cell / 2, n),
                "created_ts": created.astype(np.int64),
                "start_ts": start.astype(np.int64),
                "duration_h": r.integers(1, 5, n).astype(np.int64),
                "price": price,
                "capacity": r.integers(15, 200, n).astype(np.int64),
                "description": words,
            }
        )
        quality = self.host_quality[host] + r.normal(0.0, 0.5, n)
        return events, quality

    # ---- behaviour -----------------------------------------------------------------------
    def state(self, ts: int, registrations: pd.DataFrame, invites: pd.DataFrame) -> SocialState:
        return SocialState.build(
            ts,
            self.config.n_users,
            self.events,
            self.friends,
            self.follows,
            self.config.n_hosts,
            registrations,
            invites,
            self.config.n_slots,
        )

    def logit(self, state: SocialState, u: np.ndarray, e: np.ndarray, ts: np.ndarray) -> np.ndarray:
        """The world's true registration logit of user ``u`` for event ``e`` at ``ts``."""
        users, ev = self.users, self.events
        dx = users["x"].to_numpy()[u] - ev["x"].to_numpy()[e]
        dy = users["y"].to_numpy()[u] - ev["y"].to_numpy()[e]
        km = np.hypot(dx, dy)
        car = users["has_car"].to_numpy()[u] == 1
        start = ev["start_ts"].to_numpy()[e]
        hours = np.maximum(start - ts, 0) / 3600.0
        cat = ev["category"].to_numpy()[e]
        tag = ev["tag"].to_numpy()[e]
        price = ev["price"].to_numpy()[e]
        budget = self.budget[u]
        age = users["age"].to_numpy()[u]
        day = ts / DAY_S
        season = 0.6 * np.sin(
            2 * np.pi * day / (2 * self.config.total_days) + self.season_phase[cat]
        )
        weekend = ((start // DAY_S) % 7 >= 5).astype(np.float64)
        age_fit = ((age < 30) & np.isin(cat, YOUNG_CATEGORIES)) | (
            (age > 45) & np.isin(cat, OLDER_CATEGORIES)
        )
        host = ev["host_id"].to_numpy()[e]
        hour = (start % DAY_S) // 3600
        evening = hour >= 19
        daytime = (hour >= 10) & (hour <= 17)
        hour_fit = np.where(age < 35, 0.6 * evening - 0.3 * daytime, 0.0) + np.where(
            age >= 50, 0.5 * daytime - 0.8 * (hour >= 21), 0.0
        )
        social_cat = np.isin(cat, SOCIAL_CATEGORIES)
        friends = np.log1p(state.pair_lookup(state.friends_registered, u, e))
        return (
            -1.5
            - np.where(car, 0.12 * km, 0.5 * np.maximum(km - 2.0, 0.0))
            - 0.6 * np.abs(np.log((hours + 2.0) / 30.0))
            - 1.5 * state.overlap(u, start, ev["duration_h"].to_numpy()[e])
            + np.where(social_cat, 1.4, 0.5) * friends
            + 1.2 * state.pair_lookup(state.invited, u, e)
            + 1.0 * state.pair_lookup(state.follows, u, host)
            + 3.0 * self.affinity[u, cat]
            + 1.5 * self.affinity[u, tag]
            - 0.8
            - 2.0 * np.maximum(price - budget, 0.0) / budget
            - 0.1 * np.log1p(price)
            + self.event_quality[e]
            + season
            + 0.3 * weekend
            + 0.6 * age_fit
            + hour_fit
        )

    def p_register(
        self, state: SocialState, u: np.ndarray, e: np.ndarray, ts: np.ndarray
    ) -> np.ndarray:
        """The oracle: P(register | shown at the top)."""
        return np.asarray(_sigmoid(self.logit(state, u, e, ts)))

    def sessions(self, day: int) -> pd.DataFrame:
        """The users who open the app on ``day`` (one session each) and when."""
        cfg = self.config
        r = rng(self.seed, f"event-rec/world/sessions/{day}")
        k = min(cfg.sessions_per_day, cfg.n_users)
        p = self.activity / self.activity.sum()
        users = np.sort(r.choice(cfg.n_users, size=k, replace=False, p=p))
        ts = day * DAY_S + r.integers(8 * 3600, 23 * 3600, k)
        return pd.DataFrame({"user_id": users.astype(np.int64), "ts": ts.astype(np.int64)})

    def candidates(self, state: SocialState, sessions: pd.DataFrame) -> pd.DataFrame:
        """Every open event for every session: created, not started, not full, not already
        registered for. Columns ``session``, ``user_id``, ``event_id``, ``ts``."""
        ev = self.events
        ts = sessions["ts"].to_numpy(np.int64)
        lo, hi = int(ts.min()), int(ts.max())
        created = ev["created_ts"].to_numpy()
        start = ev["start_ts"].to_numpy()
        open_ = np.flatnonzero(
            (created <= hi) & (start > lo) & (state.event_regs < ev["capacity"].to_numpy())
        )
        ok = (created[open_][None, :] <= ts[:, None]) & (start[open_][None, :] > ts[:, None])
        s_idx, j = np.nonzero(ok)
        u = sessions["user_id"].to_numpy(np.int64)[s_idx]
        e = open_[j]
        fresh = state.pair_lookup(state.R, u, e) == 0
        return pd.DataFrame(
            {
                "session": s_idx[fresh],
                "user_id": u[fresh],
                "event_id": e[fresh],
                "ts": ts[s_idx[fresh]],
            }
        )

    def simulate(
        self,
        days: range,
        policy: Policy,
        purpose: str,
        registrations: pd.DataFrame | None = None,
        invites: pd.DataFrame | None = None,
        progress: Callable[[str, float, float], None] | None = None,
    ) -> Log:
        """Run ``days``: sessions, the policy's lists, clicks, bookmarks, registrations and
        invitations, each day's lists ranked by ``policy`` (scores of the candidate pairs)."""
        cfg = self.config
        regs = registrations if registrations is not None else _empty_regs()
        invs = invites if invites is not None else _empty_regs()
        sessions_out, shown_out, new_regs, new_invs = [], [], [regs], [invs]
        n_sessions = 0
        friends_of = _adjacency(self.friends, cfg.n_users)
        for i, day in enumerate(days):
            r = rng(self.seed, f"event-rec/{purpose}/day/{day}")
            state = self.state(day * DAY_S, regs, invs)
            sess = self.sessions(day)
            sess["session_id"] = np.arange(len(sess)) + n_sessions
            sess["day"] = day
            n_sessions += len(sess)
            cand = self.candidates(state, sess)
            if len(cand) == 0:
                continue
            score = np.asarray(policy(state, cand), dtype=np.float64)
            cand = cand.assign(score=score)
            cand = cand.sort_values(["session", "score"], ascending=[True, False], kind="stable")
            cand["position"] = cand.groupby("session").cumcount()
            shown = cand[cand["position"] < cfg.list_len].reset_index(drop=True)
            u = shown["user_id"].to_numpy(np.int64)
            e = shown["event_id"].to_numpy(np.int64)
            ts = shown["ts"].to_numpy(np.int64)
            logit = self.logit(state, u, e, ts)
            bias = position_bias(shown["position"].to_numpy())
            p_rel = _sigmoid(logit)
            p_click = _sigmoid(logit + 1.2)
            click = r.random(len(shown)) < bias * p_click
            register = click & (r.random(len(shown)) < p_rel / p_click)
            bookmark = click & ~register & (r.random(len(shown)) < 0.3 * _sigmoid(logit + 0.5))
            shown = shown.assign(
                session_id=sess["session_id"].to_numpy()[shown["session"].to_numpy()],
                day=day,
                click=click.astype(np.int8),
                bookmark=bookmark.astype(np.int8),
                register=register.astype(np.int8),
                p_true=p_rel,
            ).drop(columns=["session"])
            shown_out.append(shown)
            sessions_out.append(sess[["session_id", "user_id", "ts", "day"]])
            reg = shown.loc[register, ["user_id", "event_id", "ts", "day"]]
            inv_rows = []
            for uu, ee, tt in zip(reg["user_id"], reg["event_id"], reg["ts"], strict=True):
                fr = friends_of[int(uu)]
                for f in fr[r.random(len(fr)) < 0.2]:
                    inv_rows.append((int(f), int(ee), int(tt), day))
            inv = pd.DataFrame(inv_rows, columns=["user_id", "event_id", "ts", "day"])
            regs = pd.concat([regs, reg], ignore_index=True)
            invs = pd.concat([invs, inv.astype(np.int64)], ignore_index=True)
            new_regs.append(reg)
            new_invs.append(inv)
            if progress is not None:
                progress(f"simulating {purpose}", i + 1, len(days))
        return Log(
            sessions=pd.concat(sessions_out, ignore_index=True),
            impressions=pd.concat(shown_out, ignore_index=True),
            registrations=regs.reset_index(drop=True).astype(np.int64),
            invites=invs.reset_index(drop=True).astype(np.int64),
        )

    def logging_policy(self) -> Policy:
        """The platform's old heuristic: popular and near, with noise (the log's selection)."""
        r = rng(self.seed, "event-rec/world/logging-policy")

        def score(state: SocialState, cand: pd.DataFrame) -> np.ndarray:
            u = cand["user_id"].to_numpy(np.int64)
            e = cand["event_id"].to_numpy(np.int64)
            km = np.hypot(
                self.users["x"].to_numpy()[u] - self.events["x"].to_numpy()[e],
                self.users["y"].to_numpy()[u] - self.events["y"].to_numpy()[e],
            )
            return np.asarray(
                0.4 * np.log1p(state.event_regs[e]) - 0.12 * km + r.gumbel(0, 1, len(u))
            )

        return score

    def log(self, progress: Callable[[str, float, float], None] | None = None) -> Log:
        """The logged days, under the logging policy."""
        return self.simulate(
            range(self.config.n_days), self.logging_policy(), "log", progress=progress
        )


def _empty_regs() -> pd.DataFrame:
    return pd.DataFrame(
        {c: pd.Series(dtype=np.int64) for c in ("user_id", "event_id", "ts", "day")}
    )


def _adjacency(friends: pd.DataFrame, n: int) -> list[np.ndarray]:
    a = friends["user_id"].to_numpy(np.int64)
    b = friends["friend_id"].to_numpy(np.int64)
    src, dst = np.r_[a, b], np.r_[b, a]
    order = np.argsort(src, kind="stable")
    bounds = np.searchsorted(src[order], np.arange(n + 1))
    d = dst[order]
    return [d[bounds[i] : bounds[i + 1]] for i in range(n)]
