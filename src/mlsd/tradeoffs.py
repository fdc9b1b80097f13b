"""The interview's trade-off tables, measured: which model a latency budget buys, and what batch
prediction costs in freshness.

* :func:`measure_by_candidates` times every model of a system at several candidate counts on
  its serving path (interleaved rounds, :mod:`mlsd.latency`), and :func:`sweep_budgets`
  re-applies the serving step's rule, "the most accurate model whose p99 meets the budget", to
  every budget x candidate count: the chapter's rule of thumb ("under 10 ms, use a light
  model") becomes a measured table, with the rules it implies written out (:meth:`rules`).
* :class:`BatchVsOnline`: batch prediction (precomputed, looked up, stale by up to a period)
  against online prediction (computed per request, fresh): quality, latency and the daily
  compute each needs, from measured per-request costs.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from mlsd.latency import Choice, Timer, choose_within_budget, in_rounds, machine_load
from mlsd.report import Blueprint

BUDGETS_MS: tuple[float, ...] = (1.0, 5.0, 10.0, 50.0, 200.0)


def measure_by_candidates(
    timer_for: Callable[[str, int], Timer],
    names: Sequence[str],
    counts: Sequence[int],
    rounds: int,
) -> dict[int, dict[str, dict[str, float]]]:
    """``count -> model -> latency summary`` (p50 / p99 / mean and the spread of the round
    p99s): at each candidate count every model is timed in ``rounds`` interleaved rounds;
    ``timer_for(model, count)`` gives one round's samples."""
    if not names or not counts:
        raise ValueError("measure_by_candidates: no models or no candidate counts")
    return {int(k): in_rounds({n: timer_for(n, int(k)) for n in names}, rounds) for k in counts}


@dataclass(frozen=True)
class BudgetSweep:
    """The served-model choice re-made for every latency budget x candidate count."""

    metric: str
    higher_is_better: bool
    budgets_ms: tuple[float, ...]
    candidate_counts: tuple[int, ...]
    accuracy: Mapping[str, float]  # validation figures: what the rule chooses by
    latency_ms: Mapping[int, Mapping[str, Mapping[str, float]]]  # count -> model -> summary
    choices: Mapping[tuple[float, int], Choice]
    measured: str
    rounds: int
    load: Mapping[str, Mapping[str, float]]
    unit: str = "candidates"  # what a count counts (candidates, posts per call, images)

    def served(self, budget_ms: float, count: int) -> str | None:
        return self.choices[(budget_ms, count)].chosen

    def rules(self) -> list[str]:
        """Per candidate count, the budgets at which the choice changes: "under X ms: no model
        fits; X–<Y ms: A; ≥ Y ms: B" (over the swept budgets)."""
        out = []
        for k in self.candidate_counts:
            parts: list[str] = []
            runs: list[tuple[float, str | None]] = []
            for b in self.budgets_ms:
                chosen = self.served(b, k)
                if not runs or runs[-1][1] != chosen:
                    runs.append((b, chosen))
            for i, (b, chosen) in enumerate(runs):
                what = chosen if chosen is not None else "no model fits"
                upper = runs[i + 1][0] if i + 1 < len(runs) else None
                if upper is None:
                    span = f"≥ {b:g} ms" if i else f"any budget from {b:g} ms"
                else:
                    span = f"under {upper:g} ms" if i == 0 else f"{b:g}–<{upper:g} ms"
                parts.append(f"{span}: {what}")
            out.append(f"{k} {self.unit}: " + "; ".join(parts))
        return out

    def metrics(self) -> dict[str, Any]:
        return {
            "tradeoffs": {
                "budget_sweep": {
                    "metric": self.metric,
                    "budgets_ms": list(self.budgets_ms),
                    "candidate_counts": list(self.candidate_counts),
                    "validation": dict(self.accuracy),
                    "p99_ms": {
                        str(k): {n: s["p99"] for n, s in by_model.items()}
                        for k, by_model in self.latency_ms.items()
                    },
                    "chosen": {
                        str(k): {f"{b:g}": self.served(b, k) for b in self.budgets_ms}
                        for k in self.candidate_counts
                    },
                    "rules": self.rules(),
                    "measured": self.measured,
                    "rounds": self.rounds,
                    "unit": self.unit,
                    "machine_load": {k: dict(v) for k, v in self.load.items()},
                }
            }
        }


