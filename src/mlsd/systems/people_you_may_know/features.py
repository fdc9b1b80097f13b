"""Step 3 for people you may know: the point-in-time graph, candidate generation, pair features.

* :class:`Snapshot` is the graph **as of the start of day t**: the users who joined before ``t``
  and only the friendships formed strictly before ``t`` (an edge of the label window ``[t, t+Δ)``
  can never reach a feature; ``tests/unit/systems/people_you_may_know`` proves it).
* :func:`candidates` cuts the all-pairs problem to about a hundred pairs per user: friends of
  friends (``A[u] @ A``), the top ``n_fof`` by a cheap first-stage priority (mutual friends plus
  :data:`GROUP_BONUS` per shared school, employer and city: weights chosen on the training
  window), plus a seeded sample of people from the same school, employer and city (what a user
  with no friends yet can get).
* :func:`pair_features` computes the chapter's features of each (user, candidate) pair, every one
  a ``d_*`` column (:mod:`mlsd.models` convention): mutual friends, time-discounted mutual friends,
  Jaccard, Adamic–Adar, resource allocation, preferential attachment, both degrees and recent
  activity (friendships made in the last week), same school / employer / city and how small the
  shared groups are, age gap, both account ages.

The offline training pairs and the batch serving job run the same functions on a snapshot of a
different day, so training and serving cannot drift apart.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from mlsd.rng import rng
from mlsd.systems.people_you_may_know.world import GROUPS, adjacency, pair_dot

#: The first stage's priority of a friend of a friend: mutual friends + these per shared group
#: (chosen on the small world's *training* window: recall of next-period friendships at 100
#: candidates 0.611 by mutual friends alone, 0.659 with these).
GROUP_BONUS = {"school": 2.0, "employer": 2.0, "city": 1.0}
RECENT_DAYS = 7
TAU_DAYS = 7.0  # the time discount of an edge: exp(-age / τ)
FEATURES = (
    "d_mutual",
    "d_td_mutual",
    "d_jaccard",
    "d_adamic_adar",
    "d_resource_alloc",
    "d_pref_attach",
    "d_deg_u",
    "d_deg_v",
    "d_recent_u",
    "d_recent_v",
    "d_same_school",
    "d_same_employer",
    "d_same_city",
    "d_group_rate",
    "d_age_gap",
    "d_account_age_u",
    "d_account_age_v",
)


@dataclass(frozen=True)
class Snapshot:
    """The graph as of the start of ``day``: edges with ``day < t``, users joined before ``t``."""

    day: int
    adj: sp.csr_matrix  # n × n, 1 per friendship (n = every user id of the table)
    recency: sp.csr_matrix  # the same pattern, exp(-age / τ) per friendship
    deg: np.ndarray
    recent: np.ndarray  # friendships made in the last RECENT_DAYS days
    present: np.ndarray  # bool: joined before ``day``
    users: pd.DataFrame  # public attributes, row = user id
    cache: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)  # per model

    @classmethod
    def at(cls, users: pd.DataFrame, edges: pd.DataFrame, day: int) -> Snapshot:
        n = len(users)
        e = edges[edges["day"].to_numpy() < day]
        u, v, d = (e[c].to_numpy() for c in ("u", "v", "day"))
        adj = adjacency(n, u, v)
        age = (day - 1 - d).astype(np.float64)
        recency = adjacency(n, u, v, np.exp(-age / TAU_DAYS))
        recent_mask = d >= day - RECENT_DAYS
        recent = np.bincount(np.concatenate([u[recent_mask], v[recent_mask]]), minlength=n).astype(
            np.float64
        )
        present = users["join_day"].to_numpy() < day
        return cls(
            day, adj, recency, np.diff(adj.indptr).astype(np.float64), recent, present, users
        )

    @cached_property
    def groups(self) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """Per group kind: present users sorted by group, each group's start and size."""
        return _group_tables(self)

    def with_user(self, attrs: dict[str, int], friends: np.ndarray) -> Snapshot:
        """This snapshot plus one user who joined yesterday with ``attrs`` (school, employer,
        city, age) and ``friends`` (user ids): what the online path scores a new user on."""
        n = self.n
        fr = np.unique(np.asarray(friends, np.int64))
        row = {"user_id": n, **attrs, "join_day": self.day - 1}
        users = pd.concat([self.users, pd.DataFrame([row])[self.users.columns]], ignore_index=True)
        users = users.astype(self.users.dtypes.to_dict())

        def grow(m: sp.csr_matrix) -> sp.csr_matrix:
            # column n goes last in each friend's row (indices stay sorted), row n is new:
            # array copies, no sort (the request path of a new user, on any size of graph)
            at = m.indptr[fr + 1]
            shift = np.zeros(n + 1, np.int64)
            shift[fr + 1] = 1
            indptr = np.append(m.indptr + np.cumsum(shift), m.indptr[-1] + 2 * len(fr))
            indices = np.concatenate([np.insert(m.indices, at, n), fr]).astype(m.indices.dtype)
            data = np.concatenate([np.insert(m.data, at, 1), np.ones(len(fr), m.data.dtype)])
            return sp.csr_matrix((data, indices, indptr), shape=(n + 1, n + 1))

        deg = np.append(self.deg, float(len(fr)))
        deg[fr] += 1
        recent = np.append(self.recent, float(len(fr)))
        recent[fr] += 1
        present = np.append(self.present, True)
        grown = Snapshot(self.day, grow(self.adj), grow(self.recency), deg, recent, present, users)
        # the group tables of everyone else are this snapshot's (the new user is nobody's
        # candidate): reused, not rebuilt per request
        grown.__dict__["groups"] = self.groups
        return grown

    @property
    def n(self) -> int:
        return int(self.adj.shape[0])

    def are_friends(self, u: np.ndarray, v: np.ndarray) -> np.ndarray:
        return lookup(self.adj, u, v) > 0


