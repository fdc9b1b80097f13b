"""Step 5 for video recommendation, online, in the world: an A/B test and interleaving.

The same two rankers are compared twice, on the same users, over the same number of sessions
(home feeds) per user, and tested at the same alpha. The A/B test splits users by a salted
hash; each user gets ``sessions`` feeds from their arm; watch minutes per user are compared with
Welch's t-test, CTR with the delta method (impressions are not independent: users are the unit
of randomisation). Team-draft interleaving shows every user ``sessions`` merged feeds (a fresh
draft each time), each video credited to the ranker that drafted it, and credit is the A/B
test's primary metric, seconds watched.

Two interleaving statistics are reported. The classic one (Chapelle et al., 2012) turns each
user into a win, a loss or a tie and runs a sign test; it throws the *size* of the difference
away, so when the better ranker wins by picking videos that are watched longer rather than
clicked more often (here: CTR about equal, minutes doubled) most users' single click decides
the user by a coin flip. The paired test of credited minutes per user (treatment minus
control, a one-sample t-test) keeps the magnitude and still removes the between-user variance
that an A/B test pays for. Both are re-run on growing prefixes of the user stream to show how
many users each method needs before its decision is significant (``evaluation_online_stats``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np

from mlsd import experiments as ex
from mlsd import interleaving as il
from mlsd.comparisons import compare_means, compare_ratios
from mlsd.experiments import ABResult
from mlsd.interleaving import InterleavingResult
from mlsd.report import Blueprint
from mlsd.rng import rng
from mlsd.systems.video_rec.evaluation import MODE_LABELS
from mlsd.systems.video_rec.evaluation_online_sessions import (
    SLATE,
    ab_sessions,
    interleave_sessions,
)
from mlsd.systems.video_rec.evaluation_online_stats import (
    ALPHA,
    between_user_share,
    checkpoints,
    paired_credit_test,
    users_for_power,
    users_needed,
)
from mlsd.systems.video_rec.serving import Recommender
from mlsd.systems.video_rec.world import VideoRecWorld

log = logging.getLogger(__name__)

CONTROL, TREATMENT = "two_tower", "full"


@dataclass(frozen=True)
class OnlineResult:
    """The A/B test and the interleaving of the same two rankers on the same users, and how
    many users each test needs."""

    control: str
    treatment: str
    users: int
    sessions_per_user: int
    alpha: float
    ab: ABResult
    between_user_variance_share: float
    interleaving: InterleavingResult  # team A = treatment, team B = control
    credit: dict[str, float]  # InterleavedCredit.totals()
    paired_minutes: dict[str, float]
    users_needed: dict[str, int | None]
    users_for_80pct_power: dict[str, float]
    curves: dict[str, list[tuple[int, float]]]

    def interleaving_figures(self) -> dict[str, Any]:
        return {
            **self.interleaving.to_dict(),
            "tie_share": self.interleaving.ties / max(self.users, 1),
            "sessions_per_user": self.sessions_per_user,
            **self.credit,
            "paired_minutes": self.paired_minutes,
        }

    def metrics(self) -> dict[str, Any]:
        return {
            "online": {
                "control": self.control,
                "treatment": self.treatment,
                "users": self.users,
                "sessions_per_user": self.sessions_per_user,
                "alpha": self.alpha,
                "ab": {
                    **self.ab.to_dict(),
                    "between_user_variance_share": self.between_user_variance_share,
                },
                "interleaving": self.interleaving_figures(),
                "users_needed": self.users_needed,
                "users_for_80pct_power": self.users_for_80pct_power,
                "curves": self.curves,
            }
        }


def compare_online(
    world: VideoRecWorld,
    order: np.ndarray,
    ranks_c: list[np.ndarray],
    ranks_t: list[np.ndarray],
    gen: np.random.Generator,
    sessions: int,
    seed: int,
    control: str = "control",
    treatment: str = "treatment",
) -> OnlineResult:
    """Both online methods on the same users in ``order``, ``sessions`` feeds each, alpha 0.05."""
    arm_t = ex.assign_arms(order, salt=f"video-rec-ab-{seed}")
    clicks_s, minutes_s = ab_sessions(world, order, arm_t, ranks_c, ranks_t, gen, sessions)
    clicks, minutes = clicks_s.sum(axis=1), minutes_s.sum(axis=1)
    imps = np.full(len(order), float(sessions * SLATE))
    ctr = compare_ratios(
        clicks[~arm_t], imps[~arm_t], clicks[arm_t], imps[arm_t], alpha=ALPHA, metric="ctr"
    )
    watch = compare_means(
        minutes[~arm_t], minutes[arm_t], alpha=ALPHA, metric="watch_minutes_per_user"
    )
    ab = ABResult.decided(
        unit="user",
        arms={
            "control": {
                "policy": control,
                "units": int((~arm_t).sum()),
                "watch_minutes_sd": float(minutes[~arm_t].std(ddof=1)),
            },
            "treatment": {
                "policy": treatment,
                "units": int(arm_t.sum()),
                "watch_minutes_sd": float(minutes[arm_t].std(ddof=1)),
            },
        },
        tests={"watch_minutes_per_user": watch, "ctr": ctr},  # CTR is reported, not decided on
        primary="watch_minutes_per_user",
        srm=ex.srm_check(int((~arm_t).sum()), int(arm_t.sum())),
    )

    credit = interleave_sessions(world, order, ranks_t, ranks_c, gen, sessions)  # A = treatment
    prefs = credit.preferences()
    curves: dict[str, list[tuple[int, float]]] = {"ab": [], "interleaving": [], "il_minutes": []}
    for n in checkpoints(len(order)):
        t = arm_t[:n]
        if t.sum() >= 2 and (~t).sum() >= 2:
            curves["ab"].append((n, compare_means(minutes[:n][~t], minutes[:n][t]).p_value))
        curves["interleaving"].append((n, il.interleaving_test(prefs[:n].tolist())["p_value"]))
        minutes_p = paired_credit_test(credit.seconds_a[:n], credit.seconds_b[:n])["p_value"]
        curves["il_minutes"].append((n, minutes_p))
    return OnlineResult(
        control=control,
        treatment=treatment,
        users=len(order),
        sessions_per_user=sessions,
        alpha=ALPHA,
        ab=ab,
        between_user_variance_share=between_user_share(minutes_s, arm_t),
        interleaving=InterleavingResult.from_preferences(treatment, control, prefs.tolist()),
        credit=credit.totals(),
        paired_minutes=paired_credit_test(credit.seconds_a / 60.0, credit.seconds_b / 60.0),
        users_needed={
            "ab_watch_time": users_needed(curves["ab"]),
            "interleaving": users_needed(curves["interleaving"]),
            "interleaving_minutes": users_needed(curves["il_minutes"]),
        },
        users_for_80pct_power={
            "ab_watch_time": users_for_power("ab", minutes[~arm_t], minutes[arm_t]),
            "interleaving_minutes": users_for_power(
                "paired", (credit.seconds_a - credit.seconds_b) / 60.0
            ),
            "interleaving": users_for_power("sign", prefs),
        },
        curves=curves,
    )


def compute_online(
    rec: Recommender,
    world: VideoRecWorld,
    seed: int,
    control: str = CONTROL,
    treatment: str = TREATMENT,
    sessions: int = 2,
) -> OnlineResult:
    """A/B test and team-draft interleaving of ``control`` vs ``treatment`` (serving modes)
    for every user signed up by today, in a seeded order of arrival."""
    gen = rng(seed, "video-rec/online")
    users = np.flatnonzero(world.users["signup_day"].to_numpy() <= world.day)
    order = gen.permutation(users)  # the order users arrive in
    recs = {mode: rec.recommend_users(order, 2 * SLATE, mode).ids for mode in (control, treatment)}
    return compare_online(
        world, order, recs[control], recs[treatment], gen, sessions, seed, control, treatment
    )


def _n(x: float | None) -> str:
    return "not reached" if x is None or not np.isfinite(x) else f"{x:,.0f}"


def report_online(bp: Blueprint, res: OnlineResult) -> None:
    ab, il_res, credit, pm = res.ab, res.interleaving, res.credit, res.paired_minutes
    bp.section("Online evaluation in the world")
    bp.text(
        f"Control: **{MODE_LABELS[res.control]}**; treatment: **{MODE_LABELS[res.treatment]}**. "
        f"{res.users:,} users, {res.sessions_per_user} home feeds of {SLATE} each; users split "
        "by a salted hash. Decision on watch minutes per user, the primary metric (CTR, tested "
        "with the delta method because users, not impressions, are randomised, is reported "
        "beside it: a ranker that maximises watch time may trade clicks for minutes)."
    )
    bp.table(list(ABResult.TEST_HEADER), ab.test_rows())
    bp.text(ab.verdict())
    bp.text(
        f"**Team-draft interleaving** of the same two rankers, on the same users with the same "
        f"{res.sessions_per_user} feeds each (a fresh draft per feed), credit = seconds "
        f"watched: treatment's videos got {credit['minutes_a']:,.0f} minutes and "
        f"{credit['clicks_a']:.0f} clicks, control's {credit['minutes_b']:,.0f} minutes and "
        f"{credit['clicks_b']:.0f} clicks. Per user, treatment won {il_res.wins_a}, control "
        f"{il_res.wins_b}, ties {il_res.ties} ({il_res.ties / max(res.users, 1):.0%}, almost "
        "all of them users who clicked nothing in any feed); "
        f"sign-test p = {il_res.p_value:.3g}. Paired test of credited minutes "
        f"per user: mean difference {pm['mean_diff']:.2f} min, p = {pm['p_value']:.3g}."
    )
    bp.table(list(InterleavingResult.HEADER), [il_res.row()])
    click_x = credit["clicks_a"] / max(credit["clicks_b"], 1.0)
    minute_x = credit["minutes_a"] / max(credit["minutes_b"], 1e-9)
    bp.text(
        f"Treatment's videos drew {click_x:.2f}× control's clicks but {minute_x:.2f}× its "
        f"minutes (users with more clicks on treatment's videos: "
        f"{credit['users_more_clicks_a']:.0f}, on control's: "
        f"{credit['users_more_clicks_b']:.0f}). "
        "When the better ranker wins by choosing videos that are watched longer rather than "
        "clicked more, the sign test is slow: most users who click at all click once, so their "
        "win or loss is decided by which team drafted the clicked video, close to a coin flip, "
        "and the minutes are thrown away. Interleaving's advantage (Chapelle et al., 2012) is "
        "that each user compares both rankers, removing the between-user variance the A/B test "
        "pays for; it shows when the credit keeps its magnitude (the paired test)."
    )
    need, power = res.users_needed, res.users_for_80pct_power
    bp.table(
        ["method", "users needed for p < 0.05 (and staying there)", "users for 80% power"],
        [
            [
                "A/B test, watch minutes per user",
                _n(need["ab_watch_time"]),
                _n(power["ab_watch_time"]),
            ],
            [
                "interleaving, paired test of credited minutes",
                _n(need["interleaving_minutes"]),
                _n(power["interleaving_minutes"]),
            ],
            [
                "interleaving, sign test of per-user wins",
                _n(need["interleaving"]),
                _n(power["interleaving"]),
            ],
        ],
        caption="All tests re-run on growing prefixes of the same user stream, alpha 0.05; the "
        "power column uses the effect and variance measured on all users (less noisy than one "
        "path of p-values).",
    )
    ratio = power["ab_watch_time"] / power["interleaving_minutes"]
    if not np.isfinite(ratio) or ratio >= 10:
        return
    sd_c, sd_t = (ab.arms[arm]["watch_minutes_sd"] for arm in ("control", "treatment"))
    bp.text(
        f"Interleaving (paired test) needs {ratio:.1f}× fewer users than the A/B test here, "
        "not the 10-100× of the literature. Its advantage "
        "is that every user's own level cancels in the paired difference, and in this world "
        f"only {res.between_user_variance_share:.0%} of one feed's watch-minute variance is a "
        "trait of the user (the correlation of two feeds of the same user); the rest is the "
        "click lottery inside a feed (a few per cent CTR, videos of very different lengths), "
        "which interleaving does not remove. Each ranker also fills only half of an interleaved "
        f"feed: per user the credited difference has mean {pm['mean_diff']:.2f} min (SD "
        f"{pm['sd_diff']:.2f}), against an A/B difference of "
        f"{ab.tests['watch_minutes_per_user'].diff:.2f} min between arms "
        f"whose users' SDs are {sd_c:.2f} and {sd_t:.2f}. Real platforms' users differ by orders "
        "of magnitude in how much they watch; that heterogeneity is what the 10-100× of "
        "Chapelle et al. (2012) cancels, and this world does not simulate it."
    )
