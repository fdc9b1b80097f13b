"""Ad click prediction, step 5 (offline evaluation): every model on the held-out test rows, next
to the oracle.

The chapter's offline metric is normalized cross-entropy (NCE: log loss over the entropy of the
background CTR), with log loss, ROC-AUC, PR-AUC and calibration (observed / expected clicks; the
auction prices with these probabilities). On the simulated world the oracle predicts the true
click probabilities: the best any model can do, so each model's *share of the achievable gain*
over the baseline can be stated. Cold-start ads get a slice of their own.

Continual learning is in :mod:`~.evaluation_continual`, the online A/B test in
:mod:`~.evaluation_online`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from mlsd import metrics as mm
from mlsd.report import Blueprint
from mlsd.systems.ad_click.evaluation_published import report_published
from mlsd.systems.ad_click.features_split import TrainingData
from mlsd.systems.ad_click.model import TrainedModels

log = logging.getLogger(__name__)

ORACLE = "oracle"
ORACLE_METRICS = ("logloss", "nce", "roc_auc", "pr_auc", "calibration")
MIN_SLICE_ROWS = 50


def figure(width: float = 6.4, height: float = 4.0) -> Any:
    """A matplotlib ``(figure, axes)`` on the non-interactive backend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(figsize=(width, height))


def predict(model: Any, X: pd.DataFrame) -> np.ndarray:
    """The calibrated click probability of every row."""
    return np.asarray(model.predict_proba(X)[:, 1], dtype=np.float64)


@dataclass(frozen=True)
class OfflineEvaluation:
    """Each model's offline figures on the test rows (and its validation NCE and calibration),
    the oracle's (world runs only), the cold-start slice and the reliability curves."""

    scores: Mapping[str, Mapping[str, Any]]  # model -> metric -> value
    oracle: Mapping[str, float] | None
    slices: Mapping[str, Any] | None
    reliability: Mapping[str, pd.DataFrame]  # model -> mlsd.metrics.reliability_curve
    reliability_max: float  # the diagram's axis limit

    def validation_nce(self, name: str) -> float:
        return float(self.scores[name]["validation_nce"])

    def metrics(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "models": {name: dict(m) for name, m in self.scores.items()},
            "oracle": None if self.oracle is None else dict(self.oracle),
        }
        if self.slices is not None:
            out["slices"] = dict(self.slices)
        return out


def compute_offline(trained: TrainedModels, data: TrainingData) -> OfflineEvaluation:
    """Score every model on the test and validation rows; the oracle where the world knows it."""
    te, va = data.split["test"], data.split["validation"]
    X_te, y_te, X_va, y_va = data.X.iloc[te], data.y[te], data.X.iloc[va], data.y[va]
    preds = {name: predict(m, X_te) for name, m in trained.models.items()}
    oracle: dict[str, float] | None = None
    if data.p_true is not None:  # the world's true click probabilities, aligned with X
        om = mm.classification_metrics(y_te, data.p_true[te])
        oracle = {k: om[k] for k in ORACLE_METRICS}
        oracle["validation_calibration"] = mm.calibration_ratio(y_va, data.p_true[va])

    scores: dict[str, dict[str, Any]] = {}
    for name, model in trained.models.items():
        p_va = predict(model, X_va)
        m: dict[str, Any] = dict(mm.classification_metrics(y_te, preds[name]))
        m["validation_nce"] = mm.normalized_cross_entropy(y_va, p_va)
        m["validation_calibration"] = mm.calibration_ratio(y_va, p_va)
        if hasattr(model, "predict_proba_uncorrected"):
            uncorrected = np.asarray(model.predict_proba_uncorrected(X_te))[:, 1]
            m["calibration_before_correction"] = mm.calibration_ratio(y_te, uncorrected)
        scores[name] = m
    base_ll = scores[trained.baseline]["logloss"]
    for m in scores.values():
        m["share_of_achievable_gain"] = (
            mm.share_of_achievable_gain(base_ll, m["logloss"], oracle["logloss"])
            if oracle
            else None
        )
    pooled = np.concatenate(list(preds.values()))
    return OfflineEvaluation(
        scores=scores,
        oracle=oracle,
        slices=cold_start_slices(X_te, y_te, preds),
        reliability={n: mm.reliability_curve(y_te, p, n_bins=10) for n, p in preds.items()},
        reliability_max=float(max(np.quantile(pooled, 0.999), y_te.mean() * 2)),
    )


