"""The 45-minute interview plan as data: the blocks, and per system the questions and decisions.

A :class:`Decision` is a claim (in words, no numbers) and the evidence a run measured for it: a
template whose placeholders name paths into that run's ``metrics.json``
(``"models.<chosen_model>.nce"``: a segment in angle brackets is replaced by the string at that
top-level key first; several paths in a tuple are tried in order). :mod:`mlsd.interview` prints a
decision with its numbers only when every placeholder resolves; without a run it prints the
claim alone. Paths under ``derived.`` are computed by :mod:`mlsd.interview` from the run (the
EDA's most predictive column, the bottlenecks, list lengths).

The per-system parts live in :mod:`mlsd.interview_systems`; the decisions here apply to every
system (each printed only where its numbers exist, so a system without a canary or an efficiency
table simply shows none).
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

Paths = str | tuple[str, ...]
_SEGMENT = re.compile(r"<[^>]*>|[^.]+")
_OPS: dict[str, Callable[[Any, Any], bool]] = {
    "==": operator.eq,
    ">": operator.gt,
    "<": operator.lt,
    ">=": operator.ge,
    "<=": operator.le,
}


def resolve(metrics: Mapping[str, Any], path: str) -> Any:
    """The value at a dotted ``path`` of ``metrics`` or None. A segment ``<other.path>`` is
    replaced by the string found at ``other.path`` first (``models.<chosen_model>.nce``)."""
    node: Any = metrics
    for seg in _SEGMENT.findall(path):
        if seg.startswith("<"):
            key = resolve(metrics, seg[1:-1])
            if not isinstance(key, str | int):
                return None
            seg = str(key)
        if not isinstance(node, Mapping) or seg not in node:
            return None
        node = node[seg]
    return node


@dataclass(frozen=True)
class Block:
    """One block of the 45 minutes."""

    key: str
    start_min: int
    end_min: int
    title: str
    questions: tuple[str, ...]  # what to ask the interviewer in every system


@dataclass(frozen=True)
class Decision:
    """A decision to state in a block, and the run's numbers that back it."""

    block: str  # Block.key
    claim: str  # the decision in words (printed without a run)
    evidence: str  # a str.format template over ``values``' names
    values: Mapping[str, Paths]  # placeholder -> path(s) into metrics.json
    section: tuple[str, ...]  # the blueprint section(s) it links to, by title words
    # conditions on the run for the decision to hold: (path, op, value), op in == > < >= <=;
    # a value "@other.path" compares with the run's value there
    when: tuple[tuple[str, str, Any], ...] = ()
    # whether the plan without a run states it (False: the fallback a run may call for)
    default: bool = True

    def holds(self, metrics: Mapping[str, Any]) -> bool:
        """Whether every condition of ``when`` is met by the run (a missing value is not)."""
        for path, op, expected in self.when:
            value = resolve(metrics, path)
            if isinstance(expected, str) and expected.startswith("@"):  # another path's value
                expected = resolve(metrics, expected[1:])
            if value is None or expected is None:
                return False
            try:
                ok = _OPS[op](value, expected)
            except TypeError:
                return False
            if not ok:
                return False
        return True


@dataclass(frozen=True)
class SystemPlan:
    """A system's part of the plan: its questions per block and its decisions."""

    questions: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    decisions: tuple[Decision, ...] = ()


BLOCKS: tuple[Block, ...] = (
    Block(
        "requirements",
        0,
        5,
        "Clarify requirements and frame the task",
        (
            "What is the business objective, and which online metric stands for it?",
            "How many users and requests per second; what latency budget per request?",
            "How fresh must the model and its features be?",
        ),
    ),
    Block(
        "data",
        5,
        15,
        "Data and features",
        (
            "Which data exists, how is it labelled, and how balanced is the label?",
            "Which features can be computed point-in-time, online and offline alike?",
        ),
    ),
    Block(
        "model",
        15,
        30,
        "Training, evaluation and serving architecture",
        (
            "What is the simplest baseline, and what would a deep model add?",
            "Which offline metric, and what is the best achievable (the oracle)?",
            "Which serving stages (retrieve, rank, re-rank) fit the latency budget?",
        ),
    ),
    Block(
        "monitoring",
        30,
        40,
        "Online evaluation and monitoring",
        (
            "How is a new model rolled out and tested online (A/B, interleaving, canary)?",
            "What drifts, how is it detected, and what triggers a retrain?",
        ),
    ),
    Block(
        "bottlenecks",
        40,
        45,
        "Bottlenecks and trade-offs",
        (
            "Where does the cost go, and what scales out first?",
            "What would change with a tighter latency budget or ten times the traffic?",
        ),
    ),
)

SERVING = ("Serving", "serving")
DATA = ("Exploratory data analysis",)
MONITORING = ("Monitoring",)
BOTTLENECKS = ("Bottlenecks",)

