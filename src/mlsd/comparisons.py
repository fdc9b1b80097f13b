"""Two-arm comparisons of one metric: the hypothesis tests an online experiment runs.

* :func:`compare_proportions`: two-proportion z-test (CTR with users as the unit);
* :func:`compare_means`: Welch's t-test on per-unit values (revenue per user, after
  :func:`mlsd.experiments.aggregate_per_unit`);
* :func:`compare_ratios`: a ratio metric whose unit of analysis is finer than the unit of
  randomisation (revenue per impression), with delta-method variances (Deng et al. 2018);
* :func:`compare_paired`: two policies measured on the same units (two rankers' recall per
  test user offline), a paired t-test;
* :func:`required_sample_size`: units per arm for a given power;
  :func:`minimum_detectable_effect`: the smallest difference a finished test could detect.

Each returns a :class:`MetricComparison`: the diff with its CI, the relative lift with its
delta-method CI, and the p-value; :mod:`mlsd.experiments` decides on them.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy import stats


@dataclass(frozen=True)
class MetricComparison:
    """Control vs treatment for one metric; ``diff = treatment - control`` with its CI."""

    metric: str
    control: float
    treatment: float
    diff: float
    ci_low: float
    ci_high: float
    relative_lift: float
    relative_ci_low: float
    relative_ci_high: float
    p_value: float
    alpha: float
    n_control: int
    n_treatment: int
    test: str
    higher_is_better: bool = True

    @property
    def significant(self) -> bool:
        return bool(self.p_value < self.alpha)

    @property
    def improved(self) -> bool:
        """Significant and in the good direction."""
        good = self.diff > 0 if self.higher_is_better else self.diff < 0
        return self.significant and good

    @property
    def degraded(self) -> bool:
        """Significant and in the bad direction."""
        bad = self.diff < 0 if self.higher_is_better else self.diff > 0
        return self.significant and bad

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "significant": self.significant}

    def summary(self) -> str:
        conf = round(100 * (1 - self.alpha))
        return (
            f"{self.metric}: {self.control:.6g} -> {self.treatment:.6g} "
            f"({self.relative_lift:+.2%}, {conf}% CI of diff "
            f"[{self.ci_low:.4g}, {self.ci_high:.4g}], p={self.p_value:.3g})"
        )


def _ratio_ci(
    mean_c: float, mean_t: float, var_c: float, var_t: float, z: float
) -> tuple[float, float, float]:
    """Relative lift ``t/c - 1`` with a delta-method CI (var_* are variances of the means)."""
    if mean_c == 0.0:
        return math.nan, math.nan, math.nan
    ratio = mean_t / mean_c
    se = math.sqrt(var_t / mean_c**2 + mean_t**2 * var_c / mean_c**4)
    return ratio - 1.0, ratio - 1.0 - z * se, ratio - 1.0 + z * se


@dataclass(frozen=True)
class _ArmEstimate:
    """One arm's estimate: its mean, the variance of that mean, and its number of units."""

    mean: float
    var: float
    n: int


def _comparison(
    metric: str,
    test: str,
    c: _ArmEstimate,
    t: _ArmEstimate,
    q: float,
    p_value: float,
    alpha: float,
    higher_is_better: bool,
) -> MetricComparison:
    """The diff with its CI ``± q·sqrt(var_c + var_t)`` and the relative lift with its
    delta-method CI, from the two arms' estimates and the test's ``q`` and ``p_value``."""
    diff = t.mean - c.mean
    half = q * math.sqrt(c.var + t.var)
    rel, rel_lo, rel_hi = _ratio_ci(c.mean, t.mean, c.var, t.var, q)
    return MetricComparison(
        metric=metric,
        control=c.mean,
        treatment=t.mean,
        diff=diff,
        ci_low=diff - half,
        ci_high=diff + half,
        relative_lift=rel,
        relative_ci_low=rel_lo,
        relative_ci_high=rel_hi,
        p_value=p_value,
        alpha=alpha,
        n_control=c.n,
        n_treatment=t.n,
        test=test,
        higher_is_better=higher_is_better,
    )


def compare_proportions(
    success_c: int,
    n_c: int,
    success_t: int,
    n_t: int,
    alpha: float = 0.05,
    metric: str = "rate",
    higher_is_better: bool = True,
) -> MetricComparison:
    """Two-proportion z-test (pooled SE for the p-value, unpooled SE for the CI)."""
    for name, s, n in (("control", success_c, n_c), ("treatment", success_t, n_t)):
        if n <= 0 or not 0 <= s <= n:
            raise ValueError(f"{name}: need 0 <= successes <= n and n > 0, got {s} of {n}")
    pc, pt = success_c / n_c, success_t / n_t
    diff = pt - pc
    pooled = (success_c + success_t) / (n_c + n_t)
    se_pooled = math.sqrt(pooled * (1 - pooled) * (1 / n_c + 1 / n_t))
    p_value = float(2 * stats.norm.sf(abs(diff) / se_pooled)) if se_pooled > 0 else 1.0
    c = _ArmEstimate(pc, pc * (1 - pc) / n_c, int(n_c))
    t = _ArmEstimate(pt, pt * (1 - pt) / n_t, int(n_t))
    z = float(stats.norm.ppf(1 - alpha / 2))
    return _comparison(metric, "two-proportion z-test", c, t, z, p_value, alpha, higher_is_better)


