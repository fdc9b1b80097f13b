"""Monitoring per head: rates, calibration, prediction drift; alerts and the trigger."""

from __future__ import annotations

import numpy as np
import pandas as pd

from mlsd.models import LightGBMClick
from mlsd.systems.news_feed.monitoring import MONITORED, compute_monitoring


def test_a_shifted_feature_and_a_miscalibrated_day_raise_alerts() -> None:
    r = np.random.default_rng(0)
    n = 3000
    day = np.repeat(np.arange(3), n // 3)
    X = pd.DataFrame({c: r.normal(size=n) for c in MONITORED})
    X.loc[day == 2, "d_user_ctr"] += 3.0  # a drifted feature on day 2
    y = (r.random(n) < 1 / (1 + np.exp(-X["d_post_age_h"].to_numpy()))).astype(np.int64)
    Y = np.column_stack([y] * 6 + [np.ones(n)])
    Y[day == 2, 0] = 1  # day 2: everyone clicks, far above the predictions
    model = LightGBMClick(n_estimators=20, num_threads=1).fit(X[day == 0], y[day == 0])
    result = compute_monitoring(X, Y, day, model, (0, 1))
    assert result.heads == ("any_engagement",)
    assert list(result.daily["day"]) == [1.0, 2.0]
    kinds = {(a.kind, a.day) for a in result.alerts}
    assert ("feature_drift", 2) in kinds and ("calibration_drift", 2) in kinds
    assert result.retrain