COMMON: tuple[Decision, ...] = (
    Decision(
        "data",
        "Profile the data before building features, and rule out leaks",
        "the most predictive single column, `{col}`, reaches ROC-AUC {auc:.3f} alone "
        "(flag at {flag:g}); flagged columns: {flagged}; {rows:,} rows profiled",
        {
            "col": "derived.eda.top_column",
            "auc": "derived.eda.top_auc",
            "flag": "eda.thresholds.roc_auc",
            "flagged": "derived.eda.flagged",
            "rows": "eda.rows_profiled",
        },
        DATA,
    ),
    Decision(
        "model",
        "Re-make the served-model choice across latency budgets: a rule, not a guess",
        "measured rule: {rules}",
        {"rules": "derived.budget_rules"},
        ("Trade-off", "budget", *SERVING),
    ),
    Decision(
        "model",
        "Shrink the most accurate deep model (distillation, pruning, int8, ONNX) before "
        "giving it up",
        "of the efficiency variants of `{teacher}`, the latency rule would serve `{served}` "
        "(p99 {p99:.2f} ms within the {budget:g} ms budget)",
        {
            "teacher": "efficiency.teacher",
            "served": "efficiency.would_serve",
            "p99": "efficiency.variants.<efficiency.would_serve>.p99_ms",
            "budget": "efficiency.budget_ms",
        },
        ("Efficiency", *SERVING),
        when=(("efficiency.within_budget", "==", True),),
    ),
    Decision(
        "model",
        "Even shrunk, no variant fits the budget on this machine: relax it or buy latency "
        "elsewhere (fewer candidates, caching)",
        "no variant of `{teacher}` fits: the rule falls back to the most accurate, `{served}`, "
        "at {p99:.2f} ms p99 against the {budget:g} ms budget",
        {
            "teacher": "efficiency.teacher",
            "served": "efficiency.would_serve",
            "p99": "efficiency.variants.<efficiency.would_serve>.p99_ms",
            "budget": "efficiency.budget_ms",
        },
        ("Efficiency", *SERVING),
        when=(("efficiency.within_budget", "==", False),),
        default=False,
    ),
    Decision(
        "monitoring",
        "Roll out behind a canary with guardrails, and roll back automatically",
        "canary of `{treatment}` over stages {stages}: {outcome} at {share:.0%} of traffic "
        "({reason})",
        {
            "treatment": "online.canary.treatment",
            "stages": "derived.canary_stages",
            "outcome": "online.canary.outcome",
            "share": "online.canary.final_share",
            "reason": "online.canary.reason",
        },
        ("Canary", "Online"),
    ),
    Decision(
        "monitoring",
        "Ship only on a significant lift of the primary metric in an online A/B test",
        "the A/B test decided **{decision}**: {reason}",
        {
            "decision": ("online.decision", "online.ab.decision"),
            "reason": ("online.reason", "online.ab.reason"),
        },
        ("A/B", "Online"),
    ),
    Decision(
        "monitoring",
        "Watch feature and prediction drift; retrain on alerts, not on a fixed belief",
        "{alerts} alerts over the monitored windows; retrain: {retrain}",
        {"alerts": "derived.monitoring_alerts", "retrain": "monitoring.retrain"},
        MONITORING,
    ),
    Decision(
        "bottlenecks",
        "Name the step that dominates cost, and scale it out first",
        "`{step}` took {share:.0%} of the run ({seconds:.1f} s of {total:.1f} s)",
        {
            "step": "bottlenecks.dominant_step",
            "share": "bottlenecks.dominant_share",
            "seconds": "bottlenecks.dominant_seconds",
            "total": "bottlenecks.total_seconds",
        },
        BOTTLENECKS,
    ),
    Decision(
        "bottlenecks",
        "Size the serving fleet and the online store from measured per-request costs",
        "at {qps:,.0f} requests/s and {ms:.2f} ms of compute per request: ~{cores:,.1f} cores; "
        "the online store must serve ~{reads:,.0f} reads/s and absorb ~{writes:,.0f} writes/s",
        {
            "qps": "bottlenecks.qps",
            "ms": "bottlenecks.ms_per_request",
            "cores": "bottlenecks.serving_cores",
            "reads": "bottlenecks.store_reads_per_s",
            "writes": "bottlenecks.store_writes_per_s",
        },
        BOTTLENECKS,
    ),
    Decision(
        "bottlenecks",
        "Shard the state that grows, by the key its reads use",
        "shard {what} by `{key}` ({why}): at {reads:,.0f} reads/s that is {shards:,} shards of "
        "{per_shard:,.0f} reads/s each",
        {
            "what": "bottlenecks.shard.what",
            "key": "bottlenecks.shard.key",
            "why": "bottlenecks.shard.why",
            "reads": "bottlenecks.store_reads_per_s",
            "shards": "bottlenecks.shard.shards",
            "per_shard": "bottlenecks.shard.reads_per_shard_per_s",
        },
        BOTTLENECKS,
    ),
)
