"""Monitoring: drift of each day after training against the last training day, alerts, retrain."""

from __future__ import annotations

from typing import Any

import pandas as pd

from mlsd.systems.ad_click.monitoring import compute_monitoring, monitored_columns


def test_monitored_columns_skip_growing_counts_and_ages() -> None:
    X = pd.DataFrame(
        columns=["d_user_ctr", "d_user_imps", "d_uad_clicks", "d_ad_age_days", "d_bid", "c_ad_id"]
    )
    assert monitored_columns(X) == ["d_user_ctr", "d_bid"]


def test_each_day_after_training_is_a_window(tiny_run: Any, offline: Any) -> None:
    data = tiny_run.data
    model = tiny_run.trained.models["lightgbm"]
    result = compute_monitoring(data, model, offline.validation_nce("lightgbm"), seed=0)
    after = sorted(set(data.days[data.split["validation"]]) | set(data.days[data.split["test"]]))
    assert [w["window"] for w in result.windows] == [f"day {d}" for d in after]
    for w in result.windows:
        assert w["max_feature"] in w["features"]
        assert w["max_feature_psi"] == max(w["features"].values())
        assert set(w["features"]) == set(result.columns)
    train_days = data.days[data.split["train"]]
    assert result.reference_rows == int((train_days == train_days.max()).sum())
    assert not result.retrain or result.alerts  # a retrain needs a reason
    m = result.metrics()["monitoring"]
    assert m["windows"] == [dict(w) for w in result.windows]
    assert m["alerts"] == [a.to_dict() for a in result.alerts]
    assert m["retrain"] == result.retrain and m["retrain_reason"] == result.retrain_reason
    again = compute_monitoring(data, model, offline.validation_nce("lightgbm"), seed=0)
    assert again.metrics() == result.metrics()
