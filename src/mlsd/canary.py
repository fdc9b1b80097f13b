"""Steps 5-6 of the book, the canary rollout: a new model reaches traffic in stages.

An A/B test decides *whether* a model is better; a canary decides whether it is *safe to keep
going*. The new model serves a small share of the units first (1%, then 5%, 25%, 100% by
default); at each stage its guardrail metrics are compared with the current production model
(the control) and the rollout stops, with all traffic back on the control, at the first
guardrail that breaks. A unit's arm is a salted hash below the stage's share
(:func:`in_canary`, :func:`mlsd.experiments.assign_arms`), so a unit in the canary at 1% stays
in it at 5%: the share only grows, nobody flips back and forth.

* :class:`Guardrail`: a metric, its good direction, a tolerance vs the control (relative or
  absolute) or absolute ``bounds`` on the canary's own value, and a minimum sample per arm;
* :class:`CanaryPlan`: the stages and guardrails, with one family-wise ``alpha`` split over
  every check (Bonferroni), so a model no worse than the control is rolled back by chance at
  most ``alpha`` of the time over the whole rollout;
* :func:`run_canary`: runs a system's ``run_stage(fraction, stage_index)`` callback stage by
  stage and returns a :class:`CanaryResult`.

The rule, one for every guardrail: it **breaks** when the stage's data reject, one-sided at the
per-check level, the hypothesis that it holds (the canary is no worse than the control by more
than the tolerance; or its value is within the bounds). Comparisons with the control come from
:mod:`mlsd.comparisons` (Welch for per-unit means, the delta method for ratios); a quantile
(p99 latency) uses the distribution-free order-statistic bound; an arm whose units do not vary
(8 users, no click) borrows the other arm's per-unit variance rather than claim none. A check
with fewer units than its minimum **halts** the rollout (traffic back to the control): a stage
that cannot be verified is not a stage passed. At 100% no control is left,
so the last stage is compared with the control of the last stage that had one.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any

import numpy as np

from mlsd import experiments as exp
from mlsd.canary_checks import ArmValues, Guardrail, GuardrailCheck, Status, check_guardrail

__all__ = [
    "STAGES",
    "ArmValues",
    "CanaryPlan",
    "CanaryResult",
    "Guardrail",
    "GuardrailCheck",
    "Outcome",
    "StageResult",
    "Status",
    "arms_per_unit",
    "check_guardrail",
    "in_canary",
    "keep_for_stage",
    "min_units_for",
    "run_canary",
]

log = logging.getLogger(__name__)

STAGES = (0.01, 0.05, 0.25, 1.0)
StageArms = Mapping[str, ArmValues]
"""``{"control": ..., "treatment": ...}``; the control may be missing or empty at 100%."""
RunStage = Callable[[float, int], StageArms]


class Outcome(StrEnum):
    PROMOTED = "promoted"
    ROLLED_BACK = "rolled back"
    HALTED = "halted"


@dataclass(frozen=True)
class CanaryPlan:
    """The stages (shares of units on the new model, increasing, the last 1.0) and guardrails.
    ``alpha`` is family-wise over every check of the rollout."""

    guardrails: tuple[Guardrail, ...]
    stages: tuple[float, ...] = STAGES
    alpha: float = 0.05

    def __post_init__(self) -> None:
        if not self.guardrails:
            raise ValueError("a canary plan needs at least one guardrail")
        s = self.stages
        if (
            not s
            or any(not 0.0 < f <= 1.0 for f in s)
            or any(b <= a for a, b in itertools.pairwise(s))
        ):
            raise ValueError(f"stages must increase within (0, 1], got {s}")
        if s[-1] != 1.0:
            raise ValueError(f"the last stage must be 1.0 (all traffic), got {s[-1]}")
        if not 0.0 < self.alpha < 1.0:
            raise ValueError(f"alpha must be in (0, 1), got {self.alpha}")
        names = [g.name for g in self.guardrails]
        if len(set(names)) != len(names):
            raise ValueError(f"guardrail names must be unique, got {names}")

    @property
    def alpha_per_check(self) -> float:
        return self.alpha / (len(self.guardrails) * len(self.stages))


@dataclass(frozen=True)
class StageResult:
    index: int
    fraction: float
    control_from_stage: int | None
    checks: tuple[GuardrailCheck, ...]
    status: str


@dataclass(frozen=True)
class CanaryResult:
    """The rollout: the plan, what each stage measured, and where it ended."""

    plan: CanaryPlan
    control: str
    treatment: str
    unit: str
    stages: tuple[StageResult, ...]
    outcome: str
    reason: str

    @property
    def max_share(self) -> float:
        """The largest share of units the new model ever served."""
        return max((s.fraction for s in self.stages), default=0.0)

    @property
    def final_share(self) -> float:
        return 1.0 if self.outcome == Outcome.PROMOTED else 0.0

    def timeline(self) -> list[tuple[str, float]]:
        """The share on the new model after each event: each stage, then the rollback if any."""
        points = [(f"stage {s.index + 1}", s.fraction) for s in self.stages]
        if self.outcome != Outcome.PROMOTED:
            points.append(("rollback", 0.0))
        return points

    def to_dict(self) -> dict[str, Any]:
        return {
            "control": self.control,
            "treatment": self.treatment,
            "unit": self.unit,
            "stages_planned": list(self.plan.stages),
            "alpha": self.plan.alpha,
            "alpha_per_check": self.plan.alpha_per_check,
            "guardrails": [asdict(g) for g in self.plan.guardrails],
            "stages": [
                {
                    "fraction": s.fraction,
                    "status": s.status,
                    "control_from_stage": s.control_from_stage,
                    "checks": [asdict(c) for c in s.checks],
                }
                for s in self.stages
            ],
            "outcome": self.outcome,
            "reason": self.reason,
            "max_share": self.max_share,
            "final_share": self.final_share,
        }

    def metrics(self) -> dict[str, Any]:
        return {"online": {"canary": self.to_dict()}}


# --------------------------------------------------------------------------------------------
# assignment and per-unit arrays
# --------------------------------------------------------------------------------------------


def in_canary(ids: np.ndarray, fraction: float, salt: str) -> np.ndarray:
    """``True`` for the units on the new model at this share: a salted hash below ``fraction``,
    so a unit in the canary at one stage stays in it at every later, larger one."""
    return exp.assign_arms(ids, salt=salt, treatment_share=fraction)


def min_units_for(population: int, first_stage: float = STAGES[0], cap: int = 30) -> int:
    """A guardrail's minimum sample in a world of ``population`` units: ``cap`` (30), or 80% of
    what the first stage can reach in a small world (1% of 500 users is about 5), at least 3.
    A small world's first stage then checks only a gross failure, and the blueprint says so."""
    return max(3, min(cap, int(0.8 * first_stage * population)))


