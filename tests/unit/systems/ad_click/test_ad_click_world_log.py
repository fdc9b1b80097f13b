"""The data step on the world: the log written to Parquet and summarised one day at a time."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mlsd.data import read_parquet
from mlsd.systems.ad_click.world_log import LOG_FILE, LogSummary


def test_the_log_is_written_and_summarised_day_by_day(tiny_run: Any, data_dir: Path) -> None:
    result, world = tiny_run.world_log, tiny_run.world
    assert sorted(p.name for p in data_dir.iterdir()) == sorted(
        [LOG_FILE, "users.parquet", "ads.parquet"]
    )
    log = read_parquet(result.log_path)
    expected = pd.concat(list(world.iter_log()), ignore_index=True)
    pd.testing.assert_frame_equal(log, expected, check_dtype=False)
    assert result.rows == len(log)
    assert result.positive_rate == float(log["click"].mean())
    assert result.rows_per_day == log.groupby("day").size().to_dict()
    first_seen = log.groupby("ad_id")["day"].min().value_counts().to_dict()
    for row in result.days:
        day = log[log["day"] == row["day"]]
        assert row["impressions"] == len(day)
        assert row["ctr"] == float(day["click"].mean())
        assert row["users"] == day["user_id"].nunique()
        assert row["first_seen"] == first_seen.get(row["day"], 0)
    by_pos = log.groupby("position")["click"].agg(["size", "mean"])
    assert [(p, n) for p, n, _ in result.by_position] == list(by_pos["size"].items())
    np.testing.assert_allclose([c for _, _, c in result.by_position], by_pos["mean"])
    data = result.metrics()["data"]
    assert data["source"] == "world" and data["rows"] == len(log)
    assert data["days"] == world.n_days and data["users"] == len(world.users)


def test_a_summary_of_chunks_equals_a_summary_of_the_whole(tiny_run: Any) -> None:
    chunks = list(tiny_run.world.iter_log())
    whole, parts = LogSummary(), LogSummary()
    whole.add(pd.concat(chunks, ignore_index=True))
    for chunk in chunks:
        parts.add(chunk)
    assert whole.days == parts.days and whole.by_position() == parts.by_position()
    assert whole.rows == parts.rows and whole.positive_rate == parts.positive_rate
    assert np.isnan(LogSummary().positive_rate)
