"""Step 7 of the book, monitoring: the signals beyond one column's distribution shift.

* :func:`embedding_drift`: PSI of embeddings on the reference's principal axes and the shift of
  their mean direction;
* :func:`metric_decay_alerts`: a quality metric's drop below its baseline (beyond noise) as
  alerts;
* :func:`count_alerts`: a daily count of rare events above the Poisson control limit of
  reference days.

Their alerts are :class:`mlsd.monitoring.Alert` s, so :func:`mlsd.monitoring.retrain_trigger`
reads them with the rest.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import stats

from mlsd.monitoring import Alert, psi


def embedding_drift(
    reference: np.ndarray, current: np.ndarray, n_axes: int = 4, n_bins: int = 10
) -> dict[str, float]:
    """Drift of a cloud of embeddings (rows) against a reference cloud.

    * ``psi``: the largest PSI of the projections on the reference's ``n_axes`` principal axes
      (the directions the reference varies along; a shift along any of them shows);
    * ``mean_shift``: how far the mean embedding moved, in units of the reference's spread
      (``|mean_cur - mean_ref| / sqrt(total variance of ref)``; a resample gives about
      ``sqrt(1/n_ref + 1/n_cur)``);
    * ``centroid_shift``: ``1 - cos`` of the two mean embeddings (meaningful when the embeddings
      are not centred, e.g. unit rows of one cone; 0: same direction on average);
    * ``mean_norm_ratio``: mean row norm of ``current`` over the reference's (1 for unit rows).
    """
    ref = np.asarray(reference, dtype=np.float64)
    cur = np.asarray(current, dtype=np.float64)
    if ref.ndim != 2 or cur.ndim != 2 or ref.shape[1] != cur.shape[1]:
        raise ValueError(f"embeddings must be 2-d of one width, got {ref.shape} and {cur.shape}")
    if len(ref) < 2 or len(cur) == 0:
        raise ValueError("embedding_drift needs >= 2 reference rows and >= 1 current row")
    mean = ref.mean(axis=0)
    centred = ref - mean
    _, vecs = np.linalg.eigh(centred.T @ centred)  # ascending: the last are the principal axes
    axes = vecs[:, ::-1][:, : max(1, min(n_axes, vecs.shape[1]))].T
    value = max(psi(ref @ a, cur @ a, n_bins) for a in axes)
    cur_mean = cur.mean(axis=0)
    spread = math.sqrt(float((centred**2).sum(axis=1).mean()))
    moved = float(np.linalg.norm(cur_mean - mean)) / spread if spread > 0 else math.nan
    denom = float(np.linalg.norm(mean) * np.linalg.norm(cur_mean))
    shift = 1.0 - float(mean @ cur_mean) / denom if denom > 0 else math.nan
    ref_norm = float(np.linalg.norm(ref, axis=1).mean())
    ratio = float(np.linalg.norm(cur, axis=1).mean()) / ref_norm if ref_norm > 0 else math.nan
    return {
        "psi": float(value),
        "mean_shift": moved,
        "centroid_shift": shift,
        "mean_norm_ratio": ratio,
    }


def metric_decay_alerts(
    daily: pd.DataFrame,
    column: str,
    baseline: float,
    max_drop: float = 0.10,
    *,
    se_column: str | None = None,
    baseline_se: float = 0.0,
    z: float = 2.0,
) -> list[Alert]:
    """``metric_decay`` alerts for a higher-is-better quality column of a per-day table.

    A day alerts when its value is more than ``max_drop`` (relative) below ``baseline`` and,
    when ``se_column`` gives each day's standard error (and ``baseline_se`` the baseline's),
    the drop is also more than ``z`` standard errors of the difference (so sampling noise on a
    small day does not retrain).
    """
    if column not in daily.columns:
        raise KeyError(f"per-day monitoring table has no {column!r} column")
    limit = baseline * (1.0 - max_drop)
    alerts: list[Alert] = []
    for rec in daily.sort_values("day", kind="stable").to_dict("records"):
        value = float(rec[column])
        day_se = float(rec[se_column]) if se_column is not None else 0.0
        se = math.hypot(day_se, baseline_se)
        if value < limit and baseline - value > z * se:
            day = int(rec["day"])
            msg = (
                f"day {day}: {column} {value:.4f} is below {limit:.4f} "
                f"(baseline {baseline:.4f} - {max_drop:.0%})"
            )
            alerts.append(Alert(day, "metric_decay", column, value, limit, msg))
    return alerts


def count_alerts(
    daily: pd.DataFrame,
    column: str,
    exposure_column: str,
    reference_count: float,
    reference_exposure: float,
    alpha: float = 1e-3,
) -> list[Alert]:
    """``feature_drift`` alerts for a count of rare events per day (posts with an unseen word,
    say), its threshold from the noise of reference days (a c-chart with the exact Poisson
    tail): a day alerts when its count ``k`` has ``P(X >= k) < alpha`` for ``X`` Poisson with the
    reference rate (``reference_count / reference_exposure``) times the day's exposure."""
    for col in (column, exposure_column):
        if col not in daily.columns:
            raise KeyError(f"per-day monitoring table has no {col!r} column")
    if reference_exposure <= 0:
        raise ValueError("reference_exposure must be > 0")
    rate = max(reference_count, 0.5) / reference_exposure  # no events yet: half of one
    alerts: list[Alert] = []
    for rec in daily.sort_values("day", kind="stable").to_dict("records"):
        mu = rate * float(rec[exposure_column])
        limit = float(stats.poisson.isf(alpha, mu)) + 1.0  # the smallest k with P(X >= k) < alpha
        value = float(rec[column])
        if value >= limit:
            day = int(rec["day"])
            msg = (
                f"day {day}: {column} {value:.0f} >= {limit:.0f} (expected {mu:.1f} at the "
                f"reference rate; P < {alpha:g})"
            )
            alerts.append(Alert(day, "feature_drift", column, value, limit, msg))
    return alerts