def compare_means(
    values_c: np.ndarray,
    values_t: np.ndarray,
    alpha: float = 0.05,
    metric: str = "mean",
    higher_is_better: bool = True,
) -> MetricComparison:
    """Welch's t-test on per-unit values (e.g. revenue per user), with a Welch CI of the diff."""
    c = np.asarray(values_c, dtype=np.float64).ravel()
    t = np.asarray(values_t, dtype=np.float64).ravel()
    if c.size < 2 or t.size < 2:
        raise ValueError(f"each arm needs >= 2 values, got {c.size} and {t.size}")
    if not (np.isfinite(c).all() and np.isfinite(t).all()):
        raise ValueError("values must be finite")
    mc, mt = float(c.mean()), float(t.mean())
    var_c, var_t = float(c.var(ddof=1)) / c.size, float(t.var(ddof=1)) / t.size
    diff = mt - mc
    se = math.sqrt(var_c + var_t)
    if se > 0:
        df = se**4 / (var_c**2 / (c.size - 1) + var_t**2 / (t.size - 1))
        p_value = float(2 * stats.t.sf(abs(diff) / se, df))
        q = float(stats.t.ppf(1 - alpha / 2, df))
    else:
        p_value, q = (1.0 if diff == 0 else 0.0), 0.0
    arm_c, arm_t = _ArmEstimate(mc, var_c, int(c.size)), _ArmEstimate(mt, var_t, int(t.size))
    return _comparison(metric, "Welch t-test", arm_c, arm_t, q, p_value, alpha, higher_is_better)


def _ratio_and_variance(num: np.ndarray, den: np.ndarray) -> tuple[float, float]:
    """Ratio of sums ``sum(num) / sum(den)`` over units and its delta-method variance."""
    n, d_mean = num.size, float(den.mean())
    ratio = float(num.sum() / den.sum())
    resid = num - ratio * den  # linearisation of the ratio around its estimate
    return ratio, float(resid.var(ddof=1)) / (n * d_mean**2)


def compare_estimates(
    control: tuple[float, float, int],
    treatment: tuple[float, float, int],
    alpha: float = 0.05,
    metric: str = "estimate",
    higher_is_better: bool = True,
) -> MetricComparison:
    """A z-test from each arm's ``(estimate, variance of the estimate, units)`` made elsewhere
    (e.g. a canary arm whose units do not vary, given the other arm's per-unit variance)."""
    c, t = _ArmEstimate(*control), _ArmEstimate(*treatment)
    if c.var < 0 or t.var < 0 or c.n < 1 or t.n < 1:
        raise ValueError("variances must be >= 0 and each arm needs a unit")
    diff, se = t.mean - c.mean, math.sqrt(c.var + t.var)
    p_value = float(2 * stats.norm.sf(abs(diff) / se)) if se > 0 else float(diff == 0)
    z = float(stats.norm.ppf(1 - alpha / 2))
    return _comparison(metric, "z-test", c, t, z, p_value, alpha, higher_is_better)


def ratio_estimate(num: np.ndarray, den: np.ndarray) -> tuple[float, float]:
    """One arm's ratio of sums over units and the delta-method variance of that ratio (for a
    bound on a single arm, e.g. a canary's calibration); needs >= 2 units and a positive sum of
    ``den``."""
    n_ = np.asarray(num, dtype=np.float64).ravel()
    d_ = np.asarray(den, dtype=np.float64).ravel()
    if n_.size != d_.size or n_.size < 2 or d_.sum() <= 0:
        raise ValueError("need one numerator per denominator, >= 2 units, a positive denominator")
    return _ratio_and_variance(n_, d_)


