"""Step 7 of the book, monitoring: is the served model still the model we evaluated?

The book names the failure to watch for: the data distribution shifts (new users, new items,
seasonality), predictions drift, calibration breaks, and the online metric decays until the model
is retrained. This module measures that, generically, for any system:

* :func:`psi` and :func:`ks_statistic`: distribution shift of one column;
* :func:`feature_drift`: a table of both for many columns, with ok / warn / alert status;
* :func:`daily_monitoring_row`: one day's numbers (feature PSI, prediction PSI, calibration,
  NCE) for a per-day table; :func:`drift_alerts` turns such a table into :class:`Alert` s;
* :mod:`mlsd.monitoring_signals`: the signals beyond one column's shift (embedding drift,
  quality decay against the world, counts of rare events);
* :func:`retrain_trigger`: whether the alerts call for retraining, and why.

The per-day table has a ``day`` column and any of: ``psi_<feature>`` (feature drift),
``prediction_psi``, ``calibration`` (observed / expected positives), ``nce``.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd
from pandas.api.types import is_bool_dtype, is_numeric_dtype
from scipy import stats

from mlsd.metrics import calibration_ratio, normalized_cross_entropy

log = logging.getLogger(__name__)

AlertKind = Literal["feature_drift", "prediction_drift", "calibration_drift", "metric_decay"]


@dataclass(frozen=True)
class DriftThresholds:
    """When a number becomes an alert.

    PSI < 0.1 is stable, 0.1-0.25 a moderate shift (warn), > 0.25 a major shift (alert): the
    credit-risk rule of thumb. ``calibration_tolerance`` is the allowed ``|observed/expected - 1|``.
    ``nce_increase`` is the allowed *relative* rise of NCE over the baseline (0.05 = 5 %).
    """

    psi_warn: float = 0.1
    psi_alert: float = 0.25
    calibration_tolerance: float = 0.10
    nce_increase: float = 0.05

    def status(self, psi_value: float) -> str:
        if psi_value >= self.psi_alert:
            return "alert"
        if psi_value >= self.psi_warn:
            return "warn"
        return "ok"


@dataclass(frozen=True)
class Alert:
    """One threshold crossing on one day."""

    day: int
    kind: AlertKind
    subject: str
    value: float
    threshold: float
    message: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# --------------------------------------------------------------------------------------------
# distribution shift of one column
# --------------------------------------------------------------------------------------------


def _as_float(values: Any, name: str) -> np.ndarray:
    arr = np.asarray(values)
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"{name} must be numeric, got dtype {arr.dtype}")
    return arr.astype(np.float64).ravel()


def _proportions(
    reference: np.ndarray, current: np.ndarray, n_bins: int
) -> tuple[np.ndarray, np.ndarray]:
    """Bin both samples on the reference's bins; the last bin holds missing values (NaN)."""
    ref_ok, cur_ok = reference[~np.isnan(reference)], current[~np.isnan(current)]
    uniq = np.unique(ref_ok)
    if uniq.size <= n_bins:
        # discrete column: one bin per reference value, one more for values it never had
        ref_idx = np.searchsorted(uniq, ref_ok)
        cur_idx = np.full(cur_ok.size, uniq.size, dtype=np.int64)
        if uniq.size:
            pos = np.minimum(np.searchsorted(uniq, cur_ok), uniq.size - 1)
            known = uniq[pos] == cur_ok
            cur_idx[known] = pos[known]
        n_slots = uniq.size + 1
    else:
        edges = np.unique(np.quantile(ref_ok, np.linspace(0.0, 1.0, n_bins + 1)))
        inner = edges[1:-1]  # bins (-inf, e1), [e1, e2), ..., [e_last, inf)
        ref_idx = np.searchsorted(inner, ref_ok, side="right")
        cur_idx = np.searchsorted(inner, cur_ok, side="right")
        n_slots = inner.size + 1
    ref_counts = np.bincount(ref_idx, minlength=n_slots).astype(np.float64)
    cur_counts = np.bincount(cur_idx, minlength=n_slots).astype(np.float64)
    ref_counts = np.append(ref_counts, reference.size - ref_ok.size)
    cur_counts = np.append(cur_counts, current.size - cur_ok.size)
    return ref_counts / reference.size, cur_counts / current.size


