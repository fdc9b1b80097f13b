"""Step 5 of the book, online evaluation by interleaving: both rankers serve one user at once.

Team-draft interleaving (Radlinski et al. 2008) merges two rankings so each result is credited to
one team; the user's clicks say which ranker they prefer. Because every user compares both
rankers, interleaving usually needs far fewer users than an A/B test to reach a decision.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy import stats


def team_draft_interleave(
    ranking_a: Sequence[int], ranking_b: Sequence[int], k: int, rng: np.random.Generator
) -> tuple[list[int], list[str]]:
    """Merge two rankings into one list of up to ``k`` items, each credited to team A or B.

    Team draft (Radlinski et al., 2008): the team with fewer picks so far picks next (a coin
    flip on ties) and adds its highest-ranked item not yet in the list.
    """
    merged: list[int] = []
    teams: list[str] = []
    seen: set[int] = set()
    ia = ib = na = nb = 0
    while len(merged) < k:
        while ia < len(ranking_a) and ranking_a[ia] in seen:
            ia += 1
        while ib < len(ranking_b) and ranking_b[ib] in seen:
            ib += 1
        a_left, b_left = ia < len(ranking_a), ib < len(ranking_b)
        if not (a_left or b_left):
            break
        pick_a = na < nb or (na == nb and bool(rng.random() < 0.5))
        if (pick_a and a_left) or not b_left:
            item, ia, na = ranking_a[ia], ia + 1, na + 1
            teams.append("A")
        else:
            item, ib, nb = ranking_b[ib], ib + 1, nb + 1
            teams.append("B")
        merged.append(item)
        seen.add(item)
    return merged, teams


def interleaving_preference(clicks: Sequence[int], teams: Sequence[str]) -> int:
    """One impression's outcome: +1 if A's items got more clicks, -1 if B's did, 0 on a tie."""
    if len(clicks) != len(teams):
        raise ValueError(f"{len(clicks)} clicks for {len(teams)} team labels")
    a = sum(int(c) for c, t in zip(clicks, teams, strict=True) if t == "A")
    b = sum(int(c) for c, t in zip(clicks, teams, strict=True) if t == "B")
    return (a > b) - (a < b)


def interleaving_test(preferences: Sequence[int]) -> dict[str, float]:
    """Aggregate per-impression preferences: A's win share among non-ties and a sign test.

    ``delta = (wins_a - wins_b) / (wins_a + wins_b + ties)`` (Chapelle et al., 2012).
    """
    prefs = np.asarray(preferences, dtype=np.int64)
    wins_a, wins_b = int((prefs > 0).sum()), int((prefs < 0).sum())
    ties = int(prefs.size - wins_a - wins_b)
    decided = wins_a + wins_b
    p_value = float(stats.binomtest(wins_a, decided, 0.5).pvalue) if decided else 1.0
    return {
        "wins_a": float(wins_a),
        "wins_b": float(wins_b),
        "ties": float(ties),
        "delta": (wins_a - wins_b) / prefs.size if prefs.size else math.nan,
        "p_value": p_value,
    }


@dataclass(frozen=True)
class InterleavingResult:
    """Team-draft interleaving of ranker A against ranker B: per-impression preferences
    aggregated into wins, ties, ``delta`` and a sign test (Chapelle et al., 2012)."""

    a: str  # the policy drafting as team A
    b: str
    impressions: int
    wins_a: int
    wins_b: int
    ties: int
    delta: float
    p_value: float

    HEADER = ("A", "B", "impressions", "A wins", "B wins", "ties", "delta", "p")

    @classmethod
    def from_preferences(cls, a: str, b: str, preferences: Sequence[int]) -> InterleavingResult:
        t = interleaving_test(preferences)
        return cls(
            a,
            b,
            len(preferences),
            int(t["wins_a"]),
            int(t["wins_b"]),
            int(t["ties"]),
            t["delta"],
            t["p_value"],
        )

    @property
    def preferred(self) -> str | None:
        """The policy preferred at the 5% level, or None."""
        if self.p_value >= 0.05 or self.wins_a == self.wins_b:
            return None
        return self.a if self.wins_a > self.wins_b else self.b

    def row(self) -> list[Any]:
        return [
            self.a,
            self.b,
            self.impressions,
            self.wins_a,
            self.wins_b,
            self.ties,
            round(self.delta, 4),
            self.p_value,
        ]

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "preferred": self.preferred}
