"""The canary's guardrails and their check at one stage (:mod:`mlsd.canary` runs the stages).

A guardrail **breaks** when the stage's data reject, one-sided at the per-check level, the
hypothesis that it holds: the canary is no worse than the control by more than the tolerance
(:mod:`mlsd.comparisons`: Welch for per-unit means, the delta method for ratios), or its own
value is within the bounds (a normal bound for a mean or a ratio, the distribution-free
order-statistic bound for a quantile such as p99 latency). Fewer units than the minimum is an
insufficient sample, never a pass.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

import numpy as np
from scipy import stats

from mlsd.comparisons import (
    MetricComparison,
    compare_estimates,
    compare_means,
    compare_ratios,
    ratio_estimate,
)

ArmValues = Mapping[str, np.ndarray]
"""One arm's observations in a stage: a metric key -> one value per unit (user, request, ...)."""


class Status(StrEnum):
    PASS = "pass"
    BROKEN = "broken"
    INSUFFICIENT = "insufficient sample"


@dataclass(frozen=True)
class Guardrail:
    """One guardrail metric of a canary.

    ``metric`` keys the per-unit values; with ``denominator`` the metric is the ratio of sums
    (CTR = clicks / impressions per user, compared with the delta method); with ``quantile``
    it is that quantile of the values (p99 latency per request). Either ``tolerance`` (the
    degradation allowed vs the control: a share of the control's value when ``relative``,
    else in the metric's units) or ``bounds`` (an interval the canary's own value must stay
    in, no control needed) applies. ``min_units``: per arm, below it the stage cannot check.
    """

    name: str
    metric: str
    higher_is_better: bool = True
    tolerance: float = 0.05
    relative: bool = True
    bounds: tuple[float, float] | None = None
    denominator: str | None = None
    quantile: float | None = None
    min_units: int = 30

    def __post_init__(self) -> None:
        if self.tolerance < 0 or not math.isfinite(self.tolerance):
            raise ValueError(
                f"guardrail {self.name!r}: tolerance must be >= 0, got {self.tolerance}"
            )
        if self.min_units < 2:
            raise ValueError(f"guardrail {self.name!r}: min_units must be >= 2")
        if self.quantile is not None:
            if not 0.0 < self.quantile < 1.0:
                raise ValueError(f"guardrail {self.name!r}: quantile must be in (0, 1)")
            if self.bounds is None or self.denominator is not None:
                raise ValueError(f"guardrail {self.name!r}: a quantile takes bounds, no ratio")
        if self.bounds is not None and not self.bounds[0] <= self.bounds[1]:
            raise ValueError(f"guardrail {self.name!r}: bounds must be (low, high), low <= high")

    @property
    def allowed(self) -> str:
        """The rule in words, for the blueprint."""
        if self.bounds is not None:
            lo, hi = self.bounds
            what = f"p{self.quantile * 100:g}" if self.quantile is not None else "value"
            if math.isinf(lo):
                return f"{what} ≤ {hi:.4g}"
            return f"{what} ≥ {lo:.4g}" if math.isinf(hi) else f"{what} in [{lo:.4g}, {hi:.4g}]"
        sign = "-" if self.higher_is_better else "+"
        tol = f"{self.tolerance:.0%}" if self.relative else f"{self.tolerance:.4g}"
        return (
            f"change vs control ≥ {sign}{tol}"
            if self.higher_is_better
            else (f"change vs control ≤ {sign}{tol}")
        )


@dataclass(frozen=True)
class GuardrailCheck:
    """One guardrail at one stage: the two arms' values, the change, the one-sided bound on the
    side most favourable to the canary, and the status."""

    guardrail: str
    control: float | None
    treatment: float
    change: float | None
    optimistic_bound: float
    n_control: int
    n_treatment: int
    status: str
    reason: str


def _values(arm: ArmValues, key: str, guardrail: str) -> np.ndarray:
    if key not in arm:
        raise KeyError(
            f"guardrail {guardrail!r}: no values {key!r} in the stage's arm {sorted(arm)}"
        )
    return np.asarray(arm[key], dtype=np.float64).ravel()