def psi(reference: Any, current: Any, n_bins: int = 10, eps: float = 1e-4) -> float:
    """Population stability index of ``current`` against ``reference``.

    ``sum((c - r) * ln(c / r))`` over bins cut at the reference's quantiles (deduplicated, so a
    column with heavy ties gets fewer bins). A column with at most ``n_bins`` distinct values is
    treated as discrete: one bin per value plus one for values the reference never had. Missing
    values (NaN) form their own bin, so a rise in missing rate shows as drift. Empty bins are
    floored at ``eps`` so the log stays finite.
    """
    if n_bins < 2:
        raise ValueError(f"n_bins must be >= 2, got {n_bins}")
    ref = _as_float(reference, "reference")
    cur = _as_float(current, "current")
    if ref.size == 0 or cur.size == 0:
        raise ValueError(f"psi needs non-empty samples, got {ref.size} and {cur.size} values")
    r, c = _proportions(ref, cur, n_bins)
    r, c = np.maximum(r, eps), np.maximum(c, eps)
    return float(np.sum((c - r) * np.log(c / r)))


def ks_statistic(reference: Any, current: Any) -> float:
    """Two-sample Kolmogorov-Smirnov statistic (max CDF gap) over the non-missing values."""
    ref = _as_float(reference, "reference")
    cur = _as_float(current, "current")
    ref, cur = ref[~np.isnan(ref)], cur[~np.isnan(cur)]
    if ref.size == 0 or cur.size == 0:
        return math.nan
    return float(stats.ks_2samp(ref, cur).statistic)


def psi_noise_floor(n_reference: int, n_current: int, n_bins: int = 10, q: float = 0.99) -> float:
    """The PSI that sampling noise alone stays under with probability ``q`` when both samples
    come from one distribution: to first order ``PSI ≈ Σ (c − r)² / r``, which is
    ``(1/n + 1/m) χ²(bins − 1)`` for samples of ``n`` and ``m`` rows. With a hundred rows a day
    and ten bins that is about 0.4, above the 0.25 rule of thumb: small days need it, large ones
    (thousands of rows) leave the rule of thumb in charge. An approximation that holds while
    every bin has some ten rows on each side; smaller samples are noisier still."""
    if n_reference < 1 or n_current < 1:
        return math.inf
    return float(stats.chi2.ppf(q, max(1, n_bins - 1)) * (1.0 / n_reference + 1.0 / n_current))


def feature_drift(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    columns: Sequence[str],
    thresholds: DriftThresholds | None = None,
    n_bins: int = 10,
) -> pd.DataFrame:
    """PSI and KS per column: ``feature, psi, ks, status`` (status from PSI: ok / warn / alert)."""
    th = thresholds or DriftThresholds()
    for frame_name, frame in (("reference", reference), ("current", current)):
        missing = [c for c in columns if c not in frame.columns]
        if missing:
            raise KeyError(f"{frame_name} frame has no column {missing[0]!r}")
    rows = []
    for col in columns:
        arrays = []
        for frame_name, frame in (("reference", reference), ("current", current)):
            series = frame[col]
            if not (is_numeric_dtype(series) or is_bool_dtype(series)):
                raise TypeError(f"{frame_name} column {col!r} is not numeric ({series.dtype})")
            arrays.append(series.to_numpy(dtype=np.float64, na_value=np.nan))
        value = psi(arrays[0], arrays[1], n_bins)
        ks = ks_statistic(arrays[0], arrays[1])
        rows.append((col, value, ks, th.status(value)))
    return pd.DataFrame(rows, columns=["feature", "psi", "ks", "status"])


# --------------------------------------------------------------------------------------------
# per-day table and alerts
# --------------------------------------------------------------------------------------------


def daily_monitoring_row(
    day: int,
    reference: pd.DataFrame,
    current: pd.DataFrame,
    columns: Sequence[str],
    *,
    reference_p: np.ndarray | None = None,
    p: np.ndarray | None = None,
    y: np.ndarray | None = None,
    n_bins: int = 10,
) -> dict[str, float]:
    """One row of the per-day table: ``day``, ``psi_<col>`` for each column, and when given
    ``prediction_psi`` (needs ``reference_p`` and ``p``), ``calibration`` and ``nce`` (need
    ``y`` and ``p``; labels arrive late in production, so they are optional). The row also
    holds ``noise_floor_psi`` / ``noise_floor_prediction_psi``: :func:`psi_noise_floor` at the
    day's sample sizes, which :func:`drift_alerts` uses as a floor under the PSI threshold.
    """
    row: dict[str, float] = {"day": float(day)}
    drift = feature_drift(reference, current, columns, n_bins=n_bins)
    for feature, value in zip(drift["feature"], drift["psi"], strict=True):
        row[f"psi_{feature}"] = float(value)
    row["noise_floor_psi"] = psi_noise_floor(len(reference), len(current), n_bins)
    if p is not None and reference_p is not None:
        row["prediction_psi"] = psi(reference_p, p, n_bins)
        row["noise_floor_prediction_psi"] = psi_noise_floor(len(reference_p), len(p), n_bins)
    if p is not None and y is not None:
        row["calibration"] = calibration_ratio(y, p)
        row["nce"] = normalized_cross_entropy(y, p)
    return row