def sweep_budgets(
    accuracy: Mapping[str, float],
    latency_ms: Mapping[int, Mapping[str, Mapping[str, float]]],
    *,
    metric: str,
    higher_is_better: bool,
    budgets_ms: Sequence[float] = BUDGETS_MS,
    measured: str = "",
    rounds: int = 1,
    load: Mapping[str, Mapping[str, float]] | None = None,
    unit: str = "candidates",
) -> BudgetSweep:
    """Re-apply the latency rule to every budget x candidate count (pure: no timing)."""
    choices = {
        (float(b), int(k)): choose_within_budget(
            accuracy,
            {n: s["p99"] for n, s in by_model.items()},
            float(b),
            higher_is_better=higher_is_better,
        )
        for k, by_model in latency_ms.items()
        for b in budgets_ms
    }
    return BudgetSweep(
        metric,
        higher_is_better,
        tuple(float(b) for b in budgets_ms),
        tuple(int(k) for k in latency_ms),
        dict(accuracy),
        latency_ms,
        choices,
        measured,
        rounds,
        load or {"now": machine_load()},
        unit,
    )


def report_budget_sweep(bp: Blueprint, sweep: BudgetSweep, *, section: bool = True) -> None:
    """The trade-off table: p99 by model and candidate count, and the choice per budget."""
    if section:
        bp.section(f"Trade-offs: latency budget × {sweep.unit}")
    load = next(iter(sweep.load.values()))
    bp.text(
        f"Every model timed on the serving path ({sweep.measured}) at "
        f"{', '.join(str(k) for k in sweep.candidate_counts)} {sweep.unit}, {sweep.rounds} "
        f"interleaved rounds each (median p99; 1-minute load {load['load_1m']:.2f} on "
        f"{load['cores']:g} cores). The serving step's rule, the best validation "
        f"{sweep.metric} among the models whose p99 meets the budget, re-made per budget:"
    )
    names = list(sweep.accuracy)
    bp.table(
        ["model", f"validation {sweep.metric}", *(f"p99 ms @{k}" for k in sweep.candidate_counts)],
        [
            [n, sweep.accuracy[n], *(sweep.latency_ms[k][n]["p99"] for k in sweep.candidate_counts)]
            for n in names
        ],
        caption="Measured p99 by candidate count.",
    )
    bp.table(
        ["p99 budget", *(f"{k} {sweep.unit}" for k in sweep.candidate_counts)],
        [
            [f"{b:g} ms", *(sweep.served(b, k) or "— (none fits)" for k in sweep.candidate_counts)]
            for b in sweep.budgets_ms
        ],
        caption=f"The model the latency rule serves, per budget and {sweep.unit}.",
    )
    bp.text("The rules this table implies:\n" + "\n".join(f"- {r}" for r in sweep.rules()))


# ---- batch vs online prediction ----------------------------------------------------------------
@dataclass(frozen=True)
class PredictionMode:
    """One way to serve predictions, from measured figures."""

    mode: str  # e.g. "batch (daily)", "online"
    quality: float  # the system's metric on what users see
    staleness_hours: float  # how old a prediction can be when it is shown (0: fresh)
    p99_ms: float  # serving latency per request (a lookup for batch)
    predictions_per_day: float  # model evaluations per day at the chapter's scale
    ms_per_prediction: float  # measured compute per model evaluation

    @property
    def compute_hours_per_day(self) -> float:
        return self.predictions_per_day * self.ms_per_prediction / 3.6e6


@dataclass(frozen=True)
class BatchVsOnline:
    """Batch against online prediction: freshness lost, latency and daily compute."""

    metric: str
    modes: tuple[PredictionMode, ...]
    scale_note: str  # the traffic the per-day figures assume

    def metrics(self) -> dict[str, Any]:
        return {
            "tradeoffs": {
                "batch_vs_online": {
                    "metric": self.metric,
                    "scale": self.scale_note,
                    "modes": {
                        m.mode: {
                            "quality": m.quality,
                            "staleness_hours": m.staleness_hours,
                            "p99_ms": m.p99_ms,
                            "predictions_per_day": m.predictions_per_day,
                            "ms_per_prediction": m.ms_per_prediction,
                            "compute_hours_per_day": m.compute_hours_per_day,
                        }
                        for m in self.modes
                    },
                }
            }
        }


def report_batch_vs_online(bp: Blueprint, table: BatchVsOnline) -> None:
    """The batch-vs-online table, under the current section."""
    bp.table(
        [
            "prediction",
            table.metric,
            "staleness h",
            "serving p99 ms",
            "predictions / day",
            "compute h / day",
        ],
        [
            [
                m.mode,
                m.quality,
                m.staleness_hours,
                m.p99_ms,
                m.predictions_per_day,
                m.compute_hours_per_day,
            ]
            for m in table.modes
        ],
        caption=f"Batch vs online prediction ({table.scale_note}).",
    )
