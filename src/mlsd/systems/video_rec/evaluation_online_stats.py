"""Step 5 online, the statistics: how many users a test needs, and the variance it pays for.

* :func:`users_for_power`: users an A/B test, a paired interleaving test or a sign test needs
  for 80% power, from the effect and variances of the whole sample;
* :func:`users_needed`: the smallest prefix of the user stream from which a test stays
  significant;
* :func:`paired_credit_test`: the paired t-test of credited minutes per user (interleaving that
  keeps the size of the difference);
* :func:`between_user_share`: the share of one feed's variance that is a trait of the user.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import stats

ALPHA = 0.05


def checkpoints(n: int) -> list[int]:
    """Growing prefixes of a stream of ``n`` users (about 32, geometric, from 6) to re-test on."""
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
