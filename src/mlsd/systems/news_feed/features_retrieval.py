"""Retrieval, the chapter's candidate set: a user's unseen posts from friends, pages and groups.

One pure function for the world (which draws the log through it), the offline evaluation and the
server: the posts of the authors a user is connected to (friends, followed pages, groups), created
in the last ``lookback_s`` seconds before the request, that the user has not been shown and whose
author the user has not blocked.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike
from scipy import sparse


def pair_keys(a: ArrayLike, b: ArrayLike, n_b: int) -> np.ndarray:
    """One int64 key per ``(a, b)`` pair."""
    return np.asarray(a, np.int64) * np.int64(n_b) + np.asarray(b, np.int64)


def in_sorted(keys: np.ndarray, sorted_keys: np.ndarray) -> np.ndarray:
    """``np.isin(keys, sorted_keys)`` for an already sorted ``sorted_keys``, without sorting it
    again (a binary search per key: what a request can afford against the whole log)."""
    if len(sorted_keys) == 0:
        return np.zeros(len(keys), bool)
    i = np.clip(np.searchsorted(sorted_keys, keys), 0, len(sorted_keys) - 1)
    return np.asarray(sorted_keys[i] == keys)


def connection_matrix(
    friends: pd.DataFrame, follows: pd.DataFrame, n_users: int, n_authors: int
) -> sparse.csr_matrix:
    """Users x authors, 1 where the user sees the author's posts (a friend either way, a page
    followed)."""
    u = np.r_[friends["user_id"], friends["friend_id"], follows["user_id"]].astype(np.int64)
    a = np.r_[friends["friend_id"], friends["user_id"], follows["author_id"]].astype(np.int64)
    m = sparse.csr_matrix((np.ones(len(u)), (u, a)), shape=(n_users, n_authors))
    m.data[:] = 1.0
    return m


def retrieve(
    connections: sparse.csr_matrix,
    post_author: np.ndarray,
    post_created: np.ndarray,
    users: np.ndarray,
    ts: np.ndarray,
    lookback_s: int,
    seen: np.ndarray,
    blocked: np.ndarray,
    post_space: int | None = None,
) -> pd.DataFrame:
    """Candidates of each request ``(users[i], ts[i])``: columns ``session`` (``i``),
    ``user_id``, ``post_id``, ``ts``, sorted by request then post. ``seen``: sorted user-post
    keys (``pair_keys(user, post, post_space)``, ``post_space`` the number of posts by default);
    ``blocked``: sorted user-author keys."""
    users = np.asarray(users, np.int64)
    ts = np.asarray(ts, np.int64)
    n_posts, n_authors = len(post_created), connections.shape[1]
    if len(users) == 0:
        return _empty()
    lo, hi = int(ts.min()) - lookback_s, int(ts.max())
    window = np.flatnonzero((post_created >= lo) & (post_created < hi))
    by_author = sparse.csr_matrix(
        (np.ones(len(window)), (post_author[window], np.arange(len(window)))),
        shape=(n_authors, len(window)),
    )
    s_idx, j = (connections[users] @ by_author).nonzero()
    p = window[j]
    age = ts[s_idx] - post_created[p]
    ok = (age > 0) & (age <= lookback_s)
    s_idx, p = s_idx[ok], p[ok]
    u = users[s_idx]
    ok = ~in_sorted(pair_keys(u, p, post_space or n_posts), seen)
    if len(blocked):
        ok &= ~in_sorted(pair_keys(u, post_author[p], n_authors), blocked)
    s_idx, p, u = s_idx[ok], p[ok], u[ok]
    order = np.lexsort((p, s_idx))
    return pd.DataFrame(
        {
            "session": s_idx[order].astype(np.int64),
            "user_id": u[order],
            "post_id": p[order].astype(np.int64),
            "ts": ts[s_idx[order]],
        }
    )


def _empty() -> pd.DataFrame:
    return pd.DataFrame(
        {c: pd.Series(dtype=np.int64) for c in ("session", "user_id", "post_id", "ts")}
    )
