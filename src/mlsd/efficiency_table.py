"""Step 6 of the book, serving: the efficiency table and what the latency rule now serves.

Every variant of a system's most accurate deep model (:mod:`mlsd.efficiency`), next to the
model the serving step chose, is scored on the system's validation rows (what the rule chooses
by) and test rows (what the table reports), weighed (saved weights, and stored sparse), and
timed on the system's serving path in interleaved rounds (:func:`mlsd.latency.in_rounds`, the
machine's load recorded). The latency rule is then re-applied to them all.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import torch

from mlsd.efficiency import Variant
from mlsd.latency import Choice, Timer, choose_within_budget, in_rounds, machine_load, time_calls
from mlsd.report import Blueprint


@dataclass(frozen=True)
class EfficiencyRow:
    """One contender: its technique, accuracy, size and latency."""

    technique: str
    validation: float
    test: float
    latency_ms: Mapping[str, float]  # p50 / p99 / mean / p99_min / p99_max on the serving path
    model_latency_ms: Mapping[str, float] | None = None  # the network alone, same batch
    size_bytes: int | None = None
    sparse_size_bytes: int | None = None
    sparsity: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "technique": self.technique,
            "validation": self.validation,
            "test": self.test,
            "latency_ms": dict(self.latency_ms),
            "p99_ms": self.latency_ms["p99"],
            "model_latency_ms": None
            if self.model_latency_ms is None
            else dict(self.model_latency_ms),
            "size_bytes": self.size_bytes,
            "sparse_size_bytes": self.sparse_size_bytes,
            "sparsity": self.sparsity,
        }


@dataclass(frozen=True)
class EfficiencyTable:
    """The efficiency step: ``rows`` by contender (the variants of ``teacher`` and the model
    served before), the rule's ``choice`` among them under ``budget_ms``."""

    teacher: str
    previously_served: str
    metric: str
    higher_is_better: bool
    budget_ms: float
    measured: str
    rounds: int
    rows: Mapping[str, EfficiencyRow]
    choice: Choice
    load: Mapping[str, Mapping[str, float]]
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def because(self) -> str:
        c, row = self.choice, self.rows[self.choice.served]
        if c.chosen is None:
            return (
                f"no contender met the {self.budget_ms:g} ms budget on this machine; the rule "
                f"falls back to the most accurate ({c.fallback}) and flags it"
            )
        return (
            f"best validation {self.metric} ({row.validation:.4f}) among the contenders whose "
            f"p99 ({row.latency_ms['p99']:.2f} ms, median of {self.rounds} rounds) meets the "
            f"{self.budget_ms:g} ms budget"
        )

    def metrics(self) -> dict[str, Any]:
        return {
            "efficiency": {
                "teacher": self.teacher,
                "previously_served": self.previously_served,
                "metric": self.metric,
                "higher_is_better": self.higher_is_better,
                "budget_ms": self.budget_ms,
                "measured": self.measured,
                "rounds": self.rounds,
                "machine_load": {k: dict(v) for k, v in self.load.items()},
                "variants": {name: row.to_dict() for name, row in self.rows.items()},
                "would_serve": self.choice.served,
                "within_budget": self.choice.chosen is not None,
                "because": self.because,
                "notes": list(self.notes),
                "applies": True,
            }
        }


def measure_efficiency(
    *,
    teacher: str,
    previously_served: str,
    variants: Mapping[str, Variant],
    techniques: Mapping[str, str],
    validation: Mapping[str, float],
    test: Mapping[str, float],
    timers: Mapping[str, Timer],
    model_timers: Mapping[str, Timer] | None = None,
    rounds: int,
    budget_ms: float,
    metric: str,
    higher_is_better: bool,
    measured: str,
    notes: tuple[str, ...] = (),
) -> EfficiencyTable:
    """Time every contender in ``rounds`` interleaved rounds (each on its serving path through
    ``timers`` and, where given, the network alone through ``model_timers``), then re-apply the
    latency rule. Contenders are the keys of ``validation``; those in ``variants`` carry sizes,
    the others (the model served before, when it is not the teacher) only their figures."""
    names = list(validation)
    lacking = [n for n in names if n not in test or n not in timers]
    if lacking:
        raise ValueError(f"measure_efficiency: no test figure or timer for {lacking}")
    all_timers = dict(timers) | {f"{n} (model)": t for n, t in (model_timers or {}).items()}
    before = machine_load()
    lat = in_rounds({n: all_timers[n] for n in all_timers}, rounds)
    load = {"before": before, "after": machine_load()}
    rows: dict[str, EfficiencyRow] = {}
    for n in names:
        v = variants.get(n)
        rows[n] = EfficiencyRow(
            technique=v.technique if v is not None else techniques.get(n, ""),
            validation=float(validation[n]),
            test=float(test[n]),
            latency_ms=lat[n],
            model_latency_ms=lat.get(f"{n} (model)"),
            size_bytes=None if v is None else v.size_bytes,
            sparse_size_bytes=None if v is None else v.sparse_size_bytes,
            sparsity=None if v is None else v.sparsity,
        )
    choice = choose_within_budget(
        validation,
        {n: rows[n].latency_ms["p99"] for n in names},
        budget_ms,
        higher_is_better=higher_is_better,
    )
    return EfficiencyTable(
        teacher,
        previously_served,
        metric,
        higher_is_better,
        budget_ms,
        measured,
        rounds,
        rows,
        choice,
        load,
        tuple(notes),
    )