def cold_start_slices(
    X_te: pd.DataFrame, y_te: np.ndarray, preds: Mapping[str, np.ndarray]
) -> dict[str, Any] | None:
    """Named slices: cold-start ads (never shown before the impression) and the rest; None when
    the frame has no ad history or a slice is too small."""
    if "d_ad_imps" not in X_te.columns:
        return None
    cold = X_te["d_ad_imps"].to_numpy() <= 0
    if cold.sum() < MIN_SLICE_ROWS or (~cold).sum() < MIN_SLICE_ROWS:
        return None
    models = {
        name: {
            "cold_start_nce": mm.normalized_cross_entropy(y_te[cold], p[cold]),
            "warm_nce": mm.normalized_cross_entropy(y_te[~cold], p[~cold]),
            "cold_start_logloss": mm.log_loss(y_te[cold], p[cold]),
            "warm_logloss": mm.log_loss(y_te[~cold], p[~cold]),
        }
        for name, p in preds.items()
    }
    return {"cold_start_rows": int(cold.sum()), "models": models}


def report_offline(bp: Blueprint, result: OfflineEvaluation) -> None:
    """The blueprint's offline-evaluation section: the metrics table, slices, reliability."""
    oracle = result.oracle
    bp.section("Offline evaluation")
    bp.text(
        "On the held-out test days. NCE is the log loss divided by the entropy of the background "
        "CTR (below 1 = better than always predicting the average). Calibration is observed / "
        "expected clicks (1.0 is perfect). Share of achievable gain = (baseline − model) / "
        "(baseline − oracle) in log loss, where the oracle predicts the world's true "
        "probabilities: the best any model can do."
        if oracle
        else "On the held-out test rows. NCE is the log loss divided by the entropy of the "
        "background CTR. The oracle and the share of achievable gain need the world's true "
        "probabilities, which a data file does not have."
    )
    columns = ("logloss", "nce", "roc_auc", "pr_auc", "calibration", "validation_calibration")
    rows = [
        [
            name,
            *(m[c] for c in columns),
            m.get("calibration_before_correction"),
            m["ece"],
            m["share_of_achievable_gain"],
        ]
        for name, m in result.scores.items()
    ]
    if oracle:
        rows.append([f"**{ORACLE}** (true p)", *(oracle[c] for c in columns), None, None, 1.0])
    bp.table(
        [
            "model",
            "log loss",
            "NCE",
            "ROC-AUC",
            "PR-AUC",
            "calibration",
            "calibration, validation day",
            "calibration before correction",
            "ECE",
            "share of achievable gain",
        ],
        rows,
    )
    if oracle is None:  # a real file: name what the field publishes for this kind of data
        report_published(bp)
    if result.slices is not None:
        cold_rows = result.slices["cold_start_rows"]
        bp.table(
            ["model", "NCE, cold-start ads", "NCE, ads with history", "log loss, with history"],
            [
                [name, s["cold_start_nce"], s["warm_nce"], s["warm_logloss"]]
                for name, s in result.slices["models"].items()
            ],
            caption=f"Cold start: {cold_rows:,} test impressions of ads never shown before them.",
        )
    fig, ax = figure()
    for name, curve in result.reliability.items():
        ax.plot(curve["mean_predicted"], curve["observed_rate"], marker="o", label=name)
    hi = result.reliability_max
    ax.plot([0, hi], [0, hi], "k--", lw=1, label="perfect")
    ax.set(
        xlabel="predicted click probability",
        ylabel="observed click rate",
        title="Reliability (test)",
    )
    ax.legend(fontsize=8)
    bp.figure(fig, "reliability", "Reliability diagram: predicted vs observed click rate.")