def lookup(m: sp.csr_matrix, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """``m[rows[i], cols[i]]`` for every i, as a flat array (empty in, empty out)."""
    if len(rows) == 0:
        return np.zeros(0, np.float64)
    return np.asarray(m[np.asarray(rows), np.asarray(cols)], dtype=np.float64).ravel()


def label_pairs(edges: pd.DataFrame, start: int, end: int, present: np.ndarray) -> pd.DataFrame:
    """Friendships formed on days ``[start, end)`` between users present at ``start``, both
    directions (``u`` is the user a list is for): the positives of the time split."""
    e = edges[(edges["day"] >= start) & (edges["day"] < end)]
    u, v = e["u"].to_numpy(), e["v"].to_numpy()
    ok = present[u] & present[v]
    u, v = u[ok], v[ok]
    return pd.DataFrame({"u": np.concatenate([u, v]), "v": np.concatenate([v, u])})


def candidates(
    snap: Snapshot,
    query: np.ndarray,
    seed: int,
    n_fof: int = 100,
    n_group: int = 10,
    chunk: int = 2000,
) -> pd.DataFrame:
    """Candidate pairs ``(u, v, fof)`` for each user of ``query``: the top ``n_fof`` friends of
    friends by mutual friends plus :data:`GROUP_BONUS` per shared group (ties broken at random)
    and ``n_group`` random people from each of the user's school, employer and city; never the
    user, an existing friend or a user who has not joined yet."""
    r = rng(seed, f"pymk/candidates/{snap.day}")
    query = np.asarray(query, np.int64)
    parts: list[pd.DataFrame] = []
    tables = snap.groups
    for s in range(0, len(query), chunk):
        q = query[s : s + chunk]
        aq = snap.adj[q]
        m = (aq @ snap.adj).tocoo()
        row, col, cnt = m.row.astype(np.int64), m.col.astype(np.int64), m.data
        keep = col != q[row]
        row, col, cnt = row[keep], col[keep], cnt[keep]
        keep = ~(lookup(aq, row, col) > 0)
        row, col, cnt = row[keep], col[keep], cnt[keep]
        priority = cnt.astype(np.float64)
        for k, bonus in GROUP_BONUS.items():
            g = snap.users[k].to_numpy()
            priority += bonus * ((g[q[row]] == g[col]) & (g[col] >= 0))
        order = np.lexsort((r.random(len(row)), -priority, row))
        row, col = row[order], col[order]
        starts = np.searchsorted(row, np.arange(len(q)))
        rank = np.arange(len(row)) - starts[row]
        top = rank < n_fof
        fof = pd.DataFrame({"u": q[row[top]], "v": col[top], "fof": 1})
        grp = []
        for k in GROUPS:
            order_k, start_k, size_k = tables[k]
            if len(order_k) == 0:  # nobody's group is known (an edge-list file)
                continue
            g_raw = snap.users[k].to_numpy()[q]
            g = np.maximum(g_raw, 0)
            pos = start_k[g][:, None] + (r.random((len(q), n_group)) * size_k[g][:, None]).astype(
                np.int64
            )
            ok = np.broadcast_to((size_k[g] > 0)[:, None] & (g_raw >= 0)[:, None], pos.shape)
            vv = order_k[np.minimum(pos, len(order_k) - 1)]
            uu = np.broadcast_to(q[:, None], vv.shape)
            grp.append(pd.DataFrame({"u": uu[ok], "v": vv[ok], "fof": 0}))
        both = pd.concat([fof, *grp], ignore_index=True)
        both = both[both["u"] != both["v"]]
        both = both.drop_duplicates(["u", "v"], keep="first")
        mask = ~snap.are_friends(both["u"].to_numpy(), both["v"].to_numpy())
        parts.append(both[mask])
    out = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=["u", "v", "fof"])
    return out.astype({"u": np.int64, "v": np.int64, "fof": np.int8}).reset_index(drop=True)


