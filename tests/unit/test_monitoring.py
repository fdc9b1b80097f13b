"""Monitoring: PSI/KS drift, the per-day alert table, and the retrain trigger."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mlsd import monitoring as mon
from mlsd import monitoring_signals as signals


def test_psi_is_small_for_the_same_distribution_and_large_for_a_shift() -> None:
    rng = np.random.default_rng(0)
    ref = rng.normal(0, 1, 20_000)
    same = rng.normal(0, 1, 20_000)
    shifted = rng.normal(1, 1, 20_000)
    assert mon.psi(ref, same) < 0.01
    assert mon.psi(ref, shifted) > 0.25
    assert mon.ks_statistic(ref, same) < 0.03
    assert mon.ks_statistic(ref, shifted) > 0.3


def test_psi_hand_computed_on_a_discrete_column() -> None:
    ref = np.array([0] * 50 + [1] * 50)
    cur = np.array([0] * 80 + [1] * 20)
    expected = (0.8 - 0.5) * np.log(0.8 / 0.5) + (0.2 - 0.5) * np.log(0.2 / 0.5)
    assert mon.psi(ref, cur) == pytest.approx(expected)
    assert mon.psi(ref, ref) == pytest.approx(0.0)


def test_psi_sees_new_categories_and_missing_values() -> None:
    ref = np.array([1, 2, 3] * 100, dtype=np.float64)
    assert mon.psi(ref, np.array([1, 2, 3, 7] * 75, dtype=np.float64)) > 0.25
    with_nan = ref.copy()
    with_nan[:150] = np.nan
    assert mon.psi(ref, with_nan) > 0.25


def test_psi_handles_heavy_ties_in_a_continuous_column() -> None:
    rng = np.random.default_rng(5)
    ref = np.where(rng.random(10_000) < 0.7, 0.0, rng.exponential(1.0, 10_000))
    cur = np.where(rng.random(10_000) < 0.7, 0.0, rng.exponential(1.0, 10_000))
    assert mon.psi(ref, cur) < 0.02
    cur_more_zeros = np.where(rng.random(10_000) < 0.95, 0.0, rng.exponential(1.0, 10_000))
    assert mon.psi(ref, cur_more_zeros) > 0.25


def test_psi_rejects_bad_input() -> None:
    with pytest.raises(TypeError, match="numeric"):
        mon.psi(np.array(["a", "b"]), np.array(["a"]))
    with pytest.raises(ValueError, match="non-empty"):
        mon.psi(np.array([]), np.array([1.0]))


def test_feature_drift_table() -> None:
    rng = np.random.default_rng(1)
    ref = pd.DataFrame({"d_a": rng.normal(0, 1, 5_000), "d_b": rng.normal(0, 1, 5_000)})
    cur = pd.DataFrame({"d_a": rng.normal(0, 1, 5_000), "d_b": rng.normal(0.4, 1, 5_000)})
    cur["d_c"] = rng.normal(2, 1, 5_000)
    ref["d_c"] = rng.normal(0, 1, 5_000)
    table = mon.feature_drift(ref, cur, ["d_a", "d_b", "d_c"])
    assert list(table.columns) == ["feature", "psi", "ks", "status"]
    status = dict(zip(table["feature"], table["status"], strict=True))
    assert status == {"d_a": "ok", "d_b": "warn", "d_c": "alert"}
    with pytest.raises(KeyError, match="current frame has no column 'd_x'"):
        mon.feature_drift(ref.assign(d_x=1.0), cur, ["d_x"])


def test_daily_row_and_alerts_and_retrain() -> None:
    rng = np.random.default_rng(2)
    ref = pd.DataFrame({"d_a": rng.normal(0, 1, 4_000)})
    ref_p = rng.uniform(0.05, 0.3, 4_000)
    rows = []
    for day, (shift, miscal) in enumerate([(0.0, 1.0), (0.0, 1.0), (1.5, 1.6)]):
        cur = pd.DataFrame({"d_a": rng.normal(shift, 1, 4_000)})
        p = rng.uniform(0.05, 0.3, 4_000)
        y = (rng.random(4_000) < np.clip(p * miscal, 0, 1)).astype(np.int64)
        rows.append(mon.daily_monitoring_row(day, ref, cur, ["d_a"], reference_p=ref_p, p=p, y=y))
    daily = pd.DataFrame(rows)
    assert {"day", "psi_d_a", "prediction_psi", "calibration", "nce"} <= set(daily.columns)
    alerts = mon.drift_alerts(daily)
    kinds = {a.kind for a in alerts}
    assert all(a.day == 2 for a in alerts)
    assert {"feature_drift", "calibration_drift"} <= kinds
    assert "prediction_drift" not in kinds
    retrain, reason = mon.retrain_trigger(alerts)
    assert retrain and "calibration_drift" in reason
    assert mon.retrain_trigger(mon.drift_alerts(daily.iloc[:2])) == (False, "no retrain: no alerts")


def test_drift_alerts_rules_on_a_hand_made_table() -> None:
    daily = pd.DataFrame(
        {
            "day": [0, 1, 2, 3],
            "psi_x": [0.01, 0.30, 0.02, 0.40],
            "prediction_psi": [0.0, 0.0, 0.3, 0.0],
            "calibration": [1.0, 1.05, 0.85, 1.0],
            "nce": [0.80, 0.82, 0.85, 0.80],
        }
    )
    alerts = mon.drift_alerts(daily, mon.DriftThresholds())
    got = sorted((a.day, a.kind) for a in alerts)
    assert got == [
        (1, "feature_drift"),
        (2, "calibration_drift"),
        (2, "metric_decay"),  # 0.85 > 0.80 * 1.05
        (2, "prediction_drift"),
        (3, "feature_drift"),
    ]
    decay = next(a for a in alerts if a.kind == "metric_decay")
    assert decay.threshold == pytest.approx(0.84)
    assert decay.to_dict()["subject"] == "nce"


def test_retrain_trigger_on_feature_drift_needs_persistence() -> None:
    one = [mon.Alert(3, "feature_drift", "x", 0.3, 0.25, "m")]
    two = [*one, mon.Alert(4, "feature_drift", "x", 0.3, 0.25, "m")]
    assert mon.retrain_trigger(one)[0] is False
    retrain, reason = mon.retrain_trigger(two)
    assert retrain and "from day 3" in reason
    assert mon.retrain_trigger(one, min_feature_drift_days=1)[0] is True


def test_feature_drift_accepts_nullable_ints_and_rejects_text() -> None:
    ref = pd.DataFrame({"c_x": pd.array([1, 2, None, 2] * 50, dtype="Int64"), "s": ["a"] * 200})
    cur = pd.DataFrame({"c_x": pd.array([1, 2, 2, 2] * 50, dtype="Int64"), "s": ["b"] * 200})
    table = mon.feature_drift(ref, cur, ["c_x"])
    assert table["psi"].iloc[0] > 0.25  # the missing values disappeared
    with pytest.raises(TypeError, match="reference column 's' is not numeric"):
        mon.feature_drift(ref, cur, ["s"])


def test_embedding_drift_sees_a_moved_cloud_and_not_a_resample() -> None:
    gen = np.random.default_rng(0)
    scale, centre = np.linspace(3.0, 0.5, 8), np.full(8, 2.0)

    def cloud() -> np.ndarray:
        return centre + scale * gen.normal(size=(2000, 8))

    ref = cloud()
    same = signals.embedding_drift(ref, cloud())
    moved = signals.embedding_drift(ref, cloud() + 3.0 * np.eye(8)[0])  # one std along axis 0
    assert same["psi"] < 0.05 and moved["psi"] > 0.25
    assert same["centroid_shift"] < 0.01 < moved["centroid_shift"]
    assert abs(same["mean_norm_ratio"] - 1) < 0.05
    with pytest.raises(ValueError, match="one width"):
        signals.embedding_drift(ref, ref[:, :4])


def test_metric_decay_alerts_need_a_drop_beyond_noise() -> None:
    daily = pd.DataFrame({"day": [1, 2, 3], "q": [0.50, 0.44, 0.40], "se": [0.01, 0.01, 0.05]})
    alerts = signals.metric_decay_alerts(daily, "q", 0.5, 0.1, se_column="se")
    assert [a.day for a in alerts] == [2]  # day 3 drops more, but within two standard errors
    assert alerts[0].kind == "metric_decay" and alerts[0].threshold == pytest.approx(0.45)
    assert len(signals.metric_decay_alerts(daily, "q", 0.5, 0.1)) == 2
    with pytest.raises(KeyError):
        signals.metric_decay_alerts(daily, "nope", 0.5)


def test_psi_noise_floor_is_what_noise_alone_stays_under() -> None:
    g = np.random.default_rng(3)
    for n, m in ((120, 100), (1000, 800)):
        noise = [mon.psi(g.normal(size=n), g.normal(size=m)) for _ in range(400)]
        floor = mon.psi_noise_floor(n, m)
        assert 0.97 <= np.mean(np.asarray(noise) < floor) <= 1.0  # q = 0.99, approximately
    assert mon.psi_noise_floor(100, 100) > 0.25 > mon.psi_noise_floor(5000, 5000)


def test_small_days_alert_on_drift_not_on_noise() -> None:
    g = np.random.default_rng(4)
    ref = pd.DataFrame({"d_a": g.normal(size=100)})
    rows = []
    for day in range(1, 21):  # twenty days of the same distribution, then a real shift
        cur = pd.DataFrame({"d_a": g.normal(size=80)})
        rows.append(mon.daily_monitoring_row(day, ref, cur, ["d_a"]))
    rows.append(
        mon.daily_monitoring_row(21, ref, pd.DataFrame({"d_a": g.normal(1.5, 1, 80)}), ["d_a"])
    )
    daily = pd.DataFrame(rows)
    plain = [a for a in mon.drift_alerts(daily.drop(columns=["noise_floor_psi"])) if a.day <= 20]
    alerts = mon.drift_alerts(daily)
    assert plain  # the 0.25 rule of thumb alone fires on noise at these sizes
    assert [a.day for a in alerts] == [21]
