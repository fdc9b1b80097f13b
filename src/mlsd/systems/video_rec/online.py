"""Online evaluation in the world (book ch. 6, "Online metrics"): an A/B test and interleaving.

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
many users each method needs before its decision is significant.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats

from mlsd import experiments as ex
from mlsd import interleaving as il
from mlsd.systems.video_rec.pipeline import Recommender
from mlsd.systems.video_rec.world import VideoRecWorld

log = logging.getLogger(__name__)

SLATE = 10
ALPHA = 0.05


def _checkpoints(n: int) -> list[int]:
    pts = np.unique(np.geomspace(6, n, num=min(32, max(n // 4, 2))).astype(int))
    return [int(p) for p in pts if p >= 6] or [n]


def _z(alpha: float, power: float) -> float:
    return float(stats.norm.ppf(1 - alpha / 2) + stats.norm.ppf(power))


def users_for_power(
    kind: str, a: np.ndarray, b: np.ndarray | None = None, alpha: float = ALPHA, power: float = 0.8
) -> float:
    """Users a test needs to detect the effect measured on ``a`` (and ``b``) with ``power``.

    ``ab``: per-user values of control ``a`` and treatment ``b``, half the users in each arm;
    ``paired``: per-user credit differences ``a``; ``sign``: per-user preferences ``a`` (+1, -1,
    0). The effect and variances are those of the whole sample, so the answer does not hinge on
    one path of p-values crossing alpha. ``inf`` when no effect was measured.
    """
    z2 = _z(alpha, power) ** 2
    x = np.asarray(a, dtype=np.float64)
    if kind == "ab":
        y = np.asarray(b, dtype=np.float64)
        delta = float(y.mean() - x.mean())
        var = float(x.var(ddof=1) + y.var(ddof=1))
        return 2.0 * z2 * var / delta**2 if delta else math.inf
    if kind == "paired":
        mean = float(x.mean())
        return z2 * float(x.var(ddof=1)) / mean**2 if mean else math.inf
    if kind == "sign":
        decided = float((x != 0).mean())
        if not decided:
            return math.inf
        w = float((x > 0).sum() / (x != 0).sum())
        if w == 0.5:
            return math.inf
        za, zb = float(stats.norm.ppf(1 - alpha / 2)), float(stats.norm.ppf(power))
        n_decided = ((za * 0.5 + zb * math.sqrt(w * (1 - w))) / (w - 0.5)) ** 2
        return n_decided / decided
    raise ValueError(f"unknown kind {kind!r}; use 'ab', 'paired' or 'sign'")


def users_needed(p_values: list[tuple[int, float]], alpha: float = ALPHA) -> int | None:
    """The smallest checkpoint from which the test stays significant (None if it never does)."""
    needed = None
    for n, p in p_values:
        needed = (n if needed is None else needed) if p < alpha else None
    return needed


def paired_credit_test(credit_a: np.ndarray, credit_b: np.ndarray) -> dict[str, float]:
    """Paired t-test of per-user credit (A minus B); under the null team draft makes it mean 0."""
    diff = np.asarray(credit_a, dtype=np.float64) - np.asarray(credit_b, dtype=np.float64)
    if diff.size < 2:
        raise ValueError(f"need >= 2 users, got {diff.size}")
    sd = float(diff.std(ddof=1))
    mean = float(diff.mean())
    if sd == 0.0:
        p_value = 1.0 if mean == 0.0 else 0.0
    else:
        p_value = float(2 * stats.t.sf(abs(mean) / (sd / math.sqrt(diff.size)), diff.size - 1))
    return {"mean_diff": mean, "sd_diff": sd, "users": float(diff.size), "p_value": p_value}


@dataclass
class InterleavedCredit:
    """Per user, summed over sessions: seconds watched and clicks credited to each ranker."""

    seconds_a: np.ndarray
    seconds_b: np.ndarray
    clicks_a: np.ndarray
    clicks_b: np.ndarray

    def preferences(self) -> np.ndarray:
        """+1 where A's videos were watched longer, -1 where B's were, 0 on a tie."""
        return np.sign(self.seconds_a - self.seconds_b).astype(np.int64)


def interleave_sessions(
    world: VideoRecWorld,
    users: np.ndarray,
    ranks_a: list[np.ndarray],
    ranks_b: list[np.ndarray],
    rng: np.random.Generator,
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
                ranks_a[i].tolist(), ranks_b[i].tolist(), SLATE, rng
            )
            slates[i] = _pad(np.asarray(merged, dtype=np.int64), world, rng)
            is_a[i, : len(teams)] = np.asarray(teams) == "A"
            is_b[i, : len(teams)] = np.asarray(teams) == "B"
        clicks, minutes = world.serve(users, slates, rng)
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
    rng: np.random.Generator,
    sessions: int,
) -> tuple[np.ndarray, np.ndarray]:
    """``sessions`` feeds per user from their arm: clicks and watch minutes per user and feed."""
    clicks = np.zeros((len(users), sessions))
    minutes = np.zeros((len(users), sessions))
    for s in range(sessions):
        slates = np.stack(
            [_pad((ranks_t if t else ranks_c)[i][:SLATE], world, rng) for i, t in enumerate(arm_t)]
        )
        c, m = world.serve(users, slates, rng)
        clicks[:, s] = c.sum(axis=1)
        minutes[:, s] = m.sum(axis=1)
    return clicks, minutes


def between_user_share(per_session: np.ndarray, arm_t: np.ndarray) -> float:
    """The share of one feed's watch-minute variance that is a trait of the user (the intra-class
    correlation of feeds of the same user, within arm): what interleaving cancels and an A/B
    test pays for. ``nan`` with fewer than two feeds per user."""
    x = np.asarray(per_session, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] < 2:
        return math.nan
    x = x.copy()
    for arm in (arm_t, ~arm_t):
        x[arm] -= x[arm].mean()
    k = x.shape[1]
    user_means = x.mean(axis=1)
    within = float(((x - user_means[:, None]) ** 2).sum() / (x.shape[0] * (k - 1)))
    between = float(user_means.var(ddof=1)) - within / k
    total = between + within
    return max(between, 0.0) / total if total > 0 else math.nan


def run_online(
    rec: Recommender,
    world: VideoRecWorld,
    users: np.ndarray,
    control: str,
    treatment: str,
    seed: int,
    sessions: int = 2,
) -> dict[str, Any]:
    """A/B test and team-draft interleaving of ``control`` vs ``treatment`` (pipeline modes)."""
    rng = np.random.default_rng(seed)
    order = rng.permutation(users)  # the order users arrive in
    recs = {mode: rec.recommend_users(order, 2 * SLATE, mode).ids for mode in (control, treatment)}
    res = compare_online(world, order, recs[control], recs[treatment], rng, sessions, seed)
    return {"control": control, "treatment": treatment, **res}


def compare_online(
    world: VideoRecWorld,
    order: np.ndarray,
    ranks_c: list[np.ndarray],
    ranks_t: list[np.ndarray],
    rng: np.random.Generator,
    sessions: int,
    seed: int,
) -> dict[str, Any]:
    """Both online methods on the same users in ``order``, ``sessions`` feeds each, alpha 0.05."""
    arm_t = ex.assign_arms(order, salt=f"video-rec-ab-{seed}")
    clicks_s, minutes_s = ab_sessions(world, order, arm_t, ranks_c, ranks_t, rng, sessions)
    clicks, minutes = clicks_s.sum(axis=1), minutes_s.sum(axis=1)
    imps = np.full(len(order), float(sessions * SLATE))
    ctr = ex.compare_ratios(
        clicks[~arm_t], imps[~arm_t], clicks[arm_t], imps[arm_t], alpha=ALPHA, metric="ctr"
    )
    watch = ex.compare_means(
        minutes[~arm_t], minutes[arm_t], alpha=ALPHA, metric="watch_minutes_per_user"
    )
    srm = ex.srm_check(int((~arm_t).sum()), int(arm_t.sum()))
    decision, reason = ex.decide(watch, srm)  # CTR is reported, not a guardrail

    credit = interleave_sessions(world, order, ranks_t, ranks_c, rng, sessions)  # A = treatment
    prefs = credit.preferences()
    sign = il.interleaving_test(prefs.tolist())
    paired = paired_credit_test(credit.seconds_a / 60.0, credit.seconds_b / 60.0)
    clicks_won = float((credit.clicks_a > credit.clicks_b).sum())
    clicks_lost = float((credit.clicks_a < credit.clicks_b).sum())

    curves: dict[str, list[tuple[int, float]]] = {"ab": [], "interleaving": [], "il_minutes": []}
    for n in _checkpoints(len(order)):
        t = arm_t[:n]
        if t.sum() >= 2 and (~t).sum() >= 2:
            curves["ab"].append((n, ex.compare_means(minutes[:n][~t], minutes[:n][t]).p_value))
        curves["interleaving"].append((n, il.interleaving_test(prefs[:n].tolist())["p_value"]))
        minutes_p = paired_credit_test(credit.seconds_a[:n], credit.seconds_b[:n])["p_value"]
        curves["il_minutes"].append((n, minutes_p))
    return {
        "users": len(order),
        "sessions_per_user": sessions,
        "alpha": ALPHA,
        "ab": {
            "ctr": ctr.to_dict(),
            "watch_minutes_per_user": watch.to_dict(),
            "srm": srm.to_dict(),
            "decision": str(decision),
            "reason": reason,
            "between_user_variance_share": between_user_share(minutes_s, arm_t),
            "watch_minutes_sd": [float(minutes[~arm_t].std(ddof=1)), float(minutes[arm_t].std())],
        },
        "interleaving": {
            **sign,
            "tie_share": sign["ties"] / max(len(order), 1),
            "sessions_per_user": sessions,
            "minutes_a": float(credit.seconds_a.sum() / 60.0),
            "minutes_b": float(credit.seconds_b.sum() / 60.0),
            "clicks_a": float(credit.clicks_a.sum()),
            "clicks_b": float(credit.clicks_b.sum()),
            "users_more_clicks_a": clicks_won,
            "users_more_clicks_b": clicks_lost,
            "paired_minutes": paired,
        },
        "users_needed": {
            "ab_watch_time": users_needed(curves["ab"]),
            "interleaving": users_needed(curves["interleaving"]),
            "interleaving_minutes": users_needed(curves["il_minutes"]),
        },
        "users_for_80pct_power": {
            "ab_watch_time": users_for_power("ab", minutes[~arm_t], minutes[arm_t]),
            "interleaving_minutes": users_for_power(
                "paired", (credit.seconds_a - credit.seconds_b) / 60.0
            ),
            "interleaving": users_for_power("sign", prefs),
        },
        "curves": curves,
    }


def _pad(slate: np.ndarray, world: VideoRecWorld, rng: np.random.Generator) -> np.ndarray:
    """Fill a short list up to the slate size with random eligible videos."""
    slate = np.asarray(slate, dtype=np.int64)
    if len(slate) >= SLATE:
        return slate[:SLATE]
    pool = np.setdiff1d(world.eligible_videos(), slate)
    return np.concatenate([slate, rng.choice(pool, SLATE - len(slate), replace=False)])
