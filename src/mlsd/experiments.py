"""Step 5 of the book, online evaluation: A/B tests (interleaving is in ``mlsd.interleaving``).

The book's framework closes evaluation with an online experiment: split traffic, compare the
online metric (CTR, revenue, watch time) between control and treatment, and ship only when the
lift is significant and no guardrail breaks. This module holds the statistics for that:

* :func:`assign_arms`: a deterministic hash split, stable across processes and runs;
* :func:`compare_proportions` (two-proportion z-test) and :func:`compare_means` (Welch t-test,
  for per-user revenue after :func:`aggregate_per_unit`);
* :func:`srm_check`: the sample-ratio-mismatch test that invalidates a broken split;
* :func:`decide`: the ship / don't ship call, with its reason in numbers;
* :func:`required_sample_size`: users per arm for a given power;
* team-draft interleaving (Chapelle et al., 2012), the more sensitive test the book mentions for
  ranking systems.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Hashable, Sequence
from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any

import numpy as np
from scipy import stats

from mlsd.hashing import splitmix64

_MASK64 = (1 << 64) - 1


class Decision(StrEnum):
    """The outcomes of :func:`decide` (a ``str``, so it prints and serialises as its value)."""

    SHIP = "ship"
    DONT_SHIP = "don't ship"
    INCONCLUSIVE = "inconclusive"
    INVALID_SRM = "invalid (SRM)"


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


@dataclass(frozen=True)
class SRMResult:
    """Sample ratio mismatch: did the split deliver the traffic shares it promised?"""

    n_control: int
    n_treatment: int
    expected_treatment_share: float
    observed_treatment_share: float
    chi2: float
    p_value: float
    alpha: float

    @property
    def mismatch(self) -> bool:
        return bool(self.p_value < self.alpha)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "mismatch": self.mismatch}


# --------------------------------------------------------------------------------------------
# assignment
# --------------------------------------------------------------------------------------------


def _salt_key(salt: str) -> int:
    return int.from_bytes(hashlib.blake2b(salt.encode("utf-8"), digest_size=8).digest(), "little")


def hash_unit(ids: np.ndarray | Sequence[Hashable], salt: str) -> np.ndarray:
    """A uniform float in ``[0, 1)`` per id, a pure function of ``(salt, id)``.

    Integer ids are mixed with splitmix64 (vectorised); other ids (strings) with blake2b. Never
    Python's ``hash()``, which is salted per process.
    """
    arr = np.asarray(ids)
    if arr.ndim != 1:
        raise ValueError(f"ids must be 1-d, got shape {arr.shape}")
    key = np.uint64(_salt_key(salt))
    if arr.dtype.kind == "i":
        h = splitmix64(arr.astype(np.int64).view(np.uint64) ^ key)
    elif arr.dtype.kind in "ub":
        h = splitmix64(arr.astype(np.uint64) ^ key)
    else:
        salt_b = salt.encode("utf-8") + b"\x00"
        h = np.fromiter(
            (
                int.from_bytes(
                    hashlib.blake2b(salt_b + str(v).encode("utf-8"), digest_size=8).digest(),
                    "little",
                )
                for v in arr.tolist()
            ),
            dtype=np.uint64,
            count=arr.size,
        )
    return (h >> np.uint64(11)).astype(np.float64) / float(1 << 53)


def assign_arms(
    ids: np.ndarray | Sequence[Hashable], salt: str, treatment_share: float = 0.5
) -> np.ndarray:
    """Deterministic traffic split: ``True`` puts the unit (user) in treatment.

    Use one ``salt`` per experiment so that concurrent experiments split independently.
    """
    if not 0.0 <= treatment_share <= 1.0:
        raise ValueError(f"treatment_share must be in [0, 1], got {treatment_share}")
    return hash_unit(ids, salt) < treatment_share


def aggregate_per_unit(units: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sum event-level values per randomisation unit: ``(unique_units, totals)``.

    A t-test needs independent observations; impressions of one user are not, so revenue is
    summed per user before :func:`compare_means` (the unit of analysis is the unit of
    randomisation).
    """
    u = np.asarray(units)
    v = np.asarray(values, dtype=np.float64)
    if u.shape != v.shape:
        raise ValueError(f"units has shape {u.shape} but values has {v.shape}")
    uniq, inverse = np.unique(u, return_inverse=True)
    return uniq, np.bincount(inverse.ravel(), weights=v, minlength=uniq.size)


# --------------------------------------------------------------------------------------------
# tests
# --------------------------------------------------------------------------------------------


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


