"""Steps 1 and 2 of the book: clarify the requirements, frame the problem as an ML task.

Every system declares one :class:`Requirements` and one :class:`Framing`. They are not
documentation only: the latency budget picks the served model, the metrics named in the framing
are the ones evaluation reports, and the blueprint prints both at the top of the chapter.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mlsd.runner import RunContext, Step


@dataclass(frozen=True)
class Requirements:
    """What the business asks of the system (book step 1)."""

    goal: str
    latency_budget_ms: float
    latency_budget_for: str  # the request size the budget applies to, e.g. "100 candidates"
    throughput_qps: float
    freshness: str  # how quickly new data must reach the model, in words
    scale: str  # users, items, events per day, in words
    constraints: tuple[str, ...] = field(default_factory=tuple)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def rows(self) -> list[list[Any]]:
        return _rows(self.to_dict())


@dataclass(frozen=True)
class Framing:
    """The problem as an ML task (book step 2)."""

    task: str  # e.g. "binary classification: pointwise learning to rank"
    input: str
    output: str
    label: str  # how a training label is defined from logged behaviour
    offline_metrics: tuple[str, ...]
    online_metrics: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def rows(self) -> list[list[Any]]:
        return _rows(self.to_dict())


def _rows(fields: dict[str, Any]) -> list[list[Any]]:
    """``[name, value]`` table rows: underscores become spaces, tuples are joined."""
    return [
        [k.replace("_", " "), ", ".join(v) if isinstance(v, tuple) else v]
        for k, v in fields.items()
    ]


@dataclass(frozen=True)
class RequirementsResult:
    """Steps 1-2 as ``metrics.json`` records them."""

    requirements: Requirements
    framing: Framing

    def metrics(self) -> dict[str, Any]:
        return {"requirements": self.requirements.to_dict(), "framing": self.framing.to_dict()}


def requirements_step(intro: str, requirements: Requirements, framing: Framing) -> Step[Any]:
    """Steps 1-2 of a run: the chapter's opening paragraph, then its requirements and framing,
    as tables in the blueprint and as ``requirements`` / ``framing`` in ``metrics.json``.
    Works with any system's state (it reads none)."""
    from mlsd.runner import Step

    def run(ctx: RunContext, state: object) -> RequirementsResult:
        bp = ctx.blueprint
        bp.section("Clarifying requirements")
        bp.text(intro)
        bp.table(["requirement", "value"], requirements.rows())
        bp.section("Framing the problem as an ML task")
        bp.table(["aspect", "value"], framing.rows())
        return RequirementsResult(requirements, framing)

    return Step("requirements", "1-2. Requirements and framing", run)
