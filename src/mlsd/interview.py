"""``mlsd interview``: the 45-minute design interview for one system, backed by one run.

The plan (:mod:`mlsd.interview_plan`, :mod:`mlsd.interview_systems`) says what to ask and what to
decide in each block of the 45 minutes. :func:`build_interview` fills it from a run's
``metrics.json``: a decision is kept with its numbers only when every number it cites resolves
in that run, and each one links to the blueprint section that measured it. Without a run the
plan keeps every decision's claim, no numbers, and says how to get them.
:func:`write_interview` writes ``interview.md``, ``interview.html`` (self-contained, the
timeline embedded) and ``figures/interview_timeline.png``.
"""

from __future__ import annotations

import json
import logging
import re
import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlsd.artifacts import METRICS
from mlsd.interview_plan import BLOCKS, COMMON, Block, Decision, Paths, resolve
from mlsd.interview_systems import SYSTEM_PLANS

log = logging.getLogger(__name__)


class InterviewError(ValueError):
    """A run directory that cannot back an interview (no metrics.json, another system's run)."""


@dataclass(frozen=True)
class Item:
    """A decision as printed: its claim, its evidence (None without numbers), its link."""

    claim: str
    evidence: str | None
    section_title: str | None  # the blueprint section that measured it
    section_anchor: str | None  # "s<N>" in blueprint.html


@dataclass(frozen=True)
class PlannedBlock:
    block: Block
    questions: tuple[str, ...]
    items: tuple[Item, ...]


@dataclass(frozen=True)
class Interview:
    """The filled plan for one system (and one run, or none)."""

    system: str
    run_dir: Path | None
    run_id: str | None
    scale: str | None
    blocks: tuple[PlannedBlock, ...]
    dropped: int  # decisions left out because the run has no number behind them

    @property
    def measured(self) -> int:
        return sum(1 for b in self.blocks for i in b.items if i.evidence is not None)


# ---- reading metrics.json -------------------------------------------------------------------
def _first(metrics: Mapping[str, Any], paths: Paths) -> Any:
    for path in (paths,) if isinstance(paths, str) else paths:
        value = resolve(metrics, path)
        if value is not None:
            return value
    return None


def _finite(value: Any) -> bool:
    if isinstance(value, bool) or value is None:
        return value is not None
    if isinstance(value, int | float):
        return value == value and abs(value) != float("inf")
    return bool(value) if isinstance(value, str | list | tuple) else True


def derived(metrics: Mapping[str, Any]) -> dict[str, Any]:
    """Values the plan cites that are computed from the run rather than stored in it."""
    out: dict[str, Any] = {}
    leakage = resolve(metrics, "eda.leakage")
    if isinstance(leakage, Mapping) and leakage:
        scored = {
            k: v for k, v in leakage.items() if not v.get("ground_truth") and _finite(v["roc_auc"])
        }
        if scored:
            top = max(scored, key=lambda k: scored[k]["roc_auc"])
            flagged = [k for k, v in scored.items() if v.get("flagged")]
            out["eda"] = {
                "top_column": top,
                "top_auc": scored[top]["roc_auc"],
                "flagged": ", ".join(f"`{c}`" for c in flagged) if flagged else "none",
            }
    counts = resolve(metrics, "eda.label_counts")
    if isinstance(counts, Mapping) and counts:
        total = sum(v for v in counts.values() if isinstance(v, int | float))
        if total:
            out["majority_share"] = max(counts.values()) / total
    rules = resolve(metrics, "tradeoffs.budget_sweep.rules")
    if isinstance(rules, list) and rules:
        out["budget_rules"] = "; ".join(str(r) for r in rules)
    stages = resolve(metrics, "online.canary.stages")
    if isinstance(stages, list) and stages:
        out["canary_stages"] = " → ".join(
            f"{s['fraction']:.0%} {s['status']}" for s in stages if "fraction" in s
        )
    alerts = resolve(metrics, "monitoring.alerts")
    if isinstance(alerts, list):
        out["monitoring_alerts"] = len(alerts)
    return out


