"""Ad click on libFM-layout files: mlsd's tuned line-up against plain, tuned libraries (#16).

The same train / test files, the same split of the train file into training and validation rows
(the one ``mlsd run ad-click --data libfm:TRAIN --test-data libfm:TEST`` makes), the same tuner
and budget per model (:mod:`mlsd.tuning`, validation log loss), and test figures read once, at
the end:

* **mlsd**: the models step of ``mlsd run`` (``model_tuning.train_tuned``) and its offline
  evaluation; "mlsd's best" is the model with the lowest *validation* log loss;
* **plain LightGBM**: ``lightgbm.train`` on every training row, every field a native categorical
  (codes of the training vocabulary), early stopping on the validation rows, tuned by Optuna
  (learning rate, leaves, leaf size, categorical smoothing and L2);
* **plain logistic regression**: scikit-learn, one-hot (``OneHotEncoder``) of every field, C tuned.

The files: ``MLSD_BENCH_LIBFM=TRAIN,TEST`` names real ones (a public libFM CTR set such as
Frappe); without it a synthetic Frappe-shaped set is written
(:mod:`~mlsd.systems.ad_click.datasets_synthetic`). The benchmark measures; it never asserts.
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import OneHotEncoder

from benchmarks import BenchResult
from mlsd import metrics as mm
from mlsd.systems.ad_click.datasets import read_files
from mlsd.systems.ad_click.datasets_synthetic import write_synthetic_libfm
from mlsd.systems.ad_click.evaluation import compute_offline
from mlsd.systems.ad_click.features_split import TrainingData, compute_file_features
from mlsd.systems.ad_click.model_tuning import BUDGETS, train_tuned
from mlsd.tuning import Budget, TuningResult, integer, real, tune

log = logging.getLogger(__name__)

SEED = 0
PLAIN_LIGHTGBM_SPACE = (
    real("learning_rate", 0.02, 0.2, log=True),
    integer("num_leaves", 15, 127, log=True),
    integer("min_data_in_leaf", 5, 200, log=True),
    real("cat_smooth", 1.0, 100.0, log=True),
    real("cat_l2", 1.0, 50.0, log=True),
)
PLAIN_LR_SPACE = (real("C", 1e-2, 10.0, log=True),)


def _parts(data: TrainingData) -> dict[str, tuple[pd.DataFrame, np.ndarray]]:
    return {
        part: (data.X.iloc[rows].reset_index(drop=True), data.y[rows])
        for part, rows in data.split.items()
    }


def _codes(parts: dict[str, tuple[pd.DataFrame, np.ndarray]]) -> dict[str, np.ndarray]:
    """Every ``c_*`` column as integer codes of its training vocabulary (unseen: -1, missing)."""
    cols = [c for c in parts["train"][0].columns if c.startswith("c_")]
    vocab = {c: np.unique(parts["train"][0][c].to_numpy()) for c in cols}
    out = {}
    for part, (X, _) in parts.items():
        m = np.empty((len(X), len(cols)), dtype=np.int64)
        for j, c in enumerate(cols):
            v = X[c].to_numpy()
            i = np.clip(np.searchsorted(vocab[c], v), 0, len(vocab[c]) - 1)
            m[:, j] = np.where(vocab[c][i] == v, i, -1)
        out[part] = m
    return out


def plain_lightgbm(
    parts: dict[str, tuple[pd.DataFrame, np.ndarray]], budget: Budget
) -> tuple[np.ndarray, TuningResult]:
    """Tuned LightGBM with native categoricals; its test predictions and the study."""
    codes = _codes(parts)
    y_tr, y_va = parts["train"][1], parts["validation"][1]
    cats = list(range(codes["train"].shape[1]))
    best: dict[str, Any] = {}

    def fit(params: dict[str, Any]) -> float:
        train_set = lgb.Dataset(codes["train"], y_tr, categorical_feature=cats, free_raw_data=False)
        val_set = lgb.Dataset(codes["validation"], y_va, reference=train_set)
        booster = lgb.train(
            {
                "objective": "binary",
                "verbosity": -1,
                "seed": SEED,
                "num_threads": 2,
                "deterministic": True,
                "force_row_wise": True,
                **params,
            },
            train_set,
            num_boost_round=1000,
            valid_sets=[val_set],
            callbacks=[lgb.early_stopping(30, verbose=False)],
        )
        loss = mm.log_loss(y_va, np.asarray(booster.predict(codes["validation"])))
        if "loss" not in best or loss < best["loss"]:
            best.update(loss=loss, booster=booster)
        return loss

    study = tune("plain-lightgbm", fit, PLAIN_LIGHTGBM_SPACE, budget, SEED, metric="log loss")
    return np.asarray(best["booster"].predict(codes["test"])), study


def plain_logistic_regression(
    parts: dict[str, tuple[pd.DataFrame, np.ndarray]], budget: Budget
) -> tuple[np.ndarray, TuningResult]:
    """Tuned scikit-learn logistic regression on one-hot fields."""
    cols = [c for c in parts["train"][0].columns if c.startswith("c_")]
    enc = OneHotEncoder(handle_unknown="ignore").fit(parts["train"][0][cols])
    design = {part: enc.transform(X[cols]) for part, (X, _) in parts.items()}
    best: dict[str, Any] = {}

    def fit(params: dict[str, Any]) -> float:
        model = LogisticRegression(C=params["C"], max_iter=1000)
        model.fit(design["train"], parts["train"][1])
        loss = mm.log_loss(parts["validation"][1], model.predict_proba(design["validation"])[:, 1])
        if "loss" not in best or loss < best["loss"]:
            best.update(loss=loss, model=model)
        return loss

    study = tune("plain-lr", fit, PLAIN_LR_SPACE, budget, SEED, metric="log loss")
    return best["model"].predict_proba(design["test"])[:, 1], study


def _files(quick: bool, work: Path) -> tuple[Path, Path, str]:
    named = os.environ.get("MLSD_BENCH_LIBFM")
    if named:
        train, _, test = named.partition(",")
        return Path(train), Path(test), "files named by MLSD_BENCH_LIBFM"
    n_train, n_test = (8_000, 2_000) if quick else (40_000, 10_000)
    syn = write_synthetic_libfm(work, n_train, n_test, seed=SEED)
    return syn.train, syn.test, f"synthetic Frappe-shaped libFM set ({n_train:,} + {n_test:,} rows)"


def run(quick: bool = False) -> BenchResult:
    budget = BUDGETS["tiny" if quick else "small"]
    with tempfile.TemporaryDirectory(prefix="mlsd-bench-ad-real-") as tmp:
        train_path, test_path, what = _files(quick, Path(tmp))
        files = read_files(f"libfm:{train_path}", f"libfm:{test_path}")
        data = compute_file_features(files, SEED)
    parts = _parts(data)
    y_te = parts["test"][1]
    rows: list[dict[str, Any]] = []

    t0 = time.perf_counter()
    trained = train_tuned(parts["train"], parts["validation"], SEED, budget)
    offline = compute_offline(trained, data)
    mlsd_seconds = time.perf_counter() - t0
    for name, m in offline.scores.items():
        study = trained.tuning.get(name)
        rows.append(
            {
                "model": name,
                "library": "mlsd",
                "test_roc_auc": m["roc_auc"],
                "test_logloss": m["logloss"],
                "validation_logloss": study.best_value if study else None,
                "trials": len(study.trials) if study else 0,
                "tune_seconds": study.seconds if study else 0.0,
            }
        )
    for name, fn in (
        ("lightgbm", plain_lightgbm),
        ("logistic_regression", plain_logistic_regression),
    ):
        p, study = fn(parts, budget)
        rows.append(
            {
                "model": name,
                "library": "lightgbm (native categoricals)"
                if name == "lightgbm"
                else "scikit-learn (one-hot)",
                "test_roc_auc": mm.roc_auc(y_te, p),
                "test_logloss": mm.log_loss(y_te, p),
                "validation_logloss": study.best_value,
                "trials": len(study.trials),
                "tune_seconds": study.seconds,
            }
        )
    mlsd_rows = [r for r in rows if r["library"] == "mlsd" and r["validation_logloss"] is not None]
    best = min(mlsd_rows, key=lambda r: r["validation_logloss"])  # chosen on validation
    plain_gbm = next(r for r in rows if r["library"].startswith("lightgbm"))
    return BenchResult(
        name="ad_click_real",
        description=f"ad click on libFM files ({what}): mlsd's tuned line-up vs plain tuned "
        "LightGBM (native categoricals) and scikit-learn one-hot LR, test ROC-AUC",
        rows=rows,
        summary={
            "mlsd_best": best["model"],
            "mlsd_best_test_roc_auc": best["test_roc_auc"],
            "plain_lightgbm_test_roc_auc": plain_gbm["test_roc_auc"],
            "mlsd_best_beats_plain_lightgbm": best["test_roc_auc"] > plain_gbm["test_roc_auc"],
            "mlsd_seconds": round(mlsd_seconds, 1),
            "positive_rate_test": float(y_te.mean()),
        },
        params={
            "budget": {"seconds": budget.seconds, "max_trials": budget.max_trials},
            "seed": SEED,
        },
    )
