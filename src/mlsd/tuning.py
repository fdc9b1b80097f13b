"""Hyper-parameter search on the validation split: a seeded Optuna study under a time budget.

A model declares its search space next to its class, as a tuple of :class:`Param`; a system calls
:func:`tune` with an objective that fits the model with one set of parameters on the training
rows and returns its metric on the **validation** rows (never the test rows; the caller owns
that guarantee, :func:`tune` never sees data). The study is

* seeded: Optuna's TPE sampler draws from a named :mod:`mlsd.rng` stream, so the same seed, space
  and objective give the same trials (within the trial cap; a time budget that cuts the study
  short depends on the machine, and the result records which of the two stopped it);
* budgeted: at most ``budget.max_trials`` trials and no new trial after ``budget.seconds`` (a
  trial already started finishes, so a study can overrun its budget by one fit);
* anchored: the first trial is the model's defaults (when given), so the tuned model is never
  worse on validation than the untuned one.

The result, :class:`TuningResult`, is data: the best parameters, the trials table, the seconds
spent and why the study stopped; :func:`report_tuning` renders a set of them in the blueprint.
Optuna is imported only when a study runs, and its own logging is kept at WARNING.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from mlsd.report import Blueprint
from mlsd.rng import seed_of

if TYPE_CHECKING:
    import optuna

__all__ = [
    "Budget",
    "Param",
    "TrialRow",
    "TuningResult",
    "check_space",
    "choice",
    "integer",
    "real",
    "report_tuning",
    "tune",
]

logger = logging.getLogger(__name__)

Kind = Literal["float", "int", "categorical"]
Direction = Literal["minimize", "maximize"]


@dataclass(frozen=True)
class Param:
    """One dimension of a search space: a float or int range (``log`` for a log-uniform one) or
    a list of ``choices`` (any JSON-able values, tuples included)."""

    name: str
    kind: Kind
    low: float | None = None
    high: float | None = None
    log: bool = False
    choices: tuple[Any, ...] = ()

    def check(self) -> None:
        """``ValueError`` naming this parameter when it describes no valid range."""
        where = f"search space parameter {self.name!r}"
        if not self.name:
            raise ValueError("a search space parameter needs a name")
        if self.kind == "categorical":
            if not self.choices:
                raise ValueError(f"{where}: a categorical parameter needs at least one choice")
            return
        if self.kind not in ("float", "int"):
            raise ValueError(f"{where}: kind must be float, int or categorical, not {self.kind!r}")
        if self.low is None or self.high is None:
            raise ValueError(f"{where}: a {self.kind} parameter needs low and high")
        if not (math.isfinite(self.low) and math.isfinite(self.high)) or self.low > self.high:
            raise ValueError(f"{where}: needs finite low <= high, got [{self.low}, {self.high}]")
        if self.log and self.low <= 0:
            raise ValueError(f"{where}: a log-scale range needs low > 0, got {self.low}")
        if self.kind == "int" and (self.low != int(self.low) or self.high != int(self.high)):
            raise ValueError(
                f"{where}: an int range needs whole bounds, got [{self.low}, {self.high}]"
            )

    def suggest(self, trial: optuna.Trial) -> Any:
        if self.kind == "categorical":
            # Optuna stores choices as given; index them so tuples and None survive storage
            i = trial.suggest_categorical(self.name, list(range(len(self.choices))))
            return self.choices[int(i)]
        assert self.low is not None and self.high is not None
        if self.kind == "int":
            return trial.suggest_int(self.name, int(self.low), int(self.high), log=self.log)
        return trial.suggest_float(self.name, self.low, self.high, log=self.log)

    def encode(self, value: Any) -> Any:
        """``value`` as this parameter's Optuna value (a categorical's index), for enqueueing."""
        if self.kind != "categorical":
            return value
        if value not in self.choices:
            raise ValueError(
                f"search space parameter {self.name!r}: default {value!r} is not one of "
                f"{list(self.choices)}"
            )
        return self.choices.index(value)


def real(name: str, low: float, high: float, log: bool = False) -> Param:
    """A float parameter in ``[low, high]`` (log-uniform with ``log``)."""
    return Param(name, "float", low, high, log)


def integer(name: str, low: int, high: int, log: bool = False) -> Param:
    """An int parameter in ``[low, high]``."""
    return Param(name, "int", low, high, log)


def choice(name: str, choices: Sequence[Any]) -> Param:
    """A parameter taking one of ``choices``."""
    return Param(name, "categorical", choices=tuple(choices))


def check_space(space: Sequence[Param], accepted: Sequence[str] | None = None) -> None:
    """``ValueError`` for an empty space, a repeated name, a bad range, or (given ``accepted``,
    e.g. an estimator's ``get_params()``) a parameter the model does not take."""
    if not space:
        raise ValueError("the search space is empty: declare at least one Param")
    names = [p.name for p in space]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ValueError(f"search space names a parameter twice: {repeated}")
    for p in space:
        p.check()
    if accepted is not None:
        unknown = [n for n in names if n not in accepted]
        if unknown:
            raise ValueError(
                f"search space parameters {unknown} are not parameters of the model "
                f"(it takes {sorted(accepted)})"
            )


@dataclass(frozen=True)
class Budget:
    """At most ``max_trials`` trials, and none started after ``seconds``."""

    seconds: float
    max_trials: int

    def __post_init__(self) -> None:
        if not self.seconds > 0 or self.max_trials < 1:
            raise ValueError(
                f"a tuning budget needs seconds > 0 and max_trials >= 1, got {self.seconds} s "
                f"and {self.max_trials} trials"
            )


@dataclass(frozen=True)
class TrialRow:
    """One trial: its number, parameters, validation value (None if it failed) and seconds."""

    number: int
    params: Mapping[str, Any]
    value: float | None
    seconds: float


@dataclass(frozen=True)
class TuningResult:
    """A finished study: what was searched, the best trial, every trial and the time spent."""

    name: str
    metric: str
    direction: Direction
    best_params: Mapping[str, Any]
    best_value: float
    default_value: float | None  # the first trial's, when it ran the defaults
    trials: tuple[TrialRow, ...]
    seconds: float
    budget: Budget
    stopped_by: Literal["trials", "time"]
    seed: int
    space: tuple[Param, ...] = field(default=())

    def metrics(self) -> dict[str, Any]:
        return {
            "metric": self.metric,
            "direction": self.direction,
            "best_params": {k: _jsonable(v) for k, v in self.best_params.items()},
            "best_validation": self.best_value,
            "default_validation": self.default_value,
            "trials": len(self.trials),
            "seconds": round(self.seconds, 3),
            "budget": {"seconds": self.budget.seconds, "max_trials": self.budget.max_trials},
            "stopped_by": self.stopped_by,
            "seed": self.seed,
            "table": [
                {
                    "number": t.number,
                    "params": {k: _jsonable(v) for k, v in t.params.items()},
                    "value": t.value,
                    "seconds": round(t.seconds, 3),
                }
                for t in self.trials
            ],
        }


def _jsonable(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def tune(
    name: str,
    objective: Callable[[dict[str, Any]], float],
    space: Sequence[Param],
    budget: Budget,
    seed: int,
    *,
    metric: str,
    direction: Direction = "minimize",
    defaults: Mapping[str, Any] | None = None,
) -> TuningResult:
    """Search ``space`` for the parameters that optimise ``objective(params)`` (a validation
    metric), seeded by stream ``tuning/<name>`` of ``seed``, within ``budget``.

    ``defaults`` (the model's own values of the searched parameters) run as the first trial. A
    trial whose objective raises or returns a non-finite value is recorded as failed; if every
    trial fails, ``RuntimeError`` names the study and the first error.
    """
    check_space(space)
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    by_name = {p.name: p for p in space}
    stream_seed = seed_of(seed, f"tuning/{name}")
    sampler = optuna.samplers.TPESampler(
        seed=stream_seed, n_startup_trials=max(1, min(10, budget.max_trials // 2))
    )
    study = optuna.create_study(direction=direction, sampler=sampler, study_name=name)
    if defaults is not None:
        missing = [n for n in by_name if n not in defaults]
        if missing:
            raise ValueError(f"tuning {name}: defaults lack searched parameters {missing}")
        study.enqueue_trial({n: by_name[n].encode(defaults[n]) for n in by_name})
    errors: list[str] = []
    rows: list[TrialRow] = []

    def run_trial(trial: optuna.Trial) -> float:
        params = {p.name: p.suggest(trial) for p in space}
        t0 = time.perf_counter()
        try:
            value = float(objective(params))
        except Exception as exc:  # a failed trial is data; the study goes on
            errors.append(f"trial {trial.number} {params}: {type(exc).__name__}: {exc}")
            logger.warning("tuning %s: %s", name, errors[-1])
            rows.append(TrialRow(trial.number, params, None, time.perf_counter() - t0))
            raise optuna.TrialPruned() from exc
        seconds = time.perf_counter() - t0
        ok = math.isfinite(value)
        rows.append(TrialRow(trial.number, params, value if ok else None, seconds))
        logger.info("tuning %s: trial %d %s -> %s %.5g", name, trial.number, params, metric, value)
        if not ok:
            errors.append(f"trial {trial.number} {params}: {metric} is {value}")
            raise optuna.TrialPruned()
        return value

    t0 = time.perf_counter()
    study.optimize(run_trial, n_trials=budget.max_trials, timeout=budget.seconds)
    seconds = time.perf_counter() - t0
    done = [r for r in rows if r.value is not None]
    if not done:
        raise RuntimeError(f"tuning {name}: every trial failed; the first: {errors[0]}")
    sign = 1.0 if direction == "minimize" else -1.0
    best = min(done, key=lambda r: (sign * float(r.value or 0.0), r.number))
    first = rows[0]
    default_value = first.value if defaults is not None and first.number == 0 else None
    stopped_by: Literal["trials", "time"] = "trials" if len(rows) >= budget.max_trials else "time"
    logger.info(
        "tuning %s: %d trials in %.1f s (stopped by %s), best %s %.5g with %s",
        name,
        len(rows),
        seconds,
        stopped_by,
        metric,
        best.value,
        best.params,
    )
    return TuningResult(
        name=name,
        metric=metric,
        direction=direction,
        best_params=dict(best.params),
        best_value=float(best.value or 0.0),
        default_value=default_value,
        trials=tuple(rows),
        seconds=seconds,
        budget=budget,
        stopped_by=stopped_by,
        seed=seed,
        space=tuple(space),
    )


def _format(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3g}"
    if isinstance(value, tuple):
        return "(" + ", ".join(_format(v) for v in value) + ")"
    return str(value)


def report_tuning(bp: Blueprint, results: Mapping[str, TuningResult], caption: str = "") -> None:
    """One row per tuned model: trials, seconds, why it stopped, the validation metric with the
    defaults and with the best parameters, and the best parameters."""
    if not results:
        return
    metric = next(iter(results.values())).metric
    bp.table(
        [
            "model",
            "trials",
            "seconds",
            "stopped by",
            f"validation {metric}, defaults",
            f"validation {metric}, best",
            "best parameters",
        ],
        [
            [
                name,
                len(r.trials),
                round(r.seconds, 1),
                f"{r.stopped_by} ({r.budget.max_trials} trials / {r.budget.seconds:g} s)",
                "" if r.default_value is None else round(r.default_value, 5),
                round(r.best_value, 5),
                ", ".join(f"{k}={_format(v)}" for k, v in r.best_params.items()),
            ]
            for name, r in results.items()
        ],
        caption=caption,
    )
