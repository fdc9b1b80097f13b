"""The features step: the training data of a world run (by time) and of a file (at random)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mlsd import data as mdata
from mlsd.systems.ad_click.datasets import FileData, LoadedData
from mlsd.systems.ad_click.features import FEATURE_COLUMNS, offline_features, online_tables
from mlsd.systems.ad_click.features_split import (
    TIME_SPLIT,
    compute_file_features,
    time_split,
)
from mlsd.systems.ad_click.model import NEGATIVE_RATE, downsampling_seed


def test_time_split_trains_before_it_validates_before_it_tests() -> None:
    days = np.array([0, 0, 1, 2, 3, 3, 4, 4, 2])
    split = time_split(days)
    assert days[split["train"]].max() < days[split["validation"]].min()
    assert set(days[split["validation"]]) == {2}
    assert set(days[split["test"]]) == {3, 4}
    assert sorted(np.concatenate(list(split.values())).tolist()) == list(range(len(days)))


def test_world_features_are_the_whole_log_features_split_by_time(tiny_run: Any) -> None:
    data, world = tiny_run.data, tiny_run.world
    log = mdata.read_parquet(tiny_run.world_log.log_path)
    expected = offline_features(log, world.users, world.ads, engine="numpy")
    pd.testing.assert_frame_equal(data.X, expected.reset_index(drop=True), check_exact=True)
    assert list(data.X.columns) == list(FEATURE_COLUMNS)
    np.testing.assert_array_equal(data.y, log["click"].to_numpy())
    np.testing.assert_array_equal(data.days, log["day"].to_numpy())
    np.testing.assert_array_equal(data.p_true, log["p_true"].to_numpy())
    assert data.split_kind == TIME_SPLIT
    for name, idx in time_split(log["day"].to_numpy()).items():
        np.testing.assert_array_equal(data.split[name], idx)
    assert data.sampling == {
        "rows_total": len(data.split["train"]),
        "rows_kept": len(data.split["train"]),
        "rate": 1.0,
        "cap": data.sampling["cap"],
    }
    # the counts carried to the end of the log are the online store's tables
    assert data.tables is not None
    want = online_tables(log, world.users, world.ads)
    assert set(data.tables) == set(want)
    for ns, frame in want.items():
        have = data.tables[ns].sort_values("key", ignore_index=True)
        pd.testing.assert_frame_equal(have, frame.sort_values("key", ignore_index=True), obj=ns)


def test_features_metrics_record_the_split_and_the_downsampling(tiny_run: Any) -> None:
    data = tiny_run.data
    m = data.metrics()["features"]
    assert m["split"] == "time" and m["rows"] == {k: len(v) for k, v in data.split.items()}
    train_y = data.y[data.split["train"]]
    kept = mdata.downsample_negatives(train_y, NEGATIVE_RATE, downsampling_seed(0))
    down = m["negative_downsampling"]
    assert down["train_rows_before"] == len(train_y) and down["train_rows_after"] == len(kept)
    assert down["positive_rate_after"] == float(train_y[kept].mean())
    assert m["training_sample"]["rate"] == 1.0
    assert len(m["dense"]) + len(m["categorical"]) == len(FEATURE_COLUMNS)


def _loaded(n: int, seed: int) -> LoadedData:
    r = np.random.default_rng(seed)
    X = pd.DataFrame({"d_x": r.normal(size=n), "c_a": r.integers(0, 5, n)})
    y = (r.random(n) < 0.2).astype(np.int64)
    return LoadedData(X, y, f"file{seed}", "libfm", n, float(y.mean()), has_time=False)


def test_file_features_split_at_random_or_test_on_the_test_file(tmp_path: Path) -> None:
    alone = compute_file_features(FileData(_loaded(1000, 0), None), seed=3)
    assert {k: len(v) for k, v in alone.split.items()} == {
        "train": 800,
        "validation": 100,
        "test": 100,
    }
    assert alone.days is None and alone.p_true is None and alone.tables is None
    assert "random 80/10/10" in alone.split_kind
    again = compute_file_features(FileData(_loaded(1000, 0), None), seed=3)
    np.testing.assert_array_equal(alone.split["test"], again.split["test"])

    with_test = compute_file_features(FileData(_loaded(1000, 0), _loaded(300, 1)), seed=3)
    assert len(with_test.X) == 1300
    np.testing.assert_array_equal(with_test.split["test"], np.arange(1000, 1300))
    assert len(with_test.split["train"]) == 900 and len(with_test.split["validation"]) == 100
    assert "test = the test file" in with_test.split_kind
    assert "training_sample" not in with_test.metrics()["features"]
