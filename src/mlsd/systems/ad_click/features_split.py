"""Ad click prediction, step 3 (features): the run's training data, split for training and test.

The features step turns the data step's result into one feature frame ``X`` with labels ``y``
and a train / validation / test split:

* on the simulated world, the log is streamed day by day through
  :class:`~.features_streaming.StreamingFeatures` (point-in-time features, bounded memory) and
  split **by time**: train on the early days, validate on the next, test on the last two, so the
  model never trains on the days it is tested on. The training days are subsampled uniformly to at
  most :data:`TRAIN_ROWS_CAP` rows (label-blind, so calibration stays unbiased); the carried
  counts become the online store's tables;
* on a file, the rows are split at random (the file has no timestamps), or the explicit test file
  is the test set.

The result, :class:`TrainingData`, also records what negative downsampling does to the training
rows (every model but the baseline trains on every click and :data:`~.model.NEGATIVE_RATE` of
the non-clicks when clicks are rare; every row when they are not, :func:`~.model.negative_rate`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from mlsd import data as mdata
from mlsd.engine import Engine, LocalEngine
from mlsd.report import Blueprint
from mlsd.rng import seed_of
from mlsd.runner import ProgressFn
from mlsd.systems.ad_click.datasets import FileData, check_split
from mlsd.systems.ad_click.features_online import Tables
from mlsd.systems.ad_click.features_sharded import LogShards, sharded_features
from mlsd.systems.ad_click.model import DOWNSAMPLE_BELOW, downsampling_seed, negative_rate
from mlsd.systems.ad_click.world_log import WorldLog

log = logging.getLogger(__name__)

# Training rows kept in memory (a uniform sample of the training days; large only samples).
TRAIN_ROWS_CAP = 3_000_000
TIME_SPLIT = "time"


@dataclass(frozen=True)
class TrainingData:
    """The features step: the feature frame, labels, split and (world runs) each row's day and
    true click probability, the training-day sample and the online store's tables."""

    X: pd.DataFrame
    y: np.ndarray
    split: Mapping[str, np.ndarray]  # "train" / "validation" / "test" -> row positions in X
    split_kind: str  # TIME_SPLIT, or how a file was split
    seconds: float
    downsampled_rows: int  # training rows negative downsampling keeps
    days: np.ndarray | None = None  # world only: each row's day
    p_true: np.ndarray | None = None  # world only: each row's true click probability
    sampling: Mapping[str, Any] | None = None  # world only: the training-day sample
    tables: Tables | None = None  # world only: the online tables as of the end of the log

    @property
    def train(self) -> np.ndarray:
        return self.split["train"]

    def metrics(self) -> dict[str, Any]:
        clicks = int(self.y[self.train].sum())  # downsampling keeps every click
        kept_rate = clicks / self.downsampled_rows if self.downsampled_rows else 0.0
        features: dict[str, Any] = {
            "dense": [c for c in self.X.columns if c.startswith("d_")],
            "categorical": [c for c in self.X.columns if c.startswith("c_")],
            "seconds": round(self.seconds, 3),
            "split": self.split_kind,
            "rows": {name: len(idx) for name, idx in self.split.items()},
            "negative_downsampling": {
                "rate": negative_rate(self.y[self.train]),
                "train_rows_before": len(self.train),
                "train_rows_after": self.downsampled_rows,
                "positive_rate_after": kept_rate,
            },
        }
        if self.sampling is not None:
            features["training_sample"] = dict(self.sampling)
        return {"features": features}


def _downsampled_rows(y: np.ndarray, train: np.ndarray, seed: int) -> int:
    """How many training rows the learners keep (the same draw as their downsampling)."""
    rate = negative_rate(y[train])
    return len(mdata.downsample_negatives(y[train], rate, downsampling_seed(seed)))


def time_split(days: np.ndarray) -> dict[str, np.ndarray]:
    """Train on the early days, validate on the next, test on the last two."""
    last = int(days.max())
    val_day, test_from = last - 2, last - 1
    return {
        "train": np.flatnonzero(days < val_day),
        "validation": np.flatnonzero(days == val_day),
        "test": np.flatnonzero(days >= test_from),
    }


