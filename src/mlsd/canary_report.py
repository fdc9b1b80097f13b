"""The blueprint's canary section (:mod:`mlsd.canary`): the plan, a table per stage, and the
share of traffic on the new model over the rollout as a figure."""

from __future__ import annotations

import math
from typing import Any

from mlsd.canary import CanaryResult, GuardrailCheck, Outcome
from mlsd.report import Blueprint, fmt

CHECK_HEADER = (
    "guardrail",
    "control",
    "canary",
    "change",
    "optimistic bound",
    "allowed",
    "units (control / canary)",
    "status",
)


def _pct_or_num(value: float | None, relative: bool) -> str:
    if value is None or not math.isfinite(value):
        return "—"
    return f"{value:+.1%}" if relative else f"{value:+.4g}"


def check_rows(result: CanaryResult, checks: tuple[GuardrailCheck, ...]) -> list[list[Any]]:
    """Rows under :data:`CHECK_HEADER`, one per guardrail."""
    rules = {g.name: g for g in result.plan.guardrails}
    rows: list[list[Any]] = []
    for c in checks:
        g = rules[c.guardrail]
        relative = g.relative and g.bounds is None
        bound = (
            _pct_or_num(c.optimistic_bound, relative)
            if g.bounds is None
            else fmt(c.optimistic_bound)
        )
        rows.append(
            [
                c.guardrail,
                c.control,
                c.treatment,
                _pct_or_num(c.change, relative),
                bound,
                g.allowed,
                f"{c.n_control:,} / {c.n_treatment:,}" if c.n_control else f"— / {c.n_treatment:,}",
                f"**{c.status}**" if c.status != "pass" else c.status,
            ]
        )
    return rows


def _figure(result: CanaryResult) -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 2.8))
    stages = result.plan.stages
    end = len(stages) + 1.0  # each stage runs for one unit of time, from x = its number
    ax.step(
        [0, *range(1, len(stages) + 1), end],
        [0, *(100 * f for f in stages), 100],
        where="post",
        ls="--",
        color="#999",
        label="plan",
    )
    run = [100 * s.fraction for s in result.stages]
    xs, ys = [0.0, *(float(i) for i in range(1, len(run) + 1))], [0.0, *run]
    color = "#2a7" if result.outcome == Outcome.PROMOTED else "#c33"
    if result.outcome != Outcome.PROMOTED:  # back to the control half-way through the stage
        xs.append(len(run) + 0.5)
        ys.append(0.0)
        ax.annotate(
            result.outcome,
            (len(run) + 0.5, 0),
            xytext=(4, 12),
            textcoords="offset points",
            color=color,
            fontsize=8,
        )
    xs.append(end)
    ys.append(ys[-1])
    ax.step(xs, ys, where="post", color=color, lw=2, label=f"{result.treatment}: {result.outcome}")
    ax.set_xticks(
        [i + 0.5 for i in range(1, len(stages) + 1)],
        [f"stage {i + 1}\n{f:.0%}" for i, f in enumerate(stages)],
    )
    ax.set_xlim(0, end)
    ax.set_yscale("symlog", linthresh=1.0)
    ax.set_yticks([0, 1, 5, 25, 100], ["0", "1", "5", "25", "100"])
    ax.set_ylabel("% of units on the new model")
    ax.set_ylim(0, 130)
    ax.legend(loc="upper left", fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def small_world_note(result: CanaryResult) -> str:
    """A sentence when the minimum sample had to be lowered for a small world (see
    :func:`mlsd.canary.min_units_for`), else ''."""
    low = max((g.min_units for g in result.plan.guardrails if g.quantile is None), default=30)
    if low >= 30:
        return ""
    return (
        f" This world is small: the first stage reaches only a handful of units, so the minimum "
        f"sample is {low}, and the first stage can catch only a gross failure."
    )


def report_canary(bp: Blueprint, result: CanaryResult, what: str, figure_name: str) -> None:
    """The section "Canary rollout": ``what`` says what the stages are in this system's world
    (traffic, control, guardrails' reasons); the plan, each stage's checks, the figure."""
    plan = result.plan
    stages = " → ".join(f"{f:.0%}" for f in plan.stages)
    bp.section("Canary rollout")
    bp.text(
        f"After the A/B test, the served model (**{result.treatment}**) replaces production "
        f"(**{result.control}**) in stages, {stages} of the units ({result.unit}), each unit "
        "placed by a salted hash below the stage's share, so a unit on the new model stays on "
        "it as the share grows. At each stage every guardrail is checked against the control; "
        "a guardrail **breaks** when the stage's data reject, one-sided, that it holds (the "
        "canary's optimistic bound is still worse than allowed), and the first break rolls all "
        f"traffic back to the control. The {len(plan.guardrails)} guardrails × {len(plan.stages)} "
        f"stages share a family-wise α = {plan.alpha:g} (α = {plan.alpha_per_check:.2g} per "
        "check), so a model no worse than production is rolled back by chance at most "
        f"{plan.alpha:.0%} of the time. An arm whose units do not vary (no click at all) "
        "borrows the other arm's per-unit variance; a check with fewer units than its minimum "
        "cannot be tested and halts the rollout. At 100% no control is left: the last stage is "
        "compared with the control of the last stage that had one. " + what
    )
    bp.table(
        ["guardrail", "metric", "good direction", "allowed", "min units per arm"],
        [
            [
                g.name,
                g.metric if g.denominator is None else f"{g.metric} / {g.denominator}",
                "higher" if g.higher_is_better else "lower",
                g.allowed,
                g.min_units,
            ]
            for g in plan.guardrails
        ],
        caption="The guardrails.",
    )
    for s in result.stages:
        ctrl = (
            ""
            if s.control_from_stage in (None, s.index)
            else f" (control from stage {(s.control_from_stage or 0) + 1})"
        )
        bp.table(
            list(CHECK_HEADER),
            check_rows(result, s.checks),
            caption=f"Stage {s.index + 1}: {s.fraction:.0%} of units on {result.treatment}"
            f"{ctrl}: {s.status}.",
        )
    bp.figure(
        _figure(result),
        figure_name,
        f"Share of units on {result.treatment} over the rollout (plan dashed).",
    )
    bp.text(
        f"**Canary: {result.outcome}** (the new model reached {result.max_share:.0%} of units, "
        f"ends at {result.final_share:.0%}). {result.reason}."
    )