def _quantile_bound(x: np.ndarray, q: float, alpha: float, upper: bool) -> float:
    """A one-sided distribution-free ``1 - alpha`` bound on the ``q`` quantile: the order
    statistic ``x_(j)`` with ``P(Binomial(n, q) < j) <= alpha`` (lower); upper by symmetry."""
    if upper:
        return -_quantile_bound(-x, 1.0 - q, alpha, upper=False)
    xs = np.sort(x)
    cdf = stats.binom.cdf(np.arange(xs.size), xs.size, q)
    ok = np.flatnonzero(cdf <= alpha)
    return float(xs[ok.max()]) if ok.size else -math.inf


def _estimate(g: Guardrail, arm: ArmValues, alpha: float) -> tuple[float, float, float]:
    """One arm's value of ``g`` with its one-sided ``1 - alpha`` lower and upper bounds."""
    lo_hi = g.bounds
    x = _values(arm, g.metric, g.name)
    if g.quantile is not None:
        est = float(np.quantile(x, g.quantile))
        return (
            est,
            _quantile_bound(x, g.quantile, alpha, False),
            _quantile_bound(x, g.quantile, alpha, True),
        )
    if g.denominator is not None:
        est, var = ratio_estimate(x, _values(arm, g.denominator, g.name))
    else:
        est, var = float(x.mean()), float(x.var(ddof=1)) / x.size
    if not var > 0:
        if lo_hi is not None and lo_hi[0] <= est <= lo_hi[1]:
            return est, est, est  # within the bounds with no spread: nothing to bound
        raise ValueError("no variation between units: the normal bound needs events")
    half = float(stats.norm.ppf(1 - alpha)) * math.sqrt(var)
    return est, est - half, est + half


def _check_bounds(g: Guardrail, c: ArmValues | None, t: ArmValues, alpha: float) -> GuardrailCheck:
    assert g.bounds is not None
    lo, hi = g.bounds
    n = int(_values(t, g.metric, g.name).size)
    if c is not None and g.metric not in c:
        c = None  # the control need not measure a bound it is not tested on
    nc = 0 if c is None else int(_values(c, g.metric, g.name).size)
    try:  # the control's value is shown beside the canary's, not tested
        ctrl = _estimate(g, c, alpha)[0] if c is not None and nc >= 2 else None
    except ValueError:
        ctrl = None
    if n < g.min_units:
        why = f"{n} < {g.min_units} units"
        return GuardrailCheck(
            g.name, ctrl, math.nan, None, math.nan, nc, n, Status.INSUFFICIENT, why
        )
    try:
        est, low, high = _estimate(g, t, alpha)
    except ValueError as err:
        return GuardrailCheck(
            g.name, ctrl, math.nan, None, math.nan, nc, n, Status.INSUFFICIENT, str(err)
        )
    if est > hi:
        bound, broken = low, low > hi
    elif est < lo:
        bound, broken = high, high < lo
    else:
        bound, broken = math.nan, False
    status = Status.BROKEN if broken else Status.PASS
    why = f"{est:.4g}" + ("" if math.isnan(bound) else f" (optimistic bound {bound:.4g})")
    return GuardrailCheck(g.name, ctrl, est, None, bound, nc, n, status, f"{why} vs {g.allowed}")


def _unit_spread(g: Guardrail, arm: ArmValues) -> tuple[float, float, int, float]:
    """An arm's estimate, the per-unit variance behind it, its units, and the scale that turns
    that variance into the estimate's (``1/n`` for a mean, ``1/(n mean(den)^2)`` for a ratio)."""
    x = _values(arm, g.metric, g.name)
    if g.denominator is None:
        return float(x.mean()), float(x.var(ddof=1)), x.size, 1.0 / x.size
    den = _values(arm, g.denominator, g.name)
    est, _ = ratio_estimate(x, den)
    resid = x - est * den  # the ratio's linearisation, as in the delta method
    return est, float(resid.var(ddof=1)), x.size, 1.0 / (x.size * float(den.mean()) ** 2)


