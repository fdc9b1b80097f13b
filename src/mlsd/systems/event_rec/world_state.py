"""The platform's records as of a moment: who registered for what, who was invited, before ``t``.

Built only from logged tables (registrations, invitations, the friend graph, follows and the
events' attributes), so the world (to draw behaviour) and the feature pipeline (to compute
point-in-time features, offline and at serving) read the same numbers. Users and events are
dense ids ``0..n-1``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import sparse

N_CATEGORIES = 8
CATEGORIES = ("music", "sports", "tech", "food", "arts", "outdoors", "family", "nightlife")
SLOT_S = 3600  # the overlap calendar counts hours


@dataclass
class SocialState:
    """Everything the platform knows before ``ts``: registrations ``R`` (users × events),
    invitations ``I``, friends ``F``, follows (users × hosts); derived counts below."""

    ts: int
    R: sparse.csr_matrix
    invited: sparse.csr_matrix
    friends_registered: sparse.csr_matrix  # F @ R
    follows: sparse.csr_matrix
    user_regs: np.ndarray  # registrations per user
    event_regs: np.ndarray  # registrations per event so far
    host_regs: np.ndarray  # registrations for each host's events (past and current)
    user_cat: np.ndarray  # users × categories: past registrations per category
    user_paid: np.ndarray  # mean price of the user's past registrations (0 without)
    busy: np.ndarray  # users × hour slots: registered events covering that hour (int16)
    n_friends: np.ndarray

    @classmethod
    def build(
        cls,
        ts: int,
        n_users: int,
        events: pd.DataFrame,
        friends: pd.DataFrame,
        follows: pd.DataFrame,
        n_hosts: int,
        registrations: pd.DataFrame,
        invites: pd.DataFrame,
        n_slots: int,
    ) -> SocialState:
        """The state from the logs: rows of ``registrations`` / ``invites`` with ``ts`` < ``ts``."""
        n_events = len(events)
        regs = registrations[registrations["ts"].to_numpy() < ts]
        inv = invites[invites["ts"].to_numpy() < ts]
        ru = regs["user_id"].to_numpy(np.int64)
        re_ = regs["event_id"].to_numpy(np.int64)
        R = sparse.csr_matrix((np.ones(len(ru), np.float32), (ru, re_)), shape=(n_users, n_events))
        R.data[:] = 1.0  # duplicates (never logged) would count once
        invited = sparse.csr_matrix(
            (
                np.ones(len(inv), np.float32),
                (inv["user_id"].to_numpy(np.int64), inv["event_id"].to_numpy(np.int64)),
            ),
            shape=(n_users, n_events),
        )
        F = friend_matrix(friends, n_users)
        fol = sparse.csr_matrix(
            (
                np.ones(len(follows), np.float32),
                (follows["user_id"].to_numpy(np.int64), follows["host_id"].to_numpy(np.int64)),
            ),
            shape=(n_users, n_hosts),
        )
        cat = events["category"].to_numpy(np.int64)
        price = events["price"].to_numpy(np.float64)
        host = events["host_id"].to_numpy(np.int64)
        event_regs = np.bincount(re_, minlength=n_events).astype(np.float64)
        user_regs = np.bincount(ru, minlength=n_users).astype(np.float64)
        user_cat = np.zeros((n_users, N_CATEGORIES))
        np.add.at(user_cat, (ru, cat[re_]), 1.0)
        paid = np.bincount(ru, weights=price[re_], minlength=n_users)
        user_paid = np.where(user_regs > 0, paid / np.maximum(user_regs, 1), 0.0)
        busy = np.zeros((n_users, n_slots), np.int16)
        start = events["start_ts"].to_numpy(np.int64)[re_] // SLOT_S
        dur = np.maximum(events["duration_h"].to_numpy(np.int64)[re_], 1)
        for h in range(int(dur.max()) if len(dur) else 0):
            keep = (h < dur) & (start + h < n_slots)
            np.add.at(busy, (ru[keep], start[keep] + h), 1)
        return cls(
            ts=int(ts),
            R=R,
            invited=invited,
            friends_registered=(F @ R).tocsr(),
            follows=fol,
            user_regs=user_regs,
            event_regs=event_regs,
            host_regs=np.bincount(host, weights=event_regs, minlength=n_hosts),
            user_cat=user_cat,
            user_paid=user_paid,
            busy=busy,
            n_friends=np.asarray(F.sum(axis=1)).ravel(),
        )

    def pair_lookup(self, m: sparse.csr_matrix, u: np.ndarray, e: np.ndarray) -> np.ndarray:
        """``m[u_i, e_i]`` for every pair, as floats."""
        if len(u) == 0:
            return np.zeros(0)
        return np.asarray(m[u, e], dtype=np.float64).ravel()

    def overlap(self, u: np.ndarray, start_ts: np.ndarray, duration_h: np.ndarray) -> np.ndarray:
        """1 where the user is already registered for something during the event's start or
        middle hour."""
        n_slots = self.busy.shape[1]
        s = np.clip(start_ts // SLOT_S, 0, n_slots - 1)
        mid = np.clip(s + np.maximum(duration_h, 1) // 2, 0, n_slots - 1)
        return ((self.busy[u, s] + self.busy[u, mid]) > 0).astype(np.float64)


def friend_matrix(friends: pd.DataFrame, n_users: int) -> sparse.csr_matrix:
    """The symmetric friend graph from an edge list ``(user_id, friend_id)``."""
    a = friends["user_id"].to_numpy(np.int64)
    b = friends["friend_id"].to_numpy(np.int64)
    F = sparse.csr_matrix(
        (np.ones(2 * len(a), np.float32), (np.r_[a, b], np.r_[b, a])), shape=(n_users, n_users)
    )
    F.data[:] = 1.0
    return F
