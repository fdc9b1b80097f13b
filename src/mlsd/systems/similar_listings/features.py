"""Step 3 for similar listings: sessions and the skip-gram's training pairs (book ch. 9).

The chapter has no hand-built features: the model learns listing embeddings from the order of
clicks in search sessions. This module turns a click log (one row per click) into
:class:`Sessions` (each session's clicks in order, its booked listing, its day) and those into
the skip-gram's ``(centre, context)`` pairs: every click with the clicks within ``window``
positions of it, and, with ``booked_global``, every click of a booking session with the booked
listing (the chapter's global context). The attribute features of the content baseline are in
:func:`attribute_matrix`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from mlsd.systems.similar_listings.world import AMENITIES, LISTING_TYPES


@dataclass(frozen=True)
class Sessions:
    """Click sessions in CSR form: session ``s`` clicked ``items[offsets[s]:offsets[s+1]]``."""

    offsets: np.ndarray  # int64 (S+1,)
    items: np.ndarray  # int64 (total clicks,)
    booked: np.ndarray  # int64 (S,), -1 when the session booked nothing
    day: np.ndarray  # int64 (S,)

    def __len__(self) -> int:
        return len(self.booked)

    def clicks(self, s: int) -> np.ndarray:
        return self.items[self.offsets[s] : self.offsets[s + 1]]

    def subset(self, mask: np.ndarray) -> Sessions:
        idx = np.flatnonzero(mask)
        lens = np.diff(self.offsets)[idx]
        parts = [self.clicks(int(s)) for s in idx]
        items = np.concatenate(parts) if parts else np.zeros(0, np.int64)
        offsets = np.concatenate([[0], np.cumsum(lens)]).astype(np.int64)
        return Sessions(offsets, items.astype(np.int64), self.booked[idx], self.day[idx])

    @property
    def n_clicks(self) -> int:
        return len(self.items)


def concat_sessions(a: Sessions, b: Sessions) -> Sessions:
    """The sessions of ``a`` followed by those of ``b``."""
    return Sessions(
        np.concatenate([a.offsets, b.offsets[1:] + a.offsets[-1]]).astype(np.int64),
        np.concatenate([a.items, b.items]).astype(np.int64),
        np.concatenate([a.booked, b.booked]).astype(np.int64),
        np.concatenate([a.day, b.day]).astype(np.int64),
    )


def sessions_from_log(log: pd.DataFrame) -> Sessions:
    """The sessions of a click log with ``session_id, position, listing_id`` and optionally
    ``booked_id`` and ``day``, ordered by session then position."""
    df = log.sort_values(["session_id", "position"], kind="stable")
    sid = df["session_id"].to_numpy()
    starts = np.flatnonzero(np.r_[True, sid[1:] != sid[:-1]])
    offsets = np.r_[starts, len(df)].astype(np.int64)
    first = df.iloc[starts]
    booked = (
        first["booked_id"].to_numpy(np.int64)
        if "booked_id" in df
        else np.full(len(starts), -1, np.int64)
    )
    day = first["day"].to_numpy(np.int64) if "day" in df else np.zeros(len(starts), np.int64)
    return Sessions(offsets, df["listing_id"].to_numpy(np.int64), booked, day)


def skipgram_pairs(
    sessions: Sessions, window: int, booked_global: bool, booked_weight: int = 1
) -> np.ndarray:
    """``(P, 2)`` int64 ``(centre, context)`` pairs: every click with each click at most
    ``window`` positions away (both directions), and with ``booked_global`` every click of a
    booking session with its booked listing (unless it is that listing), ``booked_weight``
    times (the weight of the global context against the window's pairs)."""
    if booked_weight < 1:
        raise ValueError(f"booked_weight must be at least 1, got {booked_weight}")
    items, off = sessions.items, sessions.offsets
    sess_of = np.repeat(np.arange(len(sessions)), np.diff(off))
    pos = np.arange(len(items))
    parts = []
    for d in range(1, window + 1):
        j = pos + d
        ok = j < len(items)
        ok[ok] = sess_of[j[ok]] == sess_of[pos[ok]]
        a, b = items[pos[ok]], items[j[ok]]
        keep = a != b
        parts += [np.stack([a[keep], b[keep]], 1), np.stack([b[keep], a[keep]], 1)]
    if booked_global:
        bk = sessions.booked[sess_of]
        ok = (bk >= 0) & (bk != items)
        parts += [np.stack([items[ok], bk[ok]], 1)] * booked_weight
    if not parts:
        return np.zeros((0, 2), np.int64)
    return np.concatenate(parts).astype(np.int64)


def attribute_matrix(listings: pd.DataFrame) -> np.ndarray:
    """The content baseline's listing vectors: standardised log price, capacity and
    coordinates, the type one-hot and the amenity bits, L2-normalised (float32)."""
    lp = np.log(listings["price"].to_numpy(np.float64))
    cols = [lp, listings["capacity"].to_numpy(np.float64)]
    if "lat" in listings:
        cols += [listings["lat"].to_numpy(np.float64), listings["lon"].to_numpy(np.float64)]
    dense = np.stack(cols, 1)
    dense = (dense - dense.mean(0)) / np.maximum(dense.std(0), 1e-9)
    t = listings["type"].astype(str).to_numpy()
    onehot = np.stack([(t == name).astype(np.float64) for name in LISTING_TYPES], 1)
    am = listings["amenities"].to_numpy(np.int64)
    bits = np.stack([(am >> i) & 1 for i in range(len(AMENITIES))], 1).astype(np.float64)
    x = np.concatenate([2.0 * dense, onehot, bits - bits.mean(0)], 1)
    x /= np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    return x.astype(np.float32)
