"""Step 5 of the book, online evaluation: A/B tests (interleaving is in ``mlsd.interleaving``).

The book's framework closes evaluation with an online experiment: split traffic, compare the
online metric (CTR, revenue, watch time) between control and treatment, and ship only when the
lift is significant and no guardrail breaks. This module holds the statistics for that:

* :func:`assign_arms`: a deterministic hash split, stable across processes and runs;
* the metric comparisons (z-, Welch and delta-method tests) in :mod:`mlsd.comparisons`;
* :func:`srm_check`: the sample-ratio-mismatch test that invalidates a broken split;
* :func:`decide`: the ship / don't ship call, with its reason in numbers;
* :class:`ABResult`: the result every system's online step returns and reports;
* team-draft interleaving (Chapelle et al., 2012), the more sensitive test the book mentions for
  ranking systems, is in :mod:`mlsd.interleaving`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Hashable, Sequence
from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any

import numpy as np
from scipy import stats

from mlsd.comparisons import MetricComparison
from mlsd.hashing import splitmix64

_MASK64 = (1 << 64) - 1


class Decision(StrEnum):
    """The outcomes of :func:`decide` (a ``str``, so it prints and serialises as its value)."""

    SHIP = "ship"
    DONT_SHIP = "don't ship"
    INCONCLUSIVE = "inconclusive"
    INVALID_SRM = "invalid (SRM)"


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
# checks and the decision
# --------------------------------------------------------------------------------------------


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
