"""Step 5 online, the sessions: users of the world served by two rankers, in an A/B split or
in team-draft interleaved feeds, and what each ranker is credited with."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mlsd import interleaving as il
from mlsd.systems.video_rec.world import VideoRecWorld

SLATE = 10


@dataclass(frozen=True)
class InterleavedCredit:
    """Per user, summed over sessions: seconds watched and clicks credited to each ranker."""

    seconds_a: np.ndarray
    seconds_b: np.ndarray
    clicks_a: np.ndarray
    clicks_b: np.ndarray

    def preferences(self) -> np.ndarray:
        """+1 where A's videos were watched longer, -1 where B's were, 0 on a tie."""
        return np.sign(self.seconds_a - self.seconds_b).astype(np.int64)

    def totals(self) -> dict[str, float]:
        """Minutes and clicks credited to each ranker, and users with more clicks on each."""
        return {
            "minutes_a": float(self.seconds_a.sum() / 60.0),
            "minutes_b": float(self.seconds_b.sum() / 60.0),
            "clicks_a": float(self.clicks_a.sum()),
            "clicks_b": float(self.clicks_b.sum()),
            "users_more_clicks_a": float((self.clicks_a > self.clicks_b).sum()),
            "users_more_clicks_b": float((self.clicks_a < self.clicks_b).sum()),
        }


def _pad(slate: np.ndarray, world: VideoRecWorld, gen: np.random.Generator) -> np.ndarray:
    """Fill a short list up to the slate size with random eligible videos."""
    slate = np.asarray(slate, dtype=np.int64)
    if len(slate) >= SLATE:
        return slate[:SLATE]
    pool = np.setdiff1d(world.eligible_videos(), slate)
    return np.concatenate([slate, gen.choice(pool, SLATE - len(slate), replace=False)])


def interleave_sessions(
    world: VideoRecWorld,
    users: np.ndarray,
    ranks_a: list[np.ndarray],
    ranks_b: list[np.ndarray],
    gen: np.random.Generator,
    sessions: int,
) -> InterleavedCredit:
    """``sessions`` team-draft feeds per user (a new draft each time), credit per ranker."""
    n = len(users)
    sec_a, sec_b = np.zeros(n), np.zeros(n)
    clk_a, clk_b = np.zeros(n), np.zeros(n)
    for _ in range(sessions):
        slates = np.zeros((n, SLATE), dtype=np.int64)
        is_a = np.zeros((n, SLATE), dtype=bool)
        is_b = np.zeros((n, SLATE), dtype=bool)
        for i in range(n):
            merged, teams = il.team_draft_interleave(
                ranks_a[i].tolist(), ranks_b[i].tolist(), SLATE, gen
            )
            slates[i] = _pad(np.asarray(merged, dtype=np.int64), world, gen)
            is_a[i, : len(teams)] = np.asarray(teams) == "A"
            is_b[i, : len(teams)] = np.asarray(teams) == "B"
        clicks, minutes = world.serve(users, slates, gen)
        seconds = np.round(minutes * 60.0)
        sec_a += (seconds * is_a).sum(axis=1)
        sec_b += (seconds * is_b).sum(axis=1)
        clk_a += (clicks & is_a).sum(axis=1)
        clk_b += (clicks & is_b).sum(axis=1)
    return InterleavedCredit(sec_a, sec_b, clk_a, clk_b)


def ab_sessions(
    world: VideoRecWorld,
    users: np.ndarray,
    arm_t: np.ndarray,
    ranks_c: list[np.ndarray],
    ranks_t: list[np.ndarray],
    gen: np.random.Generator,
    sessions: int,
) -> tuple[np.ndarray, np.ndarray]:
    """``sessions`` feeds per user from their arm: clicks and watch minutes per user and feed."""
    clicks = np.zeros((len(users), sessions))
    minutes = np.zeros((len(users), sessions))
    for s in range(sessions):
        slates = np.stack(
            [_pad((ranks_t if t else ranks_c)[i][:SLATE], world, gen) for i, t in enumerate(arm_t)]
        )
        c, m = world.serve(users, slates, gen)
        clicks[:, s] = c.sum(axis=1)
        minutes[:, s] = m.sum(axis=1)
    return clicks, minutes