def drift_alerts(
    daily: pd.DataFrame,
    thresholds: DriftThresholds | None = None,
    baseline_nce: float | None = None,
) -> list[Alert]:
    """Alerts from a per-day table (see the module docstring for its columns).

    * ``psi_<feature>`` >= ``psi_alert``: ``feature_drift``;
    * ``prediction_psi`` >= ``psi_alert``: ``prediction_drift``;
    * where the row has ``noise_floor_psi`` / ``noise_floor_prediction_psi`` (the PSI that
      sampling noise alone reaches at the day's sample sizes), the threshold is the larger of
      the two, so a small day's noise is not reported as drift;
    * ``|calibration - 1|`` > ``calibration_tolerance``: ``calibration_drift``;
    * ``nce`` > ``baseline_nce * (1 + nce_increase)``: ``metric_decay``; ``baseline_nce``
      defaults to the first day's NCE (the day the model was evaluated and shipped).
    """
    th = thresholds or DriftThresholds()
    if "day" not in daily.columns:
        raise KeyError("per-day monitoring table has no 'day' column")
    table = daily.sort_values("day", kind="stable")
    if baseline_nce is None and "nce" in table.columns and table["nce"].notna().any():
        baseline_nce = float(table["nce"].dropna().iloc[0])
    feature_cols = [c for c in table.columns if c.startswith("psi_")]
    alerts: list[Alert] = []
    for rec in table.to_dict("records"):
        day = int(rec["day"])
        limit = _psi_limit(th.psi_alert, rec.get("noise_floor_psi"))
        for col in feature_cols:
            value = float(rec[col])
            if value >= limit:
                name = col.removeprefix("psi_")
                msg = f"day {day}: PSI of {name} is {value:.3f} >= {limit:.3g}"
                alerts.append(Alert(day, "feature_drift", name, value, limit, msg))
        value = float(rec.get("prediction_psi", math.nan))
        limit = _psi_limit(th.psi_alert, rec.get("noise_floor_prediction_psi"))
        if value >= limit:
            msg = f"day {day}: PSI of the predictions is {value:.3f} >= {limit:.3g}"
            alerts.append(Alert(day, "prediction_drift", "prediction", value, limit, msg))
        value = float(rec.get("calibration", math.nan))
        if abs(value - 1.0) > th.calibration_tolerance:
            msg = (
                f"day {day}: observed/expected positives is {value:.3f}, outside "
                f"1 ± {th.calibration_tolerance}"
            )
            alerts.append(
                Alert(day, "calibration_drift", "calibration", value, th.calibration_tolerance, msg)
            )
        value = float(rec.get("nce", math.nan))
        if baseline_nce is not None and value > baseline_nce * (1 + th.nce_increase):
            limit = baseline_nce * (1 + th.nce_increase)
            msg = (
                f"day {day}: NCE {value:.4f} is above {limit:.4f} "
                f"(baseline {baseline_nce:.4f} + {th.nce_increase:.0%})"
            )
            alerts.append(Alert(day, "metric_decay", "nce", value, limit, msg))
    for alert in alerts:
        log.debug("monitoring alert: %s", alert.message)
    return alerts


def _psi_limit(psi_alert: float, floor: Any) -> float:
    """The PSI alert threshold, raised to the day's noise floor when the row has one."""
    if floor is None or not math.isfinite(float(floor)):
        return psi_alert
    return max(psi_alert, float(floor))


def retrain_trigger(alerts: Sequence[Alert], min_feature_drift_days: int = 2) -> tuple[bool, str]:
    """Should the model be retrained? ``(decision, reason)``.

    Metric decay, calibration drift or prediction drift retrain at once: they hurt the product
    now. Feature drift alone retrains only when it persists on ``min_feature_drift_days``
    distinct days, because a shifted input need not hurt the model (and one-day spikes are
    often logging incidents, better fixed than learned).
    """
    urgent = [a for a in alerts if a.kind != "feature_drift"]
    if urgent:
        first = min(urgent, key=lambda a: a.day)
        kinds = sorted({a.kind for a in urgent})
        return True, (
            f"retrain: {len(urgent)} alert(s) of kind {', '.join(kinds)} from day {first.day} "
            f"({first.message})"
        )
    drift_days = sorted({a.day for a in alerts if a.kind == "feature_drift"})
    if len(drift_days) >= min_feature_drift_days:
        features = sorted({a.subject for a in alerts if a.kind == "feature_drift"})
        return True, (
            f"retrain: feature drift on {len(drift_days)} days (from day {drift_days[0]}) "
            f"in {', '.join(features)}"
        )
    if drift_days:
        return False, (
            f"no retrain: feature drift on {len(drift_days)} day(s) only, "
            f"below {min_feature_drift_days}; model metrics hold"
        )
    return False, "no retrain: no alerts"
