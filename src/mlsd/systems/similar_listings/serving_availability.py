"""Availability for similar listings: which nights a listing is already booked (book ch. 9).

The chapter's re-ranking step drops candidates the guest cannot book: a listing that is not
available for every night of the requested stay is never shown. The platform's calendar is one
row per blocked night (``listing_id, night``; nights are day numbers on the platform's clock,
the same days as the sessions'); a stay ``[check_in, check_out)`` is bookable when none of its
nights is blocked.

The world does not play stays (its sessions have no dates), so :func:`simulated_calendar` draws
a calendar for serving: every listing has an occupancy rate (Beta(2, 3), mean 40 %) and is
blocked in runs of consecutive nights (stays of 1-7 nights) until that share of the horizon is
booked. A session click log has no calendar: every listing is available.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from mlsd.rng import rng

CALENDAR_COLUMNS = ("listing_id", "night")
MAX_STAY = 7


def empty_calendar() -> pd.DataFrame:
    return pd.DataFrame({c: np.zeros(0, np.int64) for c in CALENDAR_COLUMNS})


def simulated_calendar(
    listing_ids: np.ndarray, first_night: int, n_nights: int, seed: int
) -> pd.DataFrame:
    """Blocked nights in ``[first_night, first_night + n_nights)`` for every listing (seeded)."""
    r = rng(seed, "similar-listings/availability/calendar")
    ids = np.asarray(listing_ids, np.int64)
    occupancy = r.beta(2.0, 3.0, len(ids))
    rows_id: list[np.ndarray] = []
    rows_night: list[np.ndarray] = []
    for i, occ in zip(ids, occupancy, strict=True):
        blocked = np.zeros(n_nights, bool)
        while blocked.mean() < occ:
            start = int(r.integers(0, n_nights))
            blocked[start : start + int(r.integers(1, MAX_STAY + 1))] = True
        nights = np.flatnonzero(blocked)
        rows_id.append(np.full(len(nights), i, np.int64))
        rows_night.append(nights.astype(np.int64) + first_night)
    if not rows_id:
        return empty_calendar()
    return pd.DataFrame(
        {"listing_id": np.concatenate(rows_id), "night": np.concatenate(rows_night)}
    )


@dataclass(frozen=True)
class Stay:
    """The requested nights ``[check_in, check_out)``."""

    check_in: int
    check_out: int

    def __post_init__(self) -> None:
        if self.check_out <= self.check_in:
            raise ValueError(
                f"check_out ({self.check_out}) must be after check_in ({self.check_in})"
            )


class Availability:
    """The calendar, looked up per listing: is a stay bookable?"""

    def __init__(self, calendar: pd.DataFrame) -> None:
        missing = [c for c in CALENDAR_COLUMNS if c not in calendar]
        if missing:
            raise ValueError(f"the calendar has no column {missing}")
        df = calendar.sort_values(["listing_id", "night"], kind="stable")
        lid = df["listing_id"].to_numpy(np.int64)
        self._nights = df["night"].to_numpy(np.int64)
        self._ids, starts = np.unique(lid, return_index=True)
        self._bounds = np.r_[starts, len(lid)].astype(np.int64)
        self.blocked_nights = len(lid)

    def blocked(self, listing_id: int) -> np.ndarray:
        """The blocked nights of one listing, sorted."""
        pos = int(np.searchsorted(self._ids, listing_id))
        if pos >= len(self._ids) or self._ids[pos] != listing_id:
            return np.zeros(0, np.int64)
        return self._nights[self._bounds[pos] : self._bounds[pos + 1]]

    def available(self, listing_ids: np.ndarray, stay: Stay) -> np.ndarray:
        """Boolean mask: which of ``listing_ids`` have no blocked night in the stay."""
        out = np.ones(len(listing_ids), bool)
        for j, i in enumerate(np.asarray(listing_ids, np.int64)):
            nights = self.blocked(int(i))
            if len(nights):
                lo = int(np.searchsorted(nights, stay.check_in))
                out[j] = lo >= len(nights) or nights[lo] >= stay.check_out
        return out