def _fill(decision: Decision, metrics: Mapping[str, Any]) -> str | None:
    """The decision's evidence with the run's numbers, or None if one of them is missing."""
    if not decision.holds(metrics):
        return None
    values = {name: _first(metrics, paths) for name, paths in decision.values.items()}
    if not all(_finite(v) for v in values.values()):
        return None
    values = {k: ("yes" if v else "no") if isinstance(v, bool) else v for k, v in values.items()}
    try:
        return string.Formatter().vformat(decision.evidence, (), values)
    except (ValueError, TypeError, KeyError) as exc:  # a number stored as text, say
        log.warning("cannot format %r: %s", decision.claim, exc)
        return None


# ---- the blueprint's sections ---------------------------------------------------------------
def blueprint_sections(run_dir: Path) -> list[tuple[str, str]]:
    """``[(title, anchor)]`` of a run's blueprint (``## N. Title`` -> ``sN`` in the HTML)."""
    path = run_dir / "blueprint.md"
    if not path.is_file():
        return []
    found = re.findall(r"^## (\d+)\. (.+)$", path.read_text(encoding="utf-8"), re.M)
    return [(title.strip(), f"s{n}") for n, title in found]


def _section_for(words: Sequence[str], sections: Sequence[tuple[str, str]]) -> tuple[str, str]:
    for word in words:
        for title, anchor in sections:
            if word.lower() in title.lower():
                return title, anchor
    return "", ""


# ---- the plan -------------------------------------------------------------------------------
def load_metrics(run_dir: Path, system: str) -> dict[str, Any]:
    """A finished run's metrics.json, checked to belong to ``system``."""
    path = run_dir / METRICS
    if not path.is_file():
        raise InterviewError(f"{run_dir} is not a finished run (no {METRICS}): run `mlsd run`")
    try:
        metrics = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InterviewError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(metrics, dict):
        raise InterviewError(f"{path}: expected a JSON object")
    if metrics.get("system") != system:
        raise InterviewError(f"{path} is a run of {metrics.get('system')!r}, not of {system!r}")
    return metrics


def build_interview(
    system: str, metrics: Mapping[str, Any] | None, run_dir: Path | None = None
) -> Interview:
    """The plan for ``system``, filled from ``metrics`` (None: claims only, no numbers)."""
    from mlsd.bottlenecks import analyse

    plan = SYSTEM_PLANS.get(system)
    if plan is None:
        raise InterviewError(f"no interview plan for {system!r}; plans: {', '.join(SYSTEM_PLANS)}")
    full: dict[str, Any] | None = None
    if metrics is not None:
        full = dict(metrics)
        full["derived"] = derived(metrics)
        # recomputed (pure) rather than read: runs from before the runner wrote them, or
        # before a system declared its serving shape, get them too
        full["bottlenecks"] = analyse(metrics).metrics()["bottlenecks"]
    sections = blueprint_sections(run_dir) if run_dir is not None else []
    decisions = (*plan.decisions, *COMMON)
    dropped = 0
    blocks = []
    for block in BLOCKS:
        items = []
        for d in (d for d in decisions if d.block == block.key):
            title, anchor = _section_for(d.section, sections)
            if full is None:
                if d.default:
                    items.append(Item(d.claim, None, None, None))
                continue
            evidence = _fill(d, full)
            if evidence is None:
                dropped += 1
                continue
            items.append(Item(d.claim, evidence, title or None, anchor or None))
        questions = (*block.questions, *plan.questions.get(block.key, ()))
        blocks.append(PlannedBlock(block, questions, tuple(items)))
    return Interview(
        system=system,
        run_dir=run_dir,
        run_id=None if metrics is None else metrics.get("run_id"),
        scale=_scale_of(metrics),
        blocks=tuple(blocks),
        dropped=dropped,
    )


def _scale_of(metrics: Mapping[str, Any] | None) -> str | None:
    """The run's scale ("tiny", ...), or None where metrics.json holds none as a word."""
    scale = None if metrics is None else metrics.get("scale")
    return scale if isinstance(scale, str) else None


def interview_for(system: str, run_dir: Path | None) -> Interview:
    """The plan for ``system`` from the run in ``run_dir`` (None: no numbers)."""
    if run_dir is None:
        return build_interview(system, None)
    return build_interview(system, load_metrics(run_dir, system), run_dir)