def keep_for_stage(
    ids: np.ndarray,
    in_treatment: np.ndarray,
    max_control: int,
    salt: str,
    max_treatment: int | None = None,
) -> np.ndarray:
    """Which units to simulate: a hash-sample of at most about ``max_control`` control units
    and ``max_treatment`` canary units (all of them by default). A random subset of an arm is
    a sample of that arm, so the comparison stays unbiased while a 1% stage costs little more
    than its canary, and a 100% stage no more than a cap."""
    treat = np.asarray(in_treatment, dtype=bool)
    h = exp.hash_unit(np.asarray(ids), f"{salt}/sample")
    keep = np.zeros(treat.shape, dtype=bool)
    for arm, cap in ((~treat, max_control), (treat, max_treatment)):
        n = int(arm.sum())
        share = 1.0 if cap is None or n <= cap else cap / n
        keep |= arm & (h < share)
    return keep


def arms_per_unit(
    units: np.ndarray, in_treatment: np.ndarray, values: Mapping[str, np.ndarray]
) -> dict[str, dict[str, np.ndarray]]:
    """Event-level values (one per impression, session, ...) summed per unit, per arm: what
    ``run_stage`` returns. ``in_treatment`` is per event (a unit's events share one arm)."""
    units = np.asarray(units)
    treat = np.asarray(in_treatment, dtype=bool)
    if treat.shape != units.shape:
        raise ValueError(f"in_treatment has shape {treat.shape}, units {units.shape}")
    out: dict[str, dict[str, np.ndarray]] = {}
    for arm, mask in (("control", ~treat), ("treatment", treat)):
        out[arm] = {
            key: exp.aggregate_per_unit(units[mask], np.asarray(v)[mask])[1]
            for key, v in values.items()
        }
    return out


# --------------------------------------------------------------------------------------------
# one check
# --------------------------------------------------------------------------------------------


# --------------------------------------------------------------------------------------------
# the rollout
# --------------------------------------------------------------------------------------------


def _has_units(arm: ArmValues | None) -> bool:
    return arm is not None and any(np.asarray(v).size for v in arm.values())


def run_canary(
    plan: CanaryPlan,
    run_stage: RunStage,
    *,
    control: str,
    treatment: str,
    unit: str,
) -> CanaryResult:
    """Roll ``treatment`` out stage by stage; stop at the first broken (rolled back) or
    unverifiable (halted) stage. ``run_stage(fraction, i)`` runs stage ``i`` in the world with
    ``fraction`` of the units on the new model and returns both arms' per-unit values."""
    alpha = plan.alpha_per_check
    done: list[StageResult] = []
    last_control: tuple[int, ArmValues] | None = None
    for i, fraction in enumerate(plan.stages):
        arms = run_stage(fraction, i)
        if "treatment" not in arms:  # an empty one is fine: an insufficient sample
            raise ValueError(f"stage {i + 1} ({fraction:.0%}): no treatment arm in {sorted(arms)}")
        ctrl = arms.get("control")
        if _has_units(ctrl):
            assert ctrl is not None
            last_control = (i, ctrl)
        checks = tuple(
            check_guardrail(
                g, None if last_control is None else last_control[1], arms["treatment"], alpha
            )
            for g in plan.guardrails
        )
        statuses = {c.status for c in checks}
        status = next(
            (s for s in (Status.BROKEN, Status.INSUFFICIENT) if s in statuses), Status.PASS
        )
        control_from = None if last_control is None else last_control[0]
        done.append(StageResult(i, fraction, control_from, checks, str(status)))
        log.info("canary stage %d (%.0f%%): %s", i + 1, 100 * fraction, status)
        if status != Status.PASS:
            bad = [c for c in checks if c.status == status]
            what = "; ".join(f"{c.guardrail}: {c.reason}" for c in bad)
            outcome = Outcome.ROLLED_BACK if status == Status.BROKEN else Outcome.HALTED
            reason = f"stage {i + 1} ({fraction:.0%} of traffic): {status}: {what}"
            return CanaryResult(plan, control, treatment, unit, tuple(done), str(outcome), reason)
    reason = f"every guardrail held at every stage ({', '.join(f'{f:.0%}' for f in plan.stages)})"
    return CanaryResult(plan, control, treatment, unit, tuple(done), str(Outcome.PROMOTED), reason)
