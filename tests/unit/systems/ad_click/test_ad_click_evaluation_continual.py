"""Continual learning: a model trained once against one retrained daily, on the next day."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from mlsd.systems.ad_click.evaluation_continual import SERIES, compute_continual


def test_daily_updates_are_scored_on_every_day_after_training(tiny_run: Any) -> None:
    data = tiny_run.data
    result = compute_continual(data, seed=0)
    first = int(data.days[data.split["validation"][0]])
    assert result.first_eval_day == first == result.window_days
    assert list(result.days) == list(range(first, int(data.days.max()) + 1))
    for k in SERIES:
        assert len(result.nce[k]) == len(result.days)
    # the first evaluated day has no newer data: both models are the same
    assert result.nce["trained_once"][0] == result.nce["updated_daily"][0]
    assert all(o < s for o, s in zip(result.nce["oracle"], result.nce["trained_once"], strict=True))
    m = result.metrics()["continual_learning"]
    assert m["day"] == list(result.days) and m["window_days"] == first
    gain = np.mean(np.array(m["trained_once"]) - np.array(m["updated_daily"]))
    assert m["mean_nce_gain"] == pytest.approx(gain)
    assert compute_continual(data, seed=0).nce == result.nce  # seeded


def test_continual_learning_needs_days(tiny_run: Any) -> None:
    from dataclasses import replace

    with pytest.raises(ValueError, match="days"):
        compute_continual(replace(tiny_run.data, days=None), seed=0)
