"""Event recommendation, step 6: the streaming features in an online store (Redis or memory).

The static records (users, events, places, descriptions, the friend graph) stay in the scorer's
memory; what changes within minutes of a registration lives in an
:class:`~mlsd.stores.OnlineStore` (:class:`~mlsd.stores_redis.RedisStore` when
``MLSD_REDIS_URL`` is set), so a stream job can update it while servers read it:

* ``user`` (key: user id): registrations so far, mean price paid, friends, registrations per
  category (``cat_0`` ... ``cat_7``), the events registered for, the busy hours from the clock on,
  the hosts followed (space-separated ids);
* ``event`` (key: event id): registrations so far (events without one are absent: 0);
* ``host`` (key: host id): registrations for the host's events;
* ``pair`` (key: ``"{user}:{event}"``, open events only, non-zero pairs only): friends
  registered, invited.

A request reads its user, its candidate events, their hosts and its (user, event) pairs (four
pipelined reads) and rebuilds the :class:`~.world_state.SocialState` of that one user, with the
user's rows broadcast (no users-sized copies), so :func:`~.features.pair_frame` computes the
same features as from the in-memory state. :func:`record_registration` is the stream's write.
In Redis every key lives under the run id (the SHA-256 of the run's tables), written once.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import sparse

from mlsd.artifacts import manifest_hashes
from mlsd.stores import KEY, OnlineStore, put_frame, read_columns
from mlsd.systems.event_rec.world_state import N_CATEGORIES, SLOT_S, SocialState, friend_matrix

log = logging.getLogger(__name__)

NAMESPACES = ("user", "event", "host", "pair")
CATS = tuple(f"cat_{i}" for i in range(N_CATEGORIES))
USER_FIELDS = ("regs", "paid", "n_friends", *CATS, "registered", "busy", "follows")


def _ids(values: list[int] | np.ndarray) -> str:
    return " ".join(str(int(v)) for v in values)


def _parse(text: object) -> np.ndarray:
    return np.array([int(v) for v in str(text or "").split()], np.int64)


def online_frames(
    state: SocialState, events: pd.DataFrame, open_events: np.ndarray, clock_ts: int
) -> dict[str, pd.DataFrame]:
    """The store's tables from the platform's state at the serving clock."""
    n_users = len(state.user_regs)
    R, fol = state.R.tocsr(), state.follows.tocsr()

    def ids_of(m: sparse.csr_matrix, u: int) -> str:
        return _ids(m.indices[m.indptr[u] : m.indptr[u + 1]])

    first_slot = clock_ts // SLOT_S
    busy_rows = [_ids(np.flatnonzero(row[first_slot:] > 0) + first_slot) for row in state.busy]
    user = pd.DataFrame(
        {
            KEY: [str(u) for u in range(n_users)],
            "regs": state.user_regs,
            "paid": state.user_paid,
            "n_friends": state.n_friends.astype(np.float64),
            **{c: state.user_cat[:, i] for i, c in enumerate(CATS)},
            "registered": [ids_of(R, u) for u in range(n_users)],
            "busy": busy_rows,
            "follows": [
                _ids(fol.indices[fol.indptr[u] : fol.indptr[u + 1]]) for u in range(n_users)
            ],
        }
    )
    regs = np.flatnonzero(state.event_regs > 0)
    event = pd.DataFrame({KEY: regs.astype(str), "regs": state.event_regs[regs]})
    hosts = np.flatnonzero(state.host_regs > 0)
    host = pd.DataFrame({KEY: hosts.astype(str), "regs": state.host_regs[hosts]})
    is_open = np.zeros(len(events), bool)
    is_open[open_events] = True
    fr = state.friends_registered.tocoo()
    inv = state.invited.tocoo()
    pairs = pd.concat(
        [
            pd.DataFrame({"u": fr.row, "e": fr.col, "friends_registered": fr.data, "invited": 0.0}),
            pd.DataFrame(
                {"u": inv.row, "e": inv.col, "friends_registered": 0.0, "invited": inv.data}
            ),
        ]
    )
    pairs = pairs[is_open[pairs["e"].to_numpy()]]
    pairs = pairs.groupby(["u", "e"], as_index=False)[["friends_registered", "invited"]].sum()
    pair = pd.DataFrame(
        {
            KEY: pairs["u"].astype(str) + ":" + pairs["e"].astype(str),
            "friends_registered": pairs["friends_registered"].astype(np.float64),
            "invited": pairs["invited"].astype(np.float64),  # invitations (friends who sent one)
        }
    )
    return {"user": user, "event": event, "host": host, "pair": pair}


def store_run_id(artifacts_dir: Path) -> str:
    """16 hex digits of the SHA-256 of the run's saved tables (from its manifest)."""
    hashes = manifest_hashes(Path(artifacts_dir))
    digest = hashlib.blake2b(digest_size=8)
    for rel in sorted(r for r in hashes if r.startswith("tables/")):
        digest.update(f"{rel}={hashes[rel]};".encode())
    return digest.hexdigest()


def fill_store(store: OnlineStore, frames: dict[str, pd.DataFrame]) -> None:
    for namespace in NAMESPACES:
        put_frame(store, namespace, frames[namespace])


