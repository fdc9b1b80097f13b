"""The simulated social network: users, hidden communities, friendships formed day by day.

Users have a school, an employer, a city, an age and a join day (what the platform knows), and a
hidden community and activity level (what only the world knows). Every simulated day each
present user makes a Poisson number of *meetings* (activity × ``meetings_per_day``); a meeting
reaches a friend of a friend (triadic closure: a random friend, then one of their friends), a
random member of one of the user's groups (school, employer or city: geography and homophily)
or a random user. A met pair becomes friends when a request is sent (probability
``σ(send logit)``) and accepted (``σ(accept logit)``); both logits grow with a shared community,
shared attributes and mutual friends and fall with the age gap. New users join daily with no
friends (the cold start).

Because every probability is the world's own, it knows each pair's true daily rate of becoming
friends given the graph (:meth:`PymkWorld.oracle_rate`): the oracle the offline evaluation ranks
with. The A/B test asks it how users respond to a shown list (:meth:`PymkWorld.respond`).
All draws come from named streams (``rng(seed, "pymk/...")``); a day is vectorised over users.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import cached_property

import numpy as np
import pandas as pd
import scipy.sparse as sp

from mlsd.rng import rng
from mlsd.world import Scale

log = logging.getLogger(__name__)

GROUPS = ("school", "employer", "city")
PUBLIC_COLUMNS = ("user_id", "school", "employer", "city", "age", "join_day")


@dataclass(frozen=True)
class PymkConfig:
    n_initial: int
    n_days: int
    new_per_day: int
    n_communities: int
    n_schools: int
    n_employers: int
    n_cities: int
    meetings_per_day: float = 2.0
    window: int = 5  # Δ: the label window (days) of the time split
    p_fof: float = 0.55
    p_group: float = 0.35  # the rest is a random user

    @classmethod
    def for_scale(cls, scale: Scale) -> PymkConfig:
        if scale == Scale.TINY:
            return cls(300, 16, 8, 8, 20, 25, 6, meetings_per_day=3.0, window=4)
        if scale == Scale.SMALL:
            return cls(40_000, 30, 400, 500, 1500, 2500, 60, window=5)
        if scale == Scale.MEDIUM:
            return cls(400_000, 30, 4000, 5000, 15_000, 25_000, 300, window=5)
        return cls(2_000_000, 30, 20_000, 25_000, 75_000, 125_000, 1000, window=5)

    def with_(self, **changes: int | float) -> PymkConfig:
        return replace(self, **changes)  # type: ignore[arg-type]

    @property
    def n_users(self) -> int:
        return self.n_initial + self.new_per_day * (self.n_days - 1)


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def adjacency(
    n: int, u: np.ndarray, v: np.ndarray, values: np.ndarray | None = None
) -> sp.csr_matrix:
    """The symmetric ``n × n`` CSR matrix of the undirected edges ``(u, v)``."""
    vals = np.ones(len(u), np.float32) if values is None else values.astype(np.float32)
    m = sp.coo_matrix(
        (np.concatenate([vals, vals]), (np.concatenate([u, v]), np.concatenate([v, u]))),
        shape=(n, n),
    ).tocsr()
    m.sum_duplicates()
    return m


def pair_dot(
    a: sp.csr_matrix, b: sp.csr_matrix, u: np.ndarray, v: np.ndarray, chunk: int = 200_000
) -> np.ndarray:
    """``Σ_j a[u, j] · b[v, j]`` for every pair, in chunks (mutual friends when a = b = A)."""
    out = np.zeros(len(u), np.float64)
    for s in range(0, len(u), chunk):
        uu, vv = u[s : s + chunk], v[s : s + chunk]
        out[s : s + chunk] = np.asarray(a[uu].multiply(b[vv]).sum(axis=1)).ravel()
    return out


class PymkWorld:
    """The growing social network of ``scale`` (deterministic by ``seed``)."""

    def __init__(self, scale: Scale, seed: int, config: PymkConfig | None = None) -> None:
        self.scale = scale
        self.seed = seed
        self.config = config or PymkConfig.for_scale(scale)
        self.users = self._make_users()
        self.sent_per_day: list[int] = []
        self.accepted_per_day: list[int] = []

    # ---- entities ------------------------------------------------------------------------
    def _make_users(self) -> pd.DataFrame:
        c = self.config
        r = rng(self.seed, "pymk/users")
        n = c.n_users
        comm = r.integers(0, c.n_communities, n)
        comm_school = r.integers(0, c.n_schools, (c.n_communities, 3))
        comm_emp = r.integers(0, c.n_employers, (c.n_communities, 3))
        comm_city = r.integers(0, c.n_cities, c.n_communities)
        comm_age = r.uniform(18, 60, c.n_communities)

        def pick(pool: np.ndarray, share: float, size: int) -> np.ndarray:
            own = pool[comm, r.integers(0, pool.shape[1], n)] if pool.ndim == 2 else pool[comm]
            return np.where(r.random(n) < share, own, r.integers(0, size, n))

        join = np.concatenate(
            [
                np.zeros(c.n_initial, np.int32),
                np.repeat(np.arange(1, c.n_days, dtype=np.int32), c.new_per_day),
            ]
        )
        activity = r.lognormal(0.0, 0.6, n)
        return pd.DataFrame(
            {
                "user_id": np.arange(n, dtype=np.int64),
                "school": pick(comm_school, 0.7, c.n_schools).astype(np.int64),
                "employer": pick(comm_emp, 0.5, c.n_employers).astype(np.int64),
                "city": pick(comm_city, 0.8, c.n_cities).astype(np.int64),
                "age": np.clip(comm_age[comm] + r.normal(0, 4, n), 13, 80).round().astype(np.int32),
                "join_day": join,
                "community": comm.astype(np.int64),  # hidden
                "activity": (activity / activity.mean()).astype(np.float64),  # hidden
            }
        )

    @property
    def public_users(self) -> pd.DataFrame:
        """What the platform knows of its users (no community, no activity)."""
        return self.users[list(PUBLIC_COLUMNS)].copy()

    # ---- the world's probabilities --------------------------------------------------------
    def _attrs(self, u: np.ndarray, v: np.ndarray) -> dict[str, np.ndarray]:
        us = self.users
        out = {
            k: (us[k].to_numpy()[u] == us[k].to_numpy()[v]).astype(np.float64)
            for k in ("community", *GROUPS)
        }
        age = us["age"].to_numpy()
        out["gap"] = np.abs(age[u] - age[v]) / 10.0
        return out

    def p_send(self, u: np.ndarray, v: np.ndarray, mutual: np.ndarray) -> np.ndarray:
        a = self._attrs(u, v)
        logit = (
            -0.5
            + 1.6 * a["community"]
            + 0.8 * a["school"]
            + 0.6 * a["employer"]
            + 0.5 * a["city"]
            - 0.6 * a["gap"]
            + 0.5 * np.log1p(mutual)
        )
        return sigmoid(logit)

    def p_accept(self, u: np.ndarray, v: np.ndarray, mutual: np.ndarray) -> np.ndarray:
        a = self._attrs(u, v)
        logit = (
            -0.6
            + 1.2 * a["community"]
            + 0.5 * a["school"]
            + 0.4 * a["employer"]
            + 0.3 * a["city"]
            - 0.4 * a["gap"]
            + 0.6 * np.log1p(mutual)
        )
        return sigmoid(logit)

    def _group_tables(
        self, present: np.ndarray
    ) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """Per group kind: present users sorted by group, each group's start and size."""
        out = {}
        ids = np.flatnonzero(present)
        for k in GROUPS:
            g = self.users[k].to_numpy()
            order = ids[np.argsort(g[ids], kind="stable")]
            size = np.bincount(g[ids], minlength=int(g.max()) + 1)
            start = np.concatenate([[0], np.cumsum(size)[:-1]])
            out[k] = (order, start, size)
        return out

    def oracle_rate(
        self, adj: sp.csr_matrix, present: np.ndarray, u: np.ndarray, v: np.ndarray
    ) -> np.ndarray:
        """The world's true expected number of new friendships per day between ``u`` and ``v``
        given the graph ``adj`` (both directions of meeting)."""
        c = self.config
        deg = np.asarray(adj.sum(axis=1)).ravel()
        inv = sp.diags(np.where(deg > 0, 1.0 / np.maximum(deg, 1), 0.0)).tocsr()
        a_scaled = (adj @ inv).tocsr()  # A[w, v] / deg_w seen from the column side
        groups = self._group_tables(present)
        n_present = max(int(present.sum()), 1)
        mutual = pair_dot(adj, adj, u, v)
        both = self.p_send(u, v, mutual) * self.p_accept(v, u, mutual)
        act = self.users["activity"].to_numpy()
        total = np.zeros(len(u))
        for a, b in ((u, v), (v, u)):
            has = deg[a] > 0
            fof = np.where(has, pair_dot(adj, a_scaled, a, b) / np.maximum(deg[a], 1), 0.0)
            grp = sum(
                (self.users[k].to_numpy()[a] == self.users[k].to_numpy()[b])
                / np.maximum(groups[k][2][self.users[k].to_numpy()[a]], 1)
                for k in GROUPS
            ) / len(GROUPS)
            p_grp = np.where(has, c.p_group, c.p_group + c.p_fof)
            meet = c.p_fof * fof + p_grp * grp + (1 - c.p_fof - c.p_group) / n_present
            total += act[a] * c.meetings_per_day * meet * both
        return total

    # ---- the simulation ---------------------------------------------------------------------
    @cached_property
    def edges(self) -> pd.DataFrame:
        """Every friendship the world formed: ``u < v`` and the day it formed, in day order."""
        c = self.config
        n = c.n_users
        join = self.users["join_day"].to_numpy()
        act = self.users["activity"].to_numpy()
        keys = np.zeros(0, np.int64)  # u * n + v of every edge so far (u < v), sorted
        eu, ev, ed = [np.zeros(0, np.int64)], [np.zeros(0, np.int64)], [np.zeros(0, np.int32)]
        for day in range(c.n_days):
            r = rng(self.seed, f"pymk/day/{day}")
            present = join <= day
            adj = adjacency(n, np.concatenate(eu), np.concatenate(ev))
            deg = np.diff(adj.indptr)
            ids = np.flatnonzero(present)
            k = r.poisson(act[ids] * c.meetings_per_day)
            src = np.repeat(ids, k)
            dst = self._meet(r, adj, deg, present, src)
            ok = (dst >= 0) & (dst != src)
            src, dst = src[ok], dst[ok]
            lo, hi = np.minimum(src, dst), np.maximum(src, dst)
            key = lo * n + hi
            key, first = np.unique(key, return_index=True)
            src, dst = src[first], dst[first]
            new = ~np.isin(key, keys, assume_unique=True)
            src, dst, key = src[new], dst[new], key[new]
            mutual = pair_dot(adj, adj, src, dst) if len(src) else np.zeros(0)
            sent = r.random(len(src)) < self.p_send(src, dst, mutual)
            accepted = sent & (r.random(len(src)) < self.p_accept(dst, src, mutual))
            self.sent_per_day.append(int(sent.sum()))
            self.accepted_per_day.append(int(accepted.sum()))
            key = key[accepted]
            eu.append(key // n)
            ev.append(key % n)
            ed.append(np.full(len(key), day, np.int32))
            keys = np.union1d(keys, key)
        edges = pd.DataFrame(
            {"u": np.concatenate(eu), "v": np.concatenate(ev), "day": np.concatenate(ed)}
        )
        log.info("pymk world: %d users, %d friendships over %d days", n, len(edges), c.n_days)
        return edges

    def _meet(
        self,
        r: np.random.Generator,
        adj: sp.csr_matrix,
        deg: np.ndarray,
        present: np.ndarray,
        src: np.ndarray,
    ) -> np.ndarray:
        """Whom each meeting of ``src`` reaches (-1: nobody)."""
        c = self.config
        m = len(src)
        kind = r.random(m)
        dst = np.full(m, -1, np.int64)
        # friends of friends (users without friends meet a group member instead)
        fof = (kind < c.p_fof) & (deg[src] > 0)
        s = src[fof]
        w = adj.indices[adj.indptr[s] + (r.random(len(s)) * deg[s]).astype(np.int64)]
        v = adj.indices[adj.indptr[w] + (r.random(len(w)) * deg[w]).astype(np.int64)]
        dst[fof] = v
        grp = ~fof & (kind < c.p_fof + c.p_group)
        grp |= (kind < c.p_fof) & (deg[src] == 0)
        tables = self._group_tables(present)
        which = r.integers(0, len(GROUPS), m)
        for j, k in enumerate(GROUPS):
            sel = grp & (which == j)
            order, start, size = tables[k]
            g = self.users[k].to_numpy()[src[sel]]
            pos = start[g] + (r.random(len(g)) * size[g]).astype(np.int64)
            dst[sel] = order[pos]
        rnd = ~fof & ~grp
        ids = np.flatnonzero(present)
        dst[rnd] = ids[r.integers(0, len(ids), int(rnd.sum()))]
        return dst

    # ---- the A/B test: how users respond to a shown list ----------------------------------
    def respond(
        self,
        adj: sp.csr_matrix,
        users: np.ndarray,
        shown: np.ndarray,
        position: np.ndarray,
        purpose: str,
    ) -> tuple[np.ndarray, np.ndarray]:
        """For each shown (user, candidate, position): was a request sent, and accepted?
        Attention decays with the position; the probabilities are the world's own."""
        r = rng(self.seed, f"pymk/respond/{purpose}")
        mutual = pair_dot(adj, adj, users, shown)
        attention = 0.6 / (1.0 + 0.25 * position)
        sent = r.random(len(users)) < attention * self.p_send(users, shown, mutual)
        accepted = sent & (r.random(len(users)) < self.p_accept(shown, users, mutual))
        return sent, accepted


ProgressFn = Callable[[str, float, float], None]