def _compare(g: Guardrail, c: ArmValues, t: ArmValues, alpha: float) -> MetricComparison:
    """Control vs canary (Welch, or the delta method for a ratio). An arm whose units do not
    vary (8 users without a click; every face blurred) would add no variance and make the
    test overconfident: it borrows the other arm's per-unit variance (a z-test); with neither
    varying there is nothing to test (``ValueError``: an insufficient sample)."""
    (ec, sc, nc, kc), (et, st, nt, kt) = _unit_spread(g, c), _unit_spread(g, t)
    if sc > 0 and st > 0:
        xc, xt = _values(c, g.metric, g.name), _values(t, g.metric, g.name)
        if g.denominator is None:
            return compare_means(xc, xt, alpha=alpha, metric=g.name)
        dc, dt = _values(c, g.denominator, g.name), _values(t, g.denominator, g.name)
        return compare_ratios(xc, dc, xt, dt, alpha=alpha, metric=g.name)
    if not max(sc, st) > 0:
        raise ValueError("no arm's units vary: no variance to test with")
    s2 = max(sc, st)
    control = (ec, (sc if sc > 0 else s2) * kc, nc)
    canary = (et, (st if st > 0 else s2) * kt, nt)
    return compare_estimates(control, canary, alpha=alpha, metric=g.name)


def check_guardrail(
    g: Guardrail, control: ArmValues | None, treatment: ArmValues, alpha: float
) -> GuardrailCheck:
    """Check one guardrail at one-sided level ``alpha`` (see the module's rule)."""
    if g.bounds is not None:
        return _check_bounds(g, control, treatment, alpha)
    if control is None:
        raise ValueError(f"guardrail {g.name!r} compares with the control: no control in the stage")
    nc = int(_values(control, g.metric, g.name).size)
    nt = int(_values(treatment, g.metric, g.name).size)
    if min(nc, nt) < g.min_units:
        return GuardrailCheck(
            g.name,
            None,
            math.nan,
            None,
            math.nan,
            nc,
            nt,
            Status.INSUFFICIENT,
            f"{min(nc, nt)} < {g.min_units} units in an arm",
        )
    try:
        (ec, sc, _, _), (et, st, _, _) = _unit_spread(g, control), _unit_spread(g, treatment)
        if not max(sc, st) > 0:  # no arm varies (no block anywhere): the point values decide
            return _check_points(g, ec, et, nc, nt)
        cmp = _compare(g, control, treatment, 2 * alpha)  # its ends are one-sided 1 - alpha
    except ValueError as err:
        return GuardrailCheck(
            g.name, None, math.nan, None, math.nan, nc, nt, Status.INSUFFICIENT, str(err)
        )
    if g.relative:
        change, lo, hi = cmp.relative_lift, cmp.relative_ci_low, cmp.relative_ci_high
    else:
        change, lo, hi = cmp.diff, cmp.ci_low, cmp.ci_high
    if not math.isfinite(change):
        return GuardrailCheck(
            g.name,
            cmp.control,
            cmp.treatment,
            None,
            math.nan,
            nc,
            nt,
            Status.INSUFFICIENT,
            "the control's value is 0: no relative change",
        )
    # the canary-friendly end of the one-sided interval must still be worse than allowed
    bound = hi if g.higher_is_better else lo
    broken = bound < -g.tolerance if g.higher_is_better else bound > g.tolerance
    fmt = (lambda v: f"{v:+.1%}") if g.relative else (lambda v: f"{v:+.4g}")
    why = f"change {fmt(change)} (optimistic bound {fmt(bound)}) vs {g.allowed}"
    status = Status.BROKEN if broken else Status.PASS
    return GuardrailCheck(g.name, cmp.control, cmp.treatment, change, bound, nc, nt, status, why)


def _check_points(g: Guardrail, c: float, t: float, nc: int, nt: int) -> GuardrailCheck:
    """Neither arm varies: within the tolerance the point values pass; beyond it nothing can
    be tested (an insufficient sample: the rollout halts)."""
    if g.relative:  # from a zero control, any other value is an infinite relative change
        change = t / c - 1.0 if c else (0.0 if t == c else math.copysign(math.inf, t))
    else:
        change = t - c
    worse = -change if g.higher_is_better else change
    if worse <= g.tolerance:
        why = "no arm's units vary; the point values are within the tolerance"
        return GuardrailCheck(g.name, c, t, change, math.nan, nc, nt, Status.PASS, why)
    why = "no arm's units vary and the point values differ beyond the tolerance: no test"
    return GuardrailCheck(g.name, c, t, change, math.nan, nc, nt, Status.INSUFFICIENT, why)
