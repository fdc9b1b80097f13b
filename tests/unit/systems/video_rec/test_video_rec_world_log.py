"""The data step on the tiny world: the log's figures, progress per day, Parquet artifacts."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from mlsd.report import Blueprint
from mlsd.systems.video_rec.world_log import compute_data, report_data, write_data
from mlsd.world import Scale


def test_data_step_summarises_and_writes_the_log(tmp_path: Path) -> None:
    calls: list[tuple[str, float, float]] = []
    res = compute_data(Scale.TINY, 0, lambda d, done, total: calls.append((d, done, total)))
    n_days = res.world.n_days
    assert [c[1] for c in calls] == list(range(1, n_days + 1))
    data = res.metrics()["data"]
    assert data["rows"] == len(res.log) and data["days"] == n_days
    assert data["users"] == len(res.world.users) and data["videos"] == len(res.world.videos)
    assert data["ctr"] == res.log["click"].mean()
    by_pos = data["ctr_by_position"]
    assert by_pos[0] > by_pos[max(by_pos)]  # position bias
    write_data(tmp_path, res)
    back = pd.read_parquet(tmp_path / "data" / "impressions.parquet")
    assert len(back) == len(res.log)
    assert {p.name for p in (tmp_path / "data").iterdir()} == {
        "impressions.parquet",
        "videos.parquet",
        "users.parquet",
    }
    bp = Blueprint("t")
    report_data(bp, res)
    assert f"{len(res.log):,} impressions" in bp.to_markdown()