def compute_world_features(
    world_log: WorldLog,
    seed: int,
    progress: ProgressFn | None = None,
    engine: Engine | None = None,
) -> TrainingData:
    """Features of the world's log, streamed day by day from its Parquet file.

    Keeps the validation and test days in full and a uniform sample of at most
    :data:`TRAIN_ROWS_CAP` training rows; the counts carried to the end of the log become the
    online store's tables.
    """
    t0 = time.perf_counter()
    world, rows_per_day = world_log.world, world_log.rows_per_day
    val_day = max(rows_per_day) - 2  # as time_split
    n_train = sum(n for d, n in rows_per_day.items() if d < val_day)
    rate = min(1.0, TRAIN_ROWS_CAP / n_train) if n_train else 1.0
    shards = LogShards(world_log.log_path, world.users, world.ads, seed)
    log_days = sorted(rows_per_day)
    rates = {d: rate if d < val_day else 1.0 for d in log_days}
    per_day, streamer = sharded_features(engine or LocalEngine(), shards, log_days, rates)
    frames: list[pd.DataFrame] = []
    labels: list[np.ndarray] = []
    days: list[np.ndarray] = []
    p_true: list[np.ndarray] = []
    for i, part in enumerate(per_day):  # one day at a time, in day order
        if progress is not None:
            progress(f"features, day {part.day}", i + 1, len(log_days))
        frames.append(part.X)
        labels.append(part.y)
        days.append(part.days)
        p_true.append(part.p_true)
    X = pd.concat(frames, ignore_index=True)
    del frames
    y, row_days = np.concatenate(labels), np.concatenate(days)
    kept = int((row_days < val_day).sum())
    log.info("streamed features: %d rows kept (%d of %d training rows)", len(X), kept, n_train)
    split = time_split(row_days)
    return TrainingData(
        X=X,
        y=y,
        split=split,
        split_kind=TIME_SPLIT,
        seconds=time.perf_counter() - t0,
        downsampled_rows=_downsampled_rows(y, split["train"], seed),
        days=row_days,
        p_true=np.concatenate(p_true),
        sampling={"rows_total": n_train, "rows_kept": kept, "rate": rate, "cap": TRAIN_ROWS_CAP},
        tables=streamer.tables(),
    )


def compute_file_features(files: FileData, seed: int) -> TrainingData:
    """The file's feature frame, split at random (80/10/10), or 90/10 with the test file as
    the test set."""
    t0 = time.perf_counter()
    loaded, test = files.loaded, files.test
    split_seed = seed_of(seed, "ad-click/file-split")
    if test is None:
        X, y = loaded.X, loaded.y
        tr, va, te = mdata.random_split(loaded.n_rows, (0.8, 0.1, 0.1), split_seed)
        kind = f"random 80/10/10, seed {seed} (the file has no timestamps)"
    else:
        X = pd.concat([loaded.X, test.X], ignore_index=True).fillna(0.0)
        y = np.concatenate([loaded.y, test.y])
        tr, va, _ = mdata.random_split(loaded.n_rows, (0.9, 0.1, 0.0), split_seed)
        te = np.arange(loaded.n_rows, loaded.n_rows + test.n_rows)
        kind = f"train/validation random 90/10 (seed {seed}) of the data file; test = the test file"
    split = {"train": tr, "validation": va, "test": te}
    test_source = loaded.source if test is None else test.source
    check_split(
        split, y, {"train": loaded.source, "validation": loaded.source, "test": test_source}
    )
    return TrainingData(
        X=X,
        y=y,
        split=split,
        split_kind=kind,
        seconds=time.perf_counter() - t0,
        downsampled_rows=_downsampled_rows(y, tr, seed),
    )


def report_features(bp: Blueprint, result: TrainingData) -> None:
    """The blueprint's feature-engineering section: the features, the split, the sampling."""
    m = result.metrics()["features"]
    dense, cats, down = m["dense"], m["categorical"], m["negative_downsampling"]
    by_time = result.split_kind == TIME_SPLIT
    y_train = result.y[result.train]
    bp.section("Feature engineering")
    if by_time:
        bp.text(
            "Every count and CTR feature of an impression at time t is computed from events "
            "strictly before t (counts carried from earlier days plus the same day's earlier "
            "events; tests prove it, and that it equals DuckDB window functions over the whole "
            "log), so no feature leaks the label or the future. The online store holds the same "
            "raw statistics as of the end of the log, and one function turns raw statistics into "
            "features in both paths, so training and serving cannot skew."
        )
    bp.text(
        f"{len(dense)} dense features (log counts, smoothed CTRs, fatigue, ad age, bid) and "
        f"{len(cats)} hashed categorical ones, crosses included: "
        + ", ".join(f"`{c}`" for c in cats)
        + "."
    )
    bp.table(
        ["split", "rows", "positive rate"],
        [
            [name, len(idx), float(result.y[idx].mean()) if len(idx) else float("nan")]
            for name, idx in result.split.items()
        ],
        caption=(
            "Split by time: the model never trains on the days it is tested on."
            if by_time
            else f"Split: {result.split_kind}."
        ),
    )
    if result.sampling is not None:
        smp = result.sampling
        bp.text(
            f"The features are computed streaming, one day at a time, from per-key counts carried "
            f"across days. Of the {smp['rows_total']:,} training-day impressions, "
            f"{smp['rows_kept']:,} are kept (a uniform, label-independent sample at rate "
            f"{smp['rate']:.3g}, at most {TRAIN_ROWS_CAP:,}, so calibration stays unbiased); the "
            "validation and test days are kept in full."
        )
    if down["rate"] < 1.0:
        bp.text(
            f"Negative downsampling keeps every click and {down['rate']:.0%} of non-clicks: "
            f"{down['train_rows_before']:,} → {down['train_rows_after']:,} training rows, "
            f"positive rate {y_train.mean():.2%} → {down['positive_rate_after']:.2%}. "
            "Predictions are re-calibrated with q = p / (p + (1 − p) / rate) (He et al., 2014)."
        )
    else:
        bp.text(
            f"No negative downsampling: clicks are {y_train.mean():.1%} of the training rows, "
            f"not rare (it applies under {DOWNSAMPLE_BELOW:.0%}), so dropping non-clicks would "
            "only throw data away."
        )
