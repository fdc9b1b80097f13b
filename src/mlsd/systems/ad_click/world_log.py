"""Ad click prediction, step 3 (data): the simulated world's impression log as the run's data.

The world generates its log one day at a time; :func:`write_world_log` writes each day to Parquet
(``artifacts/data/impressions.parquet``, with the ``users`` and ``ads`` tables beside it) and
folds it into a :class:`LogSummary` on the way, so memory stays bounded by one day at every
scale. The result, :class:`WorldLog`, is what the features step streams from and what the
blueprint's data section shows: volume and CTR per day, cold-start ads, position bias.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mlsd import data as mdata
from mlsd.report import Blueprint
from mlsd.runner import ProgressFn
from mlsd.systems.ad_click.world import AdClickWorld

log = logging.getLogger(__name__)

LOG_FILE = "impressions.parquet"


class LogSummary:
    """The data step's tables, accumulated one chunk (a day) at a time: volume, CTR, active users
    and ads per day, ads shown for the first time per day (cold start), clicks by position."""

    def __init__(self) -> None:
        self.rows = 0
        self.clicks = 0
        self.days: list[dict[str, Any]] = []
        self._seen_ads = np.zeros(0, dtype=np.int64)
        self._by_pos: dict[int, list[int]] = {}

    def add(self, chunk: pd.DataFrame) -> None:
        """Fold in one day of the log (a chunk must not split a day)."""
        click = chunk["click"].to_numpy().astype(np.int64)
        self.rows += len(chunk)
        self.clicks += int(click.sum())
        for _, g in chunk.groupby("day", sort=True):
            ads = np.unique(g["ad_id"].to_numpy(np.int64))
            new = np.setdiff1d(ads, self._seen_ads, assume_unique=True)
            self._seen_ads = np.union1d(self._seen_ads, new)
            self.days.append(
                {
                    "day": int(g["day"].iloc[0]),
                    "impressions": len(g),
                    "ctr": float(g["click"].mean()),
                    "users": int(g["user_id"].nunique()),
                    "ads": int(ads.size),
                    "first_seen": int(new.size),
                }
            )
        pos = chunk["position"].to_numpy().astype(np.int64)
        n = np.bincount(pos)
        c = np.bincount(pos, weights=click)
        for p in np.flatnonzero(n):
            acc = self._by_pos.setdefault(int(p), [0, 0])
            acc[0] += int(n[p])
            acc[1] += int(c[p])

    @property
    def positive_rate(self) -> float:
        return self.clicks / self.rows if self.rows else float("nan")

    def rows_per_day(self) -> dict[int, int]:
        return {d["day"]: d["impressions"] for d in self.days}

    def by_position(self) -> list[tuple[int, int, float]]:
        """``(position, impressions, CTR)`` by position."""
        return [(p, n, c / n) for p, (n, c) in sorted(self._by_pos.items())]


@dataclass(frozen=True)
class WorldLog:
    """The data step on the simulated world: the world, where its log lies, and its summary."""

    world: AdClickWorld
    log_path: Path
    rows: int
    positive_rate: float
    days: tuple[Mapping[str, Any], ...]  # one row per day (see LogSummary.add)
    by_position: tuple[tuple[int, int, float], ...]  # (position, impressions, CTR)

    @property
    def rows_per_day(self) -> dict[int, int]:
        return {int(d["day"]): int(d["impressions"]) for d in self.days}

    def metrics(self) -> dict[str, Any]:
        return {
            "data": {
                "source": "world",
                "rows": self.rows,
                "positive_rate": self.positive_rate,
                "days": int(self.world.n_days),
                "users": len(self.world.users),
                "ads": len(self.world.ads),
                "ctr_by_position": {p: ctr for p, _, ctr in self.by_position},
            }
        }


def write_world_log(
    world: AdClickWorld, data_dir: Path, progress: ProgressFn | None = None
) -> WorldLog:
    """Generate ``world``'s log day by day into ``data_dir`` (Parquet, atomic) and summarise it."""
    summary = LogSummary()

    def days() -> Iterator[pd.DataFrame]:
        for day, chunk in enumerate(world.iter_log()):
            summary.add(chunk)
            if progress is not None:
                progress(f"day {day + 1}/{world.n_days}", day + 1, world.n_days)
            yield chunk

    log_path = mdata.write_parquet(days(), Path(data_dir) / LOG_FILE)
    mdata.write_parquet(world.users, Path(data_dir) / "users.parquet")
    mdata.write_parquet(world.ads, Path(data_dir) / "ads.parquet")
    log.info("world log: %d impressions over %d days", summary.rows, world.n_days)
    return WorldLog(
        world=world,
        log_path=log_path,
        rows=summary.rows,
        positive_rate=summary.positive_rate,
        days=tuple(summary.days),
        by_position=tuple(summary.by_position()),
    )


def report_world_log(bp: Blueprint, result: WorldLog) -> None:
    """The blueprint's data section for a world run: volume per day, cold start, position bias."""
    world = result.world
    bp.section("Data preparation")
    bp.text(
        f"The simulated platform logged **{result.rows:,} impressions** over {world.n_days} days "
        f"for {len(world.users):,} users and {len(world.ads):,} ads; overall CTR "
        f"**{result.positive_rate:.2%}**. The log is Parquet "
        "(`artifacts/data/impressions.parquet`), written and summarised one day at a time so "
        "memory stays bounded at any scale. It was produced by a "
        "logging policy (noisy relevance × bid), so it carries selection and position bias. "
        "The world knows each impression's true click probability, which gives the oracle."
    )
    bp.table(
        ["day", "impressions", "CTR", "active users", "ads shown", "ads seen first this day"],
        [
            [r["day"], r["impressions"], f"{r['ctr']:.2%}", r["users"], r["ads"], r["first_seen"]]
            for r in result.days
        ],
        caption="Daily volume: new ads arrive every day (cold start); interests drift.",
    )
    bp.table(
        ["position", "impressions", "CTR"],
        [[p, n, f"{ctr:.2%}"] for p, n, ctr in result.by_position],
        caption="Position bias: the same policy's ads are clicked less further down the feed.",
    )