def compare_ratios(
    num_c: np.ndarray,
    den_c: np.ndarray,
    num_t: np.ndarray,
    den_t: np.ndarray,
    alpha: float = 0.05,
    metric: str = "ratio",
    higher_is_better: bool = True,
) -> MetricComparison:
    """A ratio metric whose unit of analysis is finer than the unit of randomisation, e.g.
    revenue per impression with users randomised: per-unit numerators and denominators, the
    delta method for the variance of each arm's ratio (Deng et al. 2018), a z-test of the diff.
    """
    arrays = [np.asarray(a, dtype=np.float64).ravel() for a in (num_c, den_c, num_t, den_t)]
    nc, dc, nt, dt = arrays
    if nc.size != dc.size or nt.size != dt.size:
        raise ValueError("numerators and denominators must have one value per unit")
    if nc.size < 2 or nt.size < 2 or dc.sum() <= 0 or dt.sum() <= 0:
        raise ValueError("each arm needs >= 2 units and a positive denominator")
    rc, var_c = _ratio_and_variance(nc, dc)
    rt, var_t = _ratio_and_variance(nt, dt)
    diff, se = rt - rc, math.sqrt(var_c + var_t)
    z = float(stats.norm.ppf(1 - alpha / 2))
    p_value = float(2 * stats.norm.sf(abs(diff) / se)) if se > 0 else float(diff == 0)
    c, t = _ArmEstimate(rc, var_c, int(nc.size)), _ArmEstimate(rt, var_t, int(nt.size))
    return _comparison(metric, "delta-method z-test", c, t, z, p_value, alpha, higher_is_better)


def required_sample_size(
    base_rate: float, min_detectable_relative_lift: float, alpha: float = 0.05, power: float = 0.8
) -> int:
    """Units per arm for a two-sided two-proportion z-test to detect the lift with ``power``.

    ``n = (z_{1-a/2} sqrt(2 p q) + z_power sqrt(p1 q1 + p2 q2))^2 / (p2 - p1)^2`` with ``p`` the
    mean of the two rates.
    """
    p1 = base_rate
    p2 = base_rate * (1 + min_detectable_relative_lift)
    if not (0 < p1 < 1 and 0 < p2 < 1) or p1 == p2:
        raise ValueError(f"need 0 < rates < 1 and a non-zero lift, got {p1} -> {p2}")
    za = float(stats.norm.ppf(1 - alpha / 2))
    zb = float(stats.norm.ppf(power))
    pbar = (p1 + p2) / 2
    num = za * math.sqrt(2 * pbar * (1 - pbar)) + zb * math.sqrt(p1 * (1 - p1) + p2 * (1 - p2))
    return math.ceil(num**2 / (p2 - p1) ** 2)


def compare_paired(
    values_c: np.ndarray,
    values_t: np.ndarray,
    alpha: float = 0.05,
    metric: str = "mean",
    higher_is_better: bool = True,
) -> MetricComparison:
    """Two policies measured on the *same* units (e.g. two rankers' recall@10 per test user):
    a paired t-test on the per-unit differences, the relative lift with a delta-method CI that
    keeps the covariance of the two means."""
    c = np.asarray(values_c, dtype=np.float64).ravel()
    t = np.asarray(values_t, dtype=np.float64).ravel()
    if c.size != t.size or c.size < 2:
        raise ValueError(f"need >= 2 paired values, got {c.size} and {t.size}")
    if not (np.isfinite(c).all() and np.isfinite(t).all()):
        raise ValueError("values must be finite")
    n = c.size
    mc, mt = float(c.mean()), float(t.mean())
    d = t - c
    diff, se = float(d.mean()), float(d.std(ddof=1)) / math.sqrt(n)
    q = float(stats.t.ppf(1 - alpha / 2, n - 1))
    p_value = float(2 * stats.t.sf(abs(diff) / se, n - 1)) if se > 0 else float(diff == 0)
    rel = rel_lo = rel_hi = math.nan
    if mc != 0.0:
        cov = np.cov(c, t, ddof=1) / n  # of the two means
        r = mt / mc
        var_r = (cov[1, 1] - 2 * r * cov[0, 1] + r**2 * cov[0, 0]) / mc**2
        half_r = q * math.sqrt(max(float(var_r), 0.0))
        rel, rel_lo, rel_hi = r - 1.0, r - 1.0 - half_r, r - 1.0 + half_r
    return MetricComparison(
        metric=metric,
        control=mc,
        treatment=mt,
        diff=diff,
        ci_low=diff - q * se,
        ci_high=diff + q * se,
        relative_lift=rel,
        relative_ci_low=rel_lo,
        relative_ci_high=rel_hi,
        p_value=p_value,
        alpha=alpha,
        n_control=n,
        n_treatment=n,
        test="paired t-test",
        higher_is_better=higher_is_better,
    )


def minimum_detectable_effect(comparison: MetricComparison, power: float = 0.8) -> float:
    """The smallest absolute difference a test of this design (its units, its variance, its
    alpha) detects with ``power``, two-sided: ``(z_{1-a/2} + z_power) * se``, the standard error
    read back from the comparison's CI. Units needed scale as ``(mde / effect)^2``."""
    if not 0 < power < 1:
        raise ValueError(f"power must be in (0, 1), got {power}")
    za = float(stats.norm.ppf(1 - comparison.alpha / 2))
    se = (comparison.ci_high - comparison.ci_low) / (2 * za)
    return (za + float(stats.norm.ppf(power))) * se
