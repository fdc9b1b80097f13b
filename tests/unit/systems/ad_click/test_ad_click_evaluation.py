"""Offline evaluation: every model on the test days next to the oracle, in one metrics layout."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from mlsd import metrics as mm
from mlsd.models import ConstantRate
from mlsd.systems.ad_click.evaluation import (
    ORACLE_METRICS,
    OfflineEvaluation,
    cold_start_slices,
    compute_offline,
)


def test_every_model_is_scored_on_the_test_days(tiny_run: Any, offline: OfflineEvaluation) -> None:
    data = tiny_run.data
    te, va = data.split["test"], data.split["validation"]
    assert set(offline.scores) == set(tiny_run.trained.models)
    for name, model in tiny_run.trained.models.items():
        p = model.predict_proba(data.X.iloc[te])[:, 1]
        m = offline.scores[name]
        assert m["logloss"] == pytest.approx(mm.log_loss(data.y[te], p))
        assert m["nce"] == pytest.approx(mm.normalized_cross_entropy(data.y[te], p))
        p_va = model.predict_proba(data.X.iloc[va])[:, 1]
        assert offline.validation_nce(name) == pytest.approx(
            mm.normalized_cross_entropy(data.y[va], p_va)
        )
        assert ("calibration_before_correction" in m) == (name != "historical_ctr")
    assert offline.scores["historical_ctr"]["share_of_achievable_gain"] == 0.0


def test_the_oracle_is_the_worlds_true_probability(
    tiny_run: Any, offline: OfflineEvaluation
) -> None:
    data = tiny_run.data
    te = data.split["test"]
    assert offline.oracle is not None and set(offline.oracle) >= set(ORACLE_METRICS)
    assert offline.oracle["logloss"] == pytest.approx(mm.log_loss(data.y[te], data.p_true[te]))
    for m in offline.scores.values():  # no model beats the truth by more than noise
        assert m["logloss"] > offline.oracle["logloss"] - 0.002


def test_metrics_follow_the_one_layout(offline: OfflineEvaluation) -> None:
    m = offline.metrics()
    assert set(m) == {"models", "oracle"} | ({"slices"} if offline.slices else set())
    assert m["models"]["lightgbm"]["roc_auc"] == offline.scores["lightgbm"]["roc_auc"]
    assert m["oracle"] == offline.oracle
    assert set(offline.reliability) == set(offline.scores)


def test_a_file_run_has_no_oracle() -> None:
    from mlsd.systems.ad_click.features_split import TrainingData
    from mlsd.systems.ad_click.model import TrainedModels

    r = np.random.default_rng(0)
    X = pd.DataFrame({"d_x": r.normal(size=600), "c_ad_id": r.integers(0, 30, 600)})
    y = (r.random(600) < 0.3).astype(np.int64)
    split = {
        "train": np.arange(400),
        "validation": np.arange(400, 500),
        "test": np.arange(500, 600),
    }
    data = TrainingData(X, y, split, "random", 0.0, 400)
    models = {"historical_ctr": ConstantRate().fit(X.iloc[:400], y[:400])}
    trained = TrainedModels(models, {"historical_ctr": {}})
    result = compute_offline(trained, data)
    assert result.oracle is None and result.metrics()["oracle"] is None
    assert result.scores["historical_ctr"]["share_of_achievable_gain"] is None
    assert result.slices is None and "slices" not in result.metrics()


def test_slices_need_enough_rows_on_both_sides() -> None:
    y = np.zeros(100, dtype=np.int64)
    y[::10] = 1
    preds = {"m": np.full(100, 0.1)}
    few_cold = pd.DataFrame({"d_ad_imps": np.r_[np.zeros(10), np.ones(90)]})
    assert cold_start_slices(few_cold, y, preds) is None
    assert cold_start_slices(pd.DataFrame({"d_x": np.zeros(100)}), y, preds) is None
    half = pd.DataFrame({"d_ad_imps": np.r_[np.zeros(50), np.ones(50)]})
    assert cold_start_slices(half, y, preds) == {
        "cold_start_rows": 50,
        "models": {
            "m": {
                "cold_start_nce": mm.normalized_cross_entropy(y[:50], preds["m"][:50]),
                "warm_nce": mm.normalized_cross_entropy(y[50:], preds["m"][50:]),
                "cold_start_logloss": mm.log_loss(y[:50], preds["m"][:50]),
                "warm_logloss": mm.log_loss(y[50:], preds["m"][50:]),
            }
        },
    }