def _group_tables(snap: Snapshot) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    out = {}
    for k in GROUPS:
        g = snap.users[k].to_numpy()
        ids = np.flatnonzero(snap.present & (g >= 0))  # -1: unknown (an edge-list file)
        order = ids[np.argsort(g[ids], kind="stable")]
        size = np.bincount(g[ids], minlength=max(int(g.max()) + 1, 1) if len(g) else 1)
        start = np.concatenate([[0], np.cumsum(size)[:-1]])
        out[k] = (order, start, size)
    return out


def common_neighbour_stats(
    snap: Snapshot, u: np.ndarray, v: np.ndarray, chunk: int = 200_000
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Common neighbours, Adamic–Adar and resource allocation of every pair from one sparse
    product per chunk: the pattern ``A[u] ⊙ A[v]`` (row = pair, column = a common friend ``w``)
    weighted by 1, ``1 / log deg w`` and ``1 / deg w``."""
    weights = np.column_stack(
        [
            np.ones(snap.n),
            np.where(snap.deg > 1, 1.0 / np.log(np.maximum(snap.deg, 2)), 0.0),
            np.where(snap.deg > 0, 1.0 / np.maximum(snap.deg, 1), 0.0),
        ]
    )
    out = np.zeros((len(u), 3), np.float64)
    for s in range(0, len(u), chunk):
        common = snap.adj[u[s : s + chunk]].multiply(snap.adj[v[s : s + chunk]]).tocsr()
        out[s : s + chunk] = common @ weights  # (P, 3)
    return out[:, 0], out[:, 1], out[:, 2]


def pair_features(snap: Snapshot, u: np.ndarray, v: np.ndarray) -> pd.DataFrame:
    """The feature frame of the pairs ``(u, v)`` as of ``snap.day`` (see :data:`FEATURES`)."""
    u, v = np.asarray(u, np.int64), np.asarray(v, np.int64)
    deg = snap.deg
    cn, aa, ra = common_neighbour_stats(snap, u, v)
    td = pair_dot(snap.recency, snap.recency, u, v) if len(u) else np.zeros(0)
    union = deg[u] + deg[v] - cn
    us = snap.users
    join = us["join_day"].to_numpy()
    age = us["age"].to_numpy().astype(np.float64)
    frame = {
        "d_mutual": np.log1p(cn),
        "d_td_mutual": np.log1p(td),
        "d_jaccard": np.where(union > 0, cn / np.maximum(union, 1), 0.0),
        "d_adamic_adar": aa,
        "d_resource_alloc": ra,
        "d_pref_attach": np.log1p(deg[u] * deg[v]),
        "d_deg_u": np.log1p(deg[u]),
        "d_deg_v": np.log1p(deg[v]),
        "d_recent_u": np.log1p(snap.recent[u]),
        "d_recent_v": np.log1p(snap.recent[v]),
        **{
            f"d_same_{k}": (
                (us[k].to_numpy()[u] == us[k].to_numpy()[v]) & (us[k].to_numpy()[u] >= 0)
            ).astype(np.float64)
            for k in GROUPS
        },
        "d_group_rate": _group_rate(snap, u, v),
        "d_age_gap": np.abs(age[u] - age[v]),
        "d_account_age_u": (snap.day - join[u]).astype(np.float64),
        "d_account_age_v": (snap.day - join[v]).astype(np.float64),
    }
    return pd.DataFrame({k: np.asarray(frame[k], np.float64) for k in FEATURES})


def _group_rate(snap: Snapshot, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """``Σ_k [same group k] / |group k|``: how likely a meeting inside ``u``'s school, employer
    or city reaches ``v`` (a small shared group is a strong signal, a big city a weak one)."""
    out = np.zeros(len(u), np.float64)
    for k in GROUPS:
        g = snap.users[k].to_numpy()
        size = snap.groups[k][2]
        gu = g[u]
        same = (gu == g[v]) & (gu >= 0)
        out[same] += 1.0 / np.maximum(size[gu[same]], 1)
    return out


def labels_of(pairs: pd.DataFrame, positives: pd.DataFrame, n: int) -> np.ndarray:
    """1 where the pair ``(u, v)`` is among ``positives`` (keys ``u * n + v``)."""
    keys = pairs["u"].to_numpy() * n + pairs["v"].to_numpy()
    pos = positives["u"].to_numpy() * n + positives["v"].to_numpy()
    return np.isin(keys, pos).astype(np.int64)