def srm_check(
    n_c: int, n_t: int, expected_treatment_share: float = 0.5, alpha: float = 0.001
) -> SRMResult:
    """Chi-square goodness-of-fit of the arm sizes against the designed split.

    The strict default ``alpha`` (0.001) is the industry convention: an SRM means the
    assignment or logging is broken, and the experiment's other numbers cannot be trusted.
    """
    if n_c < 0 or n_t < 0 or n_c + n_t == 0:
        raise ValueError(f"arm sizes must be non-negative and not both zero, got {n_c}, {n_t}")
    if not 0.0 < expected_treatment_share < 1.0:
        raise ValueError(f"expected_treatment_share must be in (0, 1): {expected_treatment_share}")
    n = n_c + n_t
    expected = np.array([n * (1 - expected_treatment_share), n * expected_treatment_share])
    chi2, p_value = stats.chisquare(np.array([n_c, n_t], dtype=np.float64), expected)
    return SRMResult(
        int(n_c), int(n_t), expected_treatment_share, n_t / n, float(chi2), float(p_value), alpha
    )


def decide(
    primary: MetricComparison,
    srm: SRMResult,
    guardrails: Sequence[MetricComparison] = (),
) -> tuple[str, str]:
    """The launch call: ``(decision, reason)``; decision is a :class:`Decision` value.

    Order: an SRM invalidates everything; a significantly degraded guardrail blocks a launch;
    then the primary metric must improve significantly to ship, and a significant degradation
    is a "don't ship"; anything else is inconclusive.
    """
    if srm.mismatch:
        return Decision.INVALID_SRM, (
            f"sample ratio mismatch: {srm.n_control} control vs {srm.n_treatment} treatment "
            f"(treatment share {srm.observed_treatment_share:.4f}, expected "
            f"{srm.expected_treatment_share:.4f}, p={srm.p_value:.3g} < {srm.alpha})"
        )
    broken = [g for g in guardrails if g.degraded]
    if broken:
        return Decision.DONT_SHIP, "guardrail degraded: " + "; ".join(g.summary() for g in broken)
    if primary.improved:
        return Decision.SHIP, f"primary metric improved: {primary.summary()}"
    if primary.degraded:
        return Decision.DONT_SHIP, f"primary metric degraded: {primary.summary()}"
    return (
        Decision.INCONCLUSIVE,
        f"no significant change at alpha={primary.alpha}: {primary.summary()}",
    )


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


# --------------------------------------------------------------------------------------------
# the result every system's online step returns
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ABResult:
    """One A/B test as a system's online step reports it: the arms, every metric's comparison,
    the sample-ratio check and the launch decision (:func:`decide` on ``primary`` with
    ``guardrails``; the other tests are reported, not decided on).

    ``arms`` maps ``"control"`` / ``"treatment"`` to what describes the arm (``policy``,
    ``units`` and the system's own figures); ``tests`` maps a metric key to its comparison.
    """

    unit: str
    arms: dict[str, dict[str, Any]]
    tests: dict[str, MetricComparison]
    primary: str
    guardrails: tuple[str, ...]
    srm: SRMResult
    decision: str
    reason: str

    TEST_HEADER = ("metric", "control", "treatment", "relative lift", "95% CI (absolute)", "p")

    @classmethod
    def decided(
        cls,
        *,
        unit: str,
        arms: dict[str, dict[str, Any]],
        tests: dict[str, MetricComparison],
        primary: str,
        guardrails: Sequence[str] = (),
        srm: SRMResult,
    ) -> ABResult:
        """The result with its decision taken by :func:`decide`."""
        missing = [k for k in (primary, *guardrails) if k not in tests]
        if missing:
            raise ValueError(f"no comparison for {missing}; the tests are {sorted(tests)}")
        decision, reason = decide(tests[primary], srm, [tests[g] for g in guardrails])
        return cls(unit, arms, tests, primary, tuple(guardrails), srm, str(decision), reason)

    def test_rows(self) -> list[list[Any]]:
        """Rows under :attr:`TEST_HEADER`, one per metric, primary first."""
        order = [self.primary, *self.guardrails]
        order += [k for k in self.tests if k not in order]
        return [
            [
                self.tests[k].metric,
                self.tests[k].control,
                self.tests[k].treatment,
                f"{self.tests[k].relative_lift:+.1%}",
                f"[{self.tests[k].ci_low:.4g}, {self.tests[k].ci_high:.4g}]",
                self.tests[k].p_value,
            ]
            for k in order
        ]

    def arm_rows(self, columns: Sequence[str]) -> list[list[Any]]:
        """One row per arm: its name, then ``arms[arm][c]`` for each column."""
        return [[arm, *(fig.get(c) for c in columns)] for arm, fig in self.arms.items()]

    def verdict(self) -> str:
        """One sentence: the sample-ratio check and the decision with its reason."""
        srm = "mismatch!" if self.srm.mismatch else "no mismatch"
        return (
            f"Sample-ratio check: p = {self.srm.p_value:.3g} ({srm}). "
            f"**Decision: {self.decision}.** {self.reason}"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "unit": self.unit,
            **self.arms,
            "tests": {k: t.to_dict() for k, t in self.tests.items()},
            "primary_metric": self.primary,
            "guardrails": list(self.guardrails),
            "srm": self.srm.to_dict(),
            "decision": self.decision,
            "reason": self.reason,
        }
