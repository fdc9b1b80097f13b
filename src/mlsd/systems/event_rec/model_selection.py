"""Step 4: every hyper-parameter and the served model are chosen on the validation days.

The logged days split by time into **training** days (fit), **validation** days (choose) and
**test** days (report, once, step 5). On the validation days the world labels every open event
of a sample of sessions, exactly as on the test days, and each configuration trained on the
training days is scored there with nDCG@10:

* popular-nearby: the distance scale; logistic regression: ``C``;
* both LightGBMs: the leaves and the **tree count** (scores after every ``step`` trees, one pass);
* LambdaRank's practitioner fixes (``LAMBDARANK_VARIANTS``): truncation level, graded labels
  (click 1, registration 2) with LightGBM's or a steeper ``label_gain``, the XE-NDCG objective;
* the MLP is not tuned (early stopping on a seeded tenth of its training rows).

The **served model** is the best on validation nDCG@10. Then every model is refit on training +
validation days with what was chosen (the trees fixed), and only those refits see the test days.
Nothing here reads a test-day label: ``select_models`` gets the test rows in ``data`` and
ignores them (a test permutes them and checks that every choice stays the same).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from mlsd.report import Blueprint
from mlsd.systems.event_rec.evaluation import EvalSet
from mlsd.systems.event_rec.evaluation_metrics import (
    paired_difference,
    per_session,
    ranking_metrics,
)
from mlsd.systems.event_rec.features import TrainingData, rows_of
from mlsd.systems.event_rec.model import (
    BASELINE,
    LIGHTGBM,
    MODELS,
    fit_rows,
    make_model,
    score,
    staged_scores,
    use_trees,
)

log = logging.getLogger(__name__)

LEAVES = (7, 15, 31)
C_GRID = (0.1, 1.0, 10.0)
KM_SCALES = (2.0, 4.0, 8.0)
LAMBDARANK_VARIANTS: dict[str, dict[str, Any]] = {
    "registrations 0/1, truncation 20": {},
    "registrations 0/1, truncation 10": {"truncation_level": 10},
    "graded 0/1/2, gains 0/1/3": {"graded": True},
    "graded 0/1/2, gains 0/1/7": {"graded": True, "label_gain": (0.0, 1.0, 7.0)},
    "XE-NDCG objective": {"objective": "rank_xendcg"},
}
BASE_VARIANT = "registrations 0/1, truncation 20"


@dataclass(frozen=True)
class TrainedModels:
    models: dict[str, Any]  # refit on training + validation days with the chosen settings
    params: dict[str, dict[str, Any]]  # the chosen hyper-parameters (with the trees)
    validation: dict[str, dict[str, float]]  # each chosen configuration on the validation days
    trials: list[dict[str, Any]]  # every configuration tried: model, setting, trees, nDCG, MAP
    paired_validation: dict[str, dict[str, float]]  # lambdarank - pointwise, paired, validation
    chosen: str
    train_seconds: dict[str, float]
    rows: int
    train_days: tuple[int, ...]
    val_days: tuple[int, ...]
    val_sessions: int
    max_trees: int = 0  # the most trees tried
    baseline: str = BASELINE

    @property
    def capped(self) -> list[str]:
        """The LightGBM models whose validation-best tree count is the most tried."""
        return [n for n in LIGHTGBM if self.params[n].get("n_estimators") == self.max_trees]

    def metrics(self) -> dict[str, Any]:
        return {
            "models": {
                n: {
                    "train_seconds": round(self.train_seconds[n], 3),
                    "train_rows": self.rows,
                    "hyperparameters": _jsonable(self.params[n]),
                    "validation": self.validation[n],
                }
                for n in MODELS
            },
            "selection": {
                "chosen_on": "validation",
                "chosen": self.chosen,
                "train_days": list(self.train_days),
                "validation_days": list(self.val_days),
                "validation_sessions": self.val_sessions,
                "trials": self.trials,
                "lambdarank_vs_pointwise_validation": self.paired_validation,
                "max_trees": self.max_trees,
                "tree_count_at_the_cap": self.capped,
            },
        }


def _jsonable(params: dict[str, Any]) -> dict[str, Any]:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in params.items()}


class _Validation:
    """The validation candidates that pass filtering, and nDCG@10 / MAP@10 of a score vector."""

    def __init__(self, ev: EvalSet) -> None:
        k = ev.kept
        self.X = ev.X[k].reset_index(drop=True)
        self.session, self.y = ev.session[k], ev.y[k]

    def metrics(self, s: np.ndarray) -> dict[str, float]:
        return ranking_metrics(self.session, self.y, s)


def _trial(model: str, setting: str, trees: int | None, m: dict[str, float]) -> dict[str, Any]:
    return {
        "model": model,
        "setting": setting,
        "trees": trees,
        "ndcg@10": m.get("ndcg@10", float("nan")),
        "map@10": m.get("map@10", float("nan")),
    }


def _best_trees(model: Any, val: _Validation, step: int) -> tuple[int, dict[str, float]]:
    staged = [(n, val.metrics(s)) for n, s in staged_scores(model, val.X, step)]
    n, m = max(staged, key=lambda t: (t[1].get("ndcg@10", 0.0), -t[0]))
    return n, m


def select_models(
    data: TrainingData,
    val_ev: EvalSet,
    seed: int,
    n_estimators: int,
    progress: Any = None,
    leaves_grid: tuple[int, ...] = LEAVES,
    variants: dict[str, dict[str, Any]] | None = None,
) -> TrainedModels:
    """Tune every model on the validation days, choose the served one, refit on train + val.
    ``leaves_grid`` and ``variants`` (default: all of ``LAMBDARANK_VARIANTS``) narrow the
    search."""
    variants = LAMBDARANK_VARIANTS if variants is None else variants
    if set(val_ev.day.tolist()) - set(data.val_days):
        raise ValueError("the validation candidates must come from the validation days only")
    train = rows_of(data, data.train_days)
    val = _Validation(val_ev)
    step = max(n_estimators // 16, 5)
    trials: list[dict[str, Any]] = []
    params: dict[str, dict[str, Any]] = {}
    chosen_val: dict[str, dict[str, float]] = {}
    sessions: dict[str, pd.DataFrame] = {}

    def keep(name: str, p: dict[str, Any], m: dict[str, float], s: np.ndarray) -> None:
        if name not in chosen_val or m["ndcg@10"] > chosen_val[name]["ndcg@10"]:
            params[name], chosen_val[name] = p, m
            sessions[name] = per_session(val.session, val.y, s)

    for name, key, grid in (
        ("popular_nearby", "km_scale", KM_SCALES),
        ("logistic_regression", "C", C_GRID),
        ("mlp", None, (None,)),
    ):
        for v in grid:
            p = {} if key is None else {key: v}
            s = score(fit_rows(make_model(name, seed, n_estimators, params=p), train), val.X)
            m = val.metrics(s)
            trials.append(_trial(name, f"{key}={v}" if key else "default", None, m))
            keep(name, p, m, s)
    total = len(leaves_grid) * 2 + len(variants) - 1
    done = 0

    def lightgbm(name: str, setting: str, p: dict[str, Any]) -> None:
        nonlocal done
        model = fit_rows(make_model(name, seed, n_estimators, params=p), train)
        n, m = _best_trees(model, val, step)
        trials.append(_trial(name, setting, n, m))
        keep(name, {**p, "n_estimators": n}, m, score(use_trees(model, n), val.X))
        done += 1
        if progress is not None:
            progress("tuning on validation", done, total)

    for leaves in leaves_grid:
        lightgbm("lightgbm_pointwise", f"leaves={leaves}", {"num_leaves": leaves})
    for leaves in leaves_grid:
        lightgbm("lightgbm_lambdarank", f"{BASE_VARIANT}, leaves={leaves}", {"num_leaves": leaves})
    leaves = params["lightgbm_lambdarank"]["num_leaves"]
    for variant, extra in variants.items():
        if variant != BASE_VARIANT:
            lightgbm(
                "lightgbm_lambdarank",
                f"{variant}, leaves={leaves}",
                {"num_leaves": leaves, **extra},
            )
    chosen = max(MODELS, key=lambda n: chosen_val[n]["ndcg@10"])
    paired = {
        m: paired_difference(sessions["lightgbm_lambdarank"], sessions["lightgbm_pointwise"], m)
        for m in ("ndcg@10", "map@10")
    }
    log.info("event-rec: validation chose %s (%s)", chosen, params[chosen])
    refit = rows_of(data, data.train_days + data.val_days)
    models, seconds = {}, {}
    for name in MODELS:
        t0 = time.perf_counter()
        models[name] = fit_rows(make_model(name, seed, n_estimators, params=params[name]), refit)
        seconds[name] = time.perf_counter() - t0
        log.info("event-rec: refit %s in %.1f s", name, seconds[name])
    return TrainedModels(
        models=models,
        params=params,
        validation=chosen_val,
        trials=trials,
        paired_validation={m: d for m, d in paired.items()},
        chosen=chosen,
        train_seconds=seconds,
        rows=len(refit.y),
        train_days=data.train_days,
        val_days=data.val_days,
        val_sessions=int(chosen_val[chosen].get("sessions", 0)),
        max_trees=n_estimators,
    )


def best_lightgbm(result: TrainedModels) -> str:
    """The LightGBM model with the better validation nDCG@10 (the ablation's model)."""
    return max(LIGHTGBM, key=lambda n: result.validation[n]["ndcg@10"])


def report_models(bp: Blueprint, result: TrainedModels) -> None:
    bp.text(
        "Five rankers, none using an event id (every event is new): **popular-nearby** "
        "(registrations so far minus distance, no learning), **logistic regression** on the "
        "standardised features, a small **MLP** (two hidden layers, BCE), **LightGBM "
        "pointwise** (P(register) per pair) and **LightGBM LambdaRank** (listwise: each shown "
        "list, one request, is a query group; pairs weighted by their nDCG change). The logged "
        "slot is a training feature set to 0 when ranking, to learn and then remove the position "
        "bias."
    )
    bp.text(
        f"**Which split chose what.** Training days {list(result.train_days)} fit every "
        f"configuration; validation days {list(result.val_days)} ({result.val_sessions:,} "
        "sessions with a positive, every open event labelled by the world) chose every "
        "hyper-parameter (distance scale, C, leaves, the LightGBM tree counts, LambdaRank's "
        f"labels, gains, truncation and objective) and the served model, **{result.chosen}** "
        "(best validation nDCG@10). Each model was then refit on training + validation days "
        f"({result.rows:,} logged impressions) with the chosen settings; the test days score "
        "those refits once (step 5) and choose nothing."
    )
    bp.table(
        ["model", "chosen hyper-parameters", "validation nDCG@10", "validation MAP@10", "refit s"],
        [
            [
                n,
                ", ".join(f"{k}={v}" for k, v in result.params[n].items()) or "default",
                result.validation[n]["ndcg@10"],
                result.validation[n]["map@10"],
                round(result.train_seconds[n], 2),
            ]
            for n in MODELS
        ],
        caption="The chosen configuration of each model, validation days",
    )
    bp.text("Every configuration tried (validation days; trees: the validation-best count):")
    bp.table(
        ["model", "setting", "trees", "nDCG@10", "MAP@10"],
        [
            [t["model"], t["setting"], t["trees"] or "", t["ndcg@10"], t["map@10"]]
            for t in result.trials
        ],
    )
    if result.capped:
        bp.text(
            f"The validation-best tree count of {', '.join(result.capped)} is the most tried "
            f"({result.max_trees}): a longer search might still gain on validation."
        )
    d = result.paired_validation
    bp.text(
        "LambdaRank minus pointwise on the same validation sessions (each at its chosen "
        f"settings): nDCG@10 {d['ndcg@10']['diff']:+.4f} (95% CI "
        f"[{d['ndcg@10']['ci_low']:.4f}, {d['ndcg@10']['ci_high']:.4f}]), MAP@10 "
        f"{d['map@10']['diff']:+.4f} ([{d['map@10']['ci_low']:.4f}, "
        f"{d['map@10']['ci_high']:.4f}])."
    )
