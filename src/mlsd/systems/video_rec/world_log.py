"""Step 3 for video recommendation on the simulated world: the logged impressions.

The world runs its logging policy for ``n_days`` days; the log (one row per impression), the
videos and the users are written as Parquet to ``artifacts/data/``, and the data step reports
the click-through rate by day and by position (the position bias the ranking model must learn
and then remove).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from mlsd import data as mdata
from mlsd.report import Blueprint
from mlsd.runner import ProgressFn
from mlsd.systems.video_rec.world import VideoRecWorld
from mlsd.world import Scale


@dataclass(frozen=True)
class DataResult:
    """The world after its logged days (it keeps moving on in later steps) and its log."""

    world: VideoRecWorld
    log: pd.DataFrame
    by_day: pd.DataFrame  # impressions, CTR and active users per day
    ctr_by_position: dict[int, float]
    mean_watch_fraction: float
    videos_shown: int
    users: int  # at the end of the log (the world grows later)
    videos: int

    def metrics(self) -> dict[str, Any]:
        return {
            "data": {
                "source": "world",
                "rows": len(self.log),
                "ctr": float(self.log["click"].mean()),
                "days": self.world.n_days,
                "users": self.users,
                "videos": self.videos,
                "videos_shown": self.videos_shown,
                "mean_watch_fraction": self.mean_watch_fraction,
                "ctr_by_position": self.ctr_by_position,
            }
        }


def compute_data(scale: Scale, seed: int, progress: ProgressFn) -> DataResult:
    """Run the world's logging policy over its days and summarise the log."""
    world = VideoRecWorld(scale, seed)
    chunks = []
    for day, chunk in enumerate(world.iter_log()):
        chunks.append(chunk)
        progress(f"day {day + 1}/{world.n_days}", day + 1, world.n_days)
    log_df = pd.concat(chunks, ignore_index=True)
    by_pos = log_df.groupby("position")["click"].mean()
    by_day = log_df.groupby("day").agg(
        imps=("click", "size"), ctr=("click", "mean"), users=("user_id", "nunique")
    )
    clicked = log_df[log_df["click"] == 1]
    return DataResult(
        world,
        log_df,
        by_day,
        {int(str(p)): float(c) for p, c in by_pos.items()},
        float(clicked["watch_frac"].mean()),
        int(log_df["video_id"].nunique()),
        len(world.users),
        len(world.videos),
    )


def write_data(artifacts_dir: Path, result: DataResult) -> None:
    """The log, the videos and the users as Parquet in ``artifacts/data/``."""
    data_dir = artifacts_dir / "data"
    data_dir.mkdir(exist_ok=True)
    mdata.write_parquet(result.log, data_dir / "impressions.parquet")
    mdata.write_parquet(result.world.videos, data_dir / "videos.parquet")
    mdata.write_parquet(result.world.users, data_dir / "users.parquet")


def report_data(bp: Blueprint, result: DataResult) -> None:
    world, log_df = result.world, result.log
    bp.section("Data preparation")
    bp.text(
        f"The simulated platform logged **{len(log_df):,} impressions** over {world.n_days} days "
        f"for {result.users:,} users and {result.videos:,} videos "
        f"({world.config.new_videos_per_day} new videos and {world.config.new_users_per_day} new "
        f"users a day); CTR **{log_df['click'].mean():.2%}**, mean watch fraction after a click "
        f"{result.mean_watch_fraction:.2f}. The logging policy (trending + the user's category "
        f"history + freshness, with noise) showed only {result.videos_shown:,} distinct videos: "
        "the logs carry its selection bias. Logs are Parquet in `artifacts/data/`."
    )
    bp.table(
        ["day", "impressions", "CTR", "active users"],
        [[str(d), int(r.imps), f"{r.ctr:.2%}", int(r.users)] for d, r in result.by_day.iterrows()],
    )
    bp.table(
        ["position", "CTR"],
        [[str(p), f"{c:.2%}"] for p, c in result.ctr_by_position.items()],
        caption="Position bias: the same policy's videos are clicked less further down.",
    )
