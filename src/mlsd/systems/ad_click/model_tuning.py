"""Ad click prediction, step 4: the models step, each learner tuned on the validation split.

Every learner of the line-up (:func:`~.model.candidate_models`) gets a small, seeded Optuna search
(:func:`mlsd.tuning.tune`) over the space declared next to it (:data:`~.model.SEARCH_SPACES`):
each trial fits the model, wrapped in its negative-downsampling correction, on the training rows
and scores its log loss on the **validation** rows (the day after training on the world, a
random tenth of the data file on a file; never the test rows). The model's defaults are the
first trial, so tuning never leaves a model worse on validation than its defaults. Each deep
model and LightGBM still stop early on a hold-out carved from the training rows. The best
trial's fitted model is kept (no refit: the fits are deterministic).

The budget per model depends on the scale (:data:`BUDGETS`); ``MLSD_TUNE_BUDGET_S`` sets the
seconds per model (0: no tuning, the defaults as they are).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import clone

from mlsd import metrics as mm
from mlsd.models import ClickEstimator, NegativeDownsampled
from mlsd.report import Blueprint
from mlsd.runner import ProgressFn
from mlsd.systems.ad_click.model import (
    BASELINE,
    SEARCH_SPACES,
    TrainedModels,
    candidate_models,
    downsampling_seed,
    negative_rate,
)
from mlsd.systems.ad_click.model import report_models as report_lineup
from mlsd.systems.ad_click.model_fields import field_usage, report_fields
from mlsd.tuning import Budget, TuningResult, check_space, report_tuning, tune

logger = logging.getLogger(__name__)

# Per model: at most this many trials (the first is the defaults), and no new one after this
# many seconds. The trial cap decides the search; the time limit is a safety net with headroom,
# so the same run picks the same parameters on a loaded machine or on Ray (a limit near the
# quiet time did not: at small, 60 s let the PyTorch models run all 6 trials locally, 28-40 s,
# but only 1-3 on Ray, where each fit is a Ray Train job of 26-72 s). Small is the demo: a few
# trials each, a couple of minutes in all on two quiet cores.
BUDGETS: dict[str, Budget] = {
    "tiny": Budget(seconds=60.0, max_trials=2),
    "small": Budget(seconds=600.0, max_trials=6),
    "medium": Budget(seconds=1800.0, max_trials=10),
    "large": Budget(seconds=3600.0, max_trials=12),
}
METRIC = "log loss"


def tuning_budget(scale: str, seconds: float | None = None) -> Budget | None:
    """The scale's budget; ``seconds`` (``MLSD_TUNE_BUDGET_S``) overrides its time, 0 disables."""
    base = BUDGETS.get(scale, BUDGETS["small"])
    if seconds is None:
        return base
    if seconds < 0:
        raise ValueError(f"MLSD_TUNE_BUDGET_S must be >= 0 (0 turns tuning off), got {seconds}")
    return None if seconds == 0 else Budget(seconds=seconds, max_trials=base.max_trials)


def _wrapped(model: ClickEstimator, y_train: np.ndarray, seed: int) -> NegativeDownsampled:
    return NegativeDownsampled(
        model, rate=negative_rate(y_train), random_state=downsampling_seed(seed)
    )


def _tune_one(
    name: str,
    model: ClickEstimator,
    train: tuple[pd.DataFrame, np.ndarray],
    validation: tuple[pd.DataFrame, np.ndarray],
    seed: int,
    budget: Budget,
) -> tuple[ClickEstimator, TuningResult, float]:
    """Search ``name``'s space; the best trial's fitted model, the study and that fit's seconds."""
    space = SEARCH_SPACES[name]
    params = model.get_params()
    check_space(space, accepted=list(params))
    best: dict[str, Any] = {}

    def objective(values: dict[str, Any]) -> float:
        est = _wrapped(clone(model).set_params(**values), train[1], seed)
        t0 = time.perf_counter()
        est.fit(*train)
        seconds = time.perf_counter() - t0
        loss = mm.log_loss(validation[1], est.predict_proba(validation[0])[:, 1])
        if "loss" not in best or loss < best["loss"]:
            best.update(loss=loss, model=est, seconds=seconds)
        return loss

    result = tune(
        name,
        objective,
        space,
        budget,
        seed,
        metric=METRIC,
        defaults={p.name: params[p.name] for p in space},
    )
    return best["model"], result, float(best["seconds"])


def train_tuned(
    train: tuple[pd.DataFrame, np.ndarray],
    validation: tuple[pd.DataFrame, np.ndarray],
    seed: int,
    budget: Budget | None,
    progress: ProgressFn | None = None,
    models: Mapping[str, ClickEstimator] | None = None,
) -> TrainedModels:
    """The line-up (``models``, by default :func:`~.model.candidate_models`): the baseline
    fitted on every training row; each learner tuned within ``budget`` on ``validation`` (or,
    with no budget, fitted with its defaults), downsampled where clicks are rare and
    re-calibrated. Records per model what it made of every column (:mod:`.model_fields`)."""
    fitted: dict[str, ClickEstimator] = {}
    info: dict[str, dict[str, Any]] = {}
    studies: dict[str, TuningResult] = {}
    models = candidate_models(seed) if models is None else models
    for i, (name, model) in enumerate(models.items()):
        if progress is not None:
            progress(f"{'tuning' if budget else 'training'} {name}", i, len(models))
        downsampled = name != BASELINE
        t0 = time.perf_counter()
        if downsampled and budget is not None:
            est, study, seconds = _tune_one(name, model, train, validation, seed, budget)
            studies[name] = study
        else:
            est = _wrapped(model, train[1], seed) if downsampled else model
            est.fit(*train)
            seconds = time.perf_counter() - t0
        fitted[name] = est
        info[name] = {
            "train_seconds": round(seconds, 3),
            "class": type(model).__name__,
            "downsampled": downsampled,
        }
        logger.info("%s: trained in %.1f s", name, time.perf_counter() - t0)
    if progress is not None:
        progress("trained", len(models), len(models))
    columns = list(train[0].columns)
    fields = {name: field_usage(est, columns) for name, est in fitted.items()}
    return TrainedModels(fitted, info, tuning=studies, fields=fields)


def report_models(bp: Blueprint, result: TrainedModels) -> None:
    """The line-up's section, then the search per model and what each model made of each field."""
    report_lineup(bp, result)
    if result.tuning:
        any_study = next(iter(result.tuning.values()))
        bp.text(
            "Hyper-parameters: a seeded Optuna search per learner (TPE sampler; the first trial "
            f"is the model's defaults), each trial fitted on the training rows and scored by its "
            f"{METRIC} on the validation rows, never the test rows; at most "
            f"{any_study.budget.max_trials} trials and no new trial after "
            f"{any_study.budget.seconds:g} s per model. The best trial's model is the one "
            "evaluated below. Early stopping inside a fit uses a hold-out of the training rows."
        )
        report_tuning(bp, result.tuning, caption=f"Validation {METRIC}: lower is better.")
    else:
        bp.text("Hyper-parameters: the models' defaults (tuning is off: MLSD_TUNE_BUDGET_S=0).")
    report_fields(bp, result.fields)
