"""Step 5b for similar listings, online: an A/B test of the carousel in the world (book ch. 9).

The chapter's online metrics are the click-through rate of the similar-listings carousel and,
what the business cares about, the share of search sessions that end in a booking. In the
world, after the logged days, users run new search sessions; they are split 50/50 by a hash of
their id. After every click the listing page shows a carousel of the ``CAROUSEL_K`` listings of
the region most similar to it, from co-occurrence (the control, fixed in advance) or from the
served skip-gram (treatment). The simulated user scans the carousel with position bias and
clicks a listing with a probability that grows with its true utility to them
(:meth:`.world.SimilarListingsWorld.play_session`); a carousel click is the session's next
click. The session books with a probability that grows with the best utility it found.

Both metrics are ratios over sessions or impressions while users are randomised (a user runs
several sessions), so both are compared per user with the delta method
(:func:`mlsd.comparisons.compare_ratios`); the session book rate is the primary metric.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from mlsd import experiments as exp
from mlsd.comparisons import compare_ratios
from mlsd.experiments import ABResult
from mlsd.report import Blueprint
from mlsd.rng import rng
from mlsd.runner import ProgressFn
from mlsd.systems.similar_listings.model import ListingSimilarity, region_top_k
from mlsd.systems.similar_listings.world import (
    CAROUSEL_EXAMINE,
    Session,
    SimilarListingsWorld,
)

CAROUSEL_K = 6
ARM_COLUMNS = ("model", "sessions", "carousel_ctr", "session_book_rate", "clicks_per_session")


def _figures(model: str, sessions: list[Session]) -> dict[str, Any]:
    shown = sum(s.carousel_shown for s in sessions)
    return {
        "model": model,
        "sessions": len(sessions),
        "carousel_ctr": sum(s.carousel_clicks for s in sessions) / max(shown, 1),
        "session_book_rate": float(np.mean([s.booked >= 0 for s in sessions])),
        "clicks_per_session": float(np.mean([len(s.clicks) for s in sessions])),
    }


@dataclass(frozen=True)
class OnlineResult:
    ab: ABResult
    sessions: int
    day: int

    def metrics(self) -> dict[str, Any]:
        return {
            "online": {
                **self.ab.to_dict(),
                "sessions": self.sessions,
                "day": self.day,
                "carousel": {"k": CAROUSEL_K, "examine": CAROUSEL_EXAMINE},
            }
        }


def compute_online(
    world: SimilarListingsWorld,
    arms: dict[str, tuple[str, ListingSimilarity]],
    seed: int,
    n_sessions: int | None = None,
    progress: ProgressFn | None = None,
) -> OnlineResult:
    """``n_sessions`` sessions (default the world's ``online_sessions``) on the day after the
    log; ``arms`` maps ``control`` / ``treatment`` to ``(model name, model)``."""
    n = n_sessions or world.config.online_sessions
    day = world.config.n_days
    region = world.listings["region"].to_numpy()
    everyone = np.arange(world.n_listings)
    tops = {arm: region_top_k(m, everyone, region, CAROUSEL_K) for arm, (_, m) in arms.items()}
    r = rng(seed, "similar-listings/online/sessions")
    users = r.integers(0, world.config.n_users, n)
    regions = r.integers(0, world.config.n_regions, n)
    is_treat = exp.assign_arms(users, salt=f"similar-listings-ab-{seed}")
    played: dict[str, list[Session]] = {"control": [], "treatment": []}
    users_of: dict[str, list[int]] = {"control": [], "treatment": []}
    behaviour = rng(seed, "similar-listings/online/behaviour")
    for i in range(n):
        if progress is not None and i % 2000 == 0:
            progress("online sessions", i, n)
        arm = "treatment" if is_treat[i] else "control"
        top = tops[arm]

        def carousel(listing: int, reg: int, d: int, top: np.ndarray = top) -> np.ndarray:
            row: np.ndarray = top[listing]
            return row[row >= 0]

        s = world.play_session(int(users[i]), int(regions[i]), day, behaviour, carousel)
        if s.clicks:
            played[arm].append(s)
            users_of[arm].append(int(users[i]))
    c, t = played["control"], played["treatment"]
    book = compare_ratios(
        *_per_user(c, users_of["control"], "booked"),
        *_per_user(t, users_of["treatment"], "booked"),
        metric="session_book_rate",
    )
    ctr = compare_ratios(
        *_per_user(c, users_of["control"], "carousel"),
        *_per_user(t, users_of["treatment"], "carousel"),
        metric="carousel_ctr",
    )
    n_c = len(set(users_of["control"]))
    n_t = len(set(users_of["treatment"]))
    ab = ABResult.decided(
        unit="user (hash of user id); sessions of one user share an arm",
        arms={arm: _figures(arms[arm][0], played[arm]) for arm in ("control", "treatment")},
        tests={book.metric: book, ctr.metric: ctr},
        primary=book.metric,
        srm=exp.srm_check(n_c, n_t),
    )
    return OnlineResult(ab, len(c) + len(t), day)


def _per_user(
    sessions: list[Session], users: list[int], what: str
) -> tuple[np.ndarray, np.ndarray]:
    """Per user (the unit of randomisation): carousel clicks and impressions (``carousel``),
    or bookings and sessions (``booked``)."""
    u = np.asarray(users, np.int64)
    if what == "carousel":
        clicks = np.array([s.carousel_clicks for s in sessions], np.float64)
        shown = np.array([s.carousel_shown for s in sessions], np.float64)
    else:
        clicks = np.array([s.booked >= 0 for s in sessions], np.float64)
        shown = np.ones(len(sessions), np.float64)
    _, inv = np.unique(u, return_inverse=True)
    num = np.bincount(inv, weights=clicks)
    den = np.bincount(inv, weights=shown)
    keep = den > 0
    return num[keep], den[keep]


def report_online(bp: Blueprint, result: OnlineResult) -> None:
    ab = result.ab
    bp.section("Online evaluation: A/B test of the carousel")
    bp.text(
        f"{result.sessions:,} search sessions on day {result.day} (after the log), users split "
        f"50/50 by a hash of their id. After every click the listing page shows a carousel of "
        f"{CAROUSEL_K} similar listings of the region: control from "
        f"**{ab.arms['control']['model']}**, treatment from **{ab.arms['treatment']['model']}**."
        f" Users look at each next slot with probability {CAROUSEL_EXAMINE} and click a listing "
        "by its true utility to them; the session books by the best utility it found."
    )
    bp.table(
        ["arm", "model", "sessions", "carousel CTR", "session book rate", "clicks / session"],
        ab.arm_rows(ARM_COLUMNS),
    )
    bp.table(
        ABResult.TEST_HEADER,
        ab.test_rows(),
        caption="Both: delta-method ratio tests with the user as the unit (users run several "
        "sessions).",
    )
    bp.text(ab.verdict())
