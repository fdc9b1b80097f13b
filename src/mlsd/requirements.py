"""Steps 1 and 2 of the book: clarify the requirements, frame the problem as an ML task.

Every system declares one :class:`Requirements` and one :class:`Framing`. They are not
documentation only: the latency budget picks the served model, the metrics named in the framing
are the ones evaluation reports, and the blueprint prints both at the top of the chapter.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


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