@dataclass(frozen=True)
class Shape:
    n_users: int
    n_events: int
    n_hosts: int
    n_slots: int


def store_state(
    store: OnlineStore,
    user: int,
    events: np.ndarray,
    host_of: np.ndarray,
    shape: Shape,
    friends: sparse.csr_matrix,
    clock_ts: int,
) -> SocialState:
    """The platform's state for one user and candidate ``events``, read from the store."""
    found, u = read_columns(store, "user", [str(user)], USER_FIELDS)
    row = {f: (u[f][0] if found[0] else None) for f in USER_FIELDS}
    registered = _parse(row["registered"])
    follows = _parse(row["follows"])
    busy_slots = _parse(row["busy"])
    cats = np.array([float(row[c] or 0.0) for c in CATS])
    e_found, e_cols = read_columns(store, "event", [str(e) for e in events], ("regs",))
    event_regs = np.zeros(shape.n_events)
    event_regs[events] = np.where(e_found, e_cols["regs"], 0.0).astype(np.float64)
    hosts = np.unique(host_of[events])
    h_found, h_cols = read_columns(store, "host", [str(h) for h in hosts], ("regs",))
    host_regs = np.zeros(shape.n_hosts)
    host_regs[hosts] = np.where(h_found, h_cols["regs"], 0.0).astype(np.float64)
    p_found, p_cols = read_columns(
        store, "pair", [f"{user}:{e}" for e in events], ("friends_registered", "invited")
    )

    def user_row(cols: np.ndarray, values: np.ndarray, width: int) -> sparse.csr_matrix:
        keep = values != 0
        rows = np.full(int(keep.sum()), user)
        return sparse.csr_matrix(
            (values[keep].astype(np.float32), (rows, cols[keep])), shape=(shape.n_users, width)
        )

    fr = np.where(p_found, p_cols["friends_registered"], 0.0).astype(np.float64)
    inv = np.where(p_found, p_cols["invited"], 0.0).astype(np.float64)
    busy = np.zeros(shape.n_slots, np.int16)
    busy[busy_slots[busy_slots < shape.n_slots]] = 1
    n_users = shape.n_users

    def everyone(value: np.ndarray | float, dtype: type = np.float64) -> np.ndarray:
        v: np.ndarray = np.asarray(value, dtype)
        return np.broadcast_to(v, (n_users, *v.shape))  # the one user's row for any index

    return SocialState(
        ts=int(clock_ts) + 1,
        R=user_row(registered, np.ones(len(registered)), shape.n_events),
        invited=user_row(events, inv, shape.n_events),
        friends_registered=user_row(events, fr, shape.n_events),
        follows=user_row(follows, np.ones(len(follows)), shape.n_hosts),
        user_regs=everyone(float(row["regs"] or 0.0)),
        event_regs=event_regs,
        host_regs=host_regs,
        user_cat=everyone(cats),
        user_paid=everyone(float(row["paid"] or 0.0)),
        busy=everyone(busy, np.int16),
        n_friends=everyone(friends.indptr[user + 1] - friends.indptr[user], np.float32),
    )


def record_registration(
    store: OnlineStore,
    user: int,
    event: int,
    events: pd.DataFrame,
    friends: sparse.csr_matrix,
    clock_ts: int,
) -> None:
    """The stream job's write for one registration: the event's, the host's and the user's
    counts, the user's calendar, and each friend's "friends registered" for the event."""
    ev = events.iloc[int(event)]
    host = int(ev["host_id"])
    for namespace, key in (("event", str(event)), ("host", str(host))):
        cur = store.get_many(namespace, [key])[0]
        store.put_many(namespace, {key: {"regs": float((cur or {}).get("regs", 0.0)) + 1.0}})
    cur = store.get_many("user", [str(user)])[0] or {}
    regs = float(cur.get("regs", 0.0))
    paid = (float(cur.get("paid", 0.0)) * regs + float(ev["price"])) / (regs + 1.0)
    start = int(ev["start_ts"]) // SLOT_S
    slots = [
        s for s in range(start, start + max(int(ev["duration_h"]), 1)) if s >= clock_ts // SLOT_S
    ]
    cat = f"cat_{int(ev['category'])}"
    store.put_many(
        "user",
        {
            str(user): {
                **cur,
                "regs": regs + 1.0,
                "paid": paid,
                cat: float(cur.get(cat, 0.0)) + 1.0,
                "registered": f"{cur.get('registered', '')} {event}".strip(),
                "busy": f"{cur.get('busy', '')} {_ids(slots)}".strip(),
            }
        },
    )
    mates = friends.indices[friends.indptr[user] : friends.indptr[user + 1]]
    keys = [f"{f}:{event}" for f in mates]
    rows = store.get_many("pair", keys) if keys else []
    store.put_many(
        "pair",
        {
            k: {
                "friends_registered": float((r or {}).get("friends_registered", 0.0)) + 1.0,
                "invited": float((r or {}).get("invited", 0.0)),
            }
            for k, r in zip(keys, rows, strict=True)
        },
    )


def friend_graph(friends: pd.DataFrame, n_users: int) -> sparse.csr_matrix:
    return friend_matrix(friends, n_users).tocsr()