def _forward(module: torch.nn.Module, inputs: Sequence[torch.Tensor]) -> None:
    with torch.inference_mode():
        module(*inputs)


def evaluate_variants(
    variants: Mapping[str, Variant],
    *,
    estimator_for: Callable[[Variant], Any],
    score: Callable[[Any], tuple[float, float]],
    timer_for: Callable[[Any], Timer],
    model_inputs: Callable[[Any], Sequence[torch.Tensor]] | None = None,
    model_calls: int = 20,
    others: Mapping[str, tuple[str, Any]] | None = None,
    teacher: str,
    previously_served: str,
    rounds: int,
    budget_ms: float,
    metric: str,
    higher_is_better: bool,
    measured: str,
    notes: tuple[str, ...] = (),
) -> EfficiencyTable:
    """The efficiency table of a system from its parts: ``estimator_for(variant)`` is the
    system's model serving that variant's module, ``score(estimator)`` its (validation, test)
    figures, ``timer_for(estimator)`` one round of its serving path; ``model_inputs(estimator)``
    (a batch of its network's inputs) times the networks alone. ``others`` adds contenders
    that are no variant (the served model: ``name -> (technique, estimator)``)."""
    estimators = {name: estimator_for(v) for name, v in variants.items()}
    techniques = {}
    for name, (technique, est) in (others or {}).items():
        estimators.setdefault(name, est)
        techniques[name] = technique
    figures = {name: score(est) for name, est in estimators.items()}
    model_timers: dict[str, Timer] | None = None
    if model_inputs is not None:
        model_timers = {
            name: partial(
                time_calls,
                partial(_forward, v.module, model_inputs(estimators[name])),
                model_calls,
            )
            for name, v in variants.items()
        }
    return measure_efficiency(
        teacher=teacher,
        previously_served=previously_served,
        variants=variants,
        techniques=techniques,
        validation={n: f[0] for n, f in figures.items()},
        test={n: f[1] for n, f in figures.items()},
        timers={n: timer_for(est) for n, est in estimators.items()},
        model_timers=model_timers,
        rounds=rounds,
        budget_ms=budget_ms,
        metric=metric,
        higher_is_better=higher_is_better,
        measured=measured,
        notes=notes,
    )


def _mb(n: int | None) -> float | None:
    return None if n is None else n / 1e6


def report_efficiency(bp: Blueprint, table: EfficiencyTable) -> None:
    """The blueprint's efficiency section: one table, and what the rule would now serve."""
    bp.section("Efficiency: distillation, pruning, quantisation, ONNX")
    before, after = table.load["before"], table.load["after"]
    bp.text(
        f"The most accurate deep model, **{table.teacher}**, made cheaper four ways: a small "
        "student distilled from its outputs on the training rows, magnitude pruning of its "
        "linear and convolution weights, dynamic int8 quantisation of its linear layers (where "
        "it has any), and an ONNX export run by onnxruntime. Each is scored on the same "
        f"validation and test rows as the teacher ({table.metric}; the rule chooses on "
        "validation), weighed (saved weights; and stored "
        "sparse, which is where pruning pays), and timed on the serving path "
        f"({table.measured}) in {table.rounds} interleaved rounds with "
        f"**{table.previously_served}**, the model the serving step chose; machine load "
        f"{before['load_1m']:.2f} → {after['load_1m']:.2f} on {before['cores']:g} cores."
    )
    teacher_test = table.rows[table.teacher].test if table.teacher in table.rows else None
    any_model = any(r.model_latency_ms is not None for r in table.rows.values())
    headers = [
        "contender",
        "technique",
        f"validation {table.metric}",
        f"test {table.metric}",
        "Δ test vs teacher",
        "size MB",
        "stored sparse MB",
        "p99 ms",
        "p99 spread ms",
        *(["model-only p99 ms"] if any_model else []),
        f"p99 ≤ {table.budget_ms:g} ms",
    ]
    rows = []
    for name, r in table.rows.items():
        rows.append(
            [
                f"**{name}**" if name == table.choice.served else name,
                r.technique,
                r.validation,
                r.test,
                None if teacher_test is None else r.test - teacher_test,
                _mb(r.size_bytes),
                _mb(r.sparse_size_bytes),
                r.latency_ms["p99"],
                f"{r.latency_ms['p99_min']:.2f}–{r.latency_ms['p99_max']:.2f}",
                *(
                    [None if r.model_latency_ms is None else r.model_latency_ms["p99"]]
                    if any_model
                    else []
                ),
                r.latency_ms["p99"] <= table.budget_ms,
            ]
        )
    bp.table(headers, rows, caption="Accuracy, size and p99 of each way to serve the model.")
    bp.text(
        f"The latency rule would now serve **{table.choice.served}**: {table.because}."
        + (
            f" (The serving step chose {table.previously_served}.)"
            if table.choice.served != table.previously_served
            else " It is what the serving step chose."
        )
    )
    for note in table.notes:
        bp.text(note)


@dataclass(frozen=True)
class EfficiencyNotApplicable:
    """A system where the efficiency table does not apply, and the measured reason why."""

    reason: str
    figures: Mapping[str, Any] = field(default_factory=dict)  # what the reason rests on

    def metrics(self) -> dict[str, Any]:
        return {"efficiency": {"applies": False, "reason": self.reason, **self.figures}}

    def report(self, bp: Blueprint) -> None:
        bp.section("Efficiency: distillation, pruning, quantisation, ONNX")
        bp.text(f"The efficiency table does not apply here: {self.reason}")
