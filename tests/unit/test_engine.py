"""The engine seam (mlsd.engine) on the local engine: order, shared objects, tables, the
data-parallel hook of the training loop, ad-click's sharded world and features equal to the
sequential walk, and that a plain run never imports Ray. Ray itself: tests/integration/test_ray_*.
"""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
import torch
from sklearn.linear_model import LogisticRegression
from torch import nn

from mlsd import training
from mlsd.engine import LocalEngine, make_engine, score_rows
from mlsd.systems.ad_click.features_split import compute_world_features
from mlsd.systems.ad_click.features_streaming import StreamingFeatures, iter_days
from mlsd.systems.ad_click.world import AdClickWorld
from mlsd.systems.ad_click.world_log import WorldLog, write_world_log


def _double(batch: pa.Table) -> pa.Table:
    return batch.append_column("y", pc.multiply(batch["x"], 2))


def _scaled(factor: int, item: int) -> int:
    return factor * item


def test_local_engine_keeps_order_and_passes_the_shared_object() -> None:
    engine = LocalEngine()
    assert engine.map(math.isqrt, [16, 1, 9]) == [4, 1, 3]
    assert engine.map(_scaled, range(4), shared=10) == [0, 10, 20, 30]
    assert engine.workers == 1 and engine.describe() == {"name": "local", "workers": 1}


def test_map_table_gives_the_same_table_for_any_batch_size(tmp_path: Path) -> None:
    table = pa.table({"x": np.arange(1000)})
    whole = LocalEngine().map_table(_double, table, batch_size=10_000)
    assert LocalEngine().map_table(_double, table, batch_size=7).equals(whole)
    assert whole["y"].to_pylist()[:3] == [0, 2, 4]
    for i in range(3):  # a folder of Parquet files, read in name order
        pq.write_table(table.slice(i * 400, 400), tmp_path / f"part-{i}.parquet")
    assert LocalEngine().map_table(_double, tmp_path, batch_size=64).equals(whole)


def test_engine_errors_are_clear(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="batch_size"):
        LocalEngine().map_table(_double, pa.table({"x": [1]}), batch_size=0)
    with pytest.raises(FileNotFoundError, match="no such Parquet"):
        LocalEngine().map_table(_double, tmp_path / "missing.parquet")
    with pytest.raises(ValueError, match="unknown engine 'spark'"):
        make_engine("spark")
    with pytest.raises(ValueError, match="--ray-address needs --engine ray"):
        make_engine("local", address="127.0.0.1:6379")


def _predict(model: LogisticRegression, X: pd.DataFrame) -> np.ndarray:
    return np.asarray(model.predict_proba(X)[:, 1])


def test_score_rows_in_blocks_equals_scoring_the_whole_frame() -> None:
    gen = np.random.default_rng(0)
    X = pd.DataFrame(gen.normal(size=(1000, 3)), columns=["a", "b", "c"])
    model = LogisticRegression().fit(X, X["a"] > 0)
    whole = _predict(model, X)
    np.testing.assert_array_equal(score_rows(LocalEngine(), _predict, model, X, block=64), whole)
    with pytest.raises(ValueError, match="batch_size"):
        score_rows(LocalEngine(), _predict, model, X, block=0)


# ---- ad-click: the sharded data and features equal the sequential walk ---------------------
@pytest.fixture(scope="module")
def tiny_log(tmp_path_factory: pytest.TempPathFactory) -> WorldLog:
    world = AdClickWorld("tiny", seed=3)
    return write_world_log(world, tmp_path_factory.mktemp("ad-click") / "data")


def test_world_log_is_the_days_in_order(tiny_log: WorldLog) -> None:
    written = pd.read_parquet(tiny_log.log_path)
    expected = pd.concat(list(tiny_log.world.iter_log()), ignore_index=True)
    pd.testing.assert_frame_equal(written, expected)
    with pytest.raises(ValueError, match="day must be in"):
        tiny_log.world.log_day(tiny_log.world.n_days)


def test_sharded_features_equal_the_sequential_walk(tiny_log: WorldLog) -> None:
    world = tiny_log.world
    streamer = StreamingFeatures(world.users, world.ads)
    expected = pd.concat(
        [streamer.features(day).reset_index(drop=True) for day in iter_days(tiny_log.log_path)],
        ignore_index=True,
    )
    result = compute_world_features(tiny_log, seed=3, engine=LocalEngine())
    pd.testing.assert_frame_equal(result.X, expected)  # tiny keeps every training row
    assert result.tables is not None
    for name, table in streamer.tables().items():
        pd.testing.assert_frame_equal(result.tables[name], table, obj=name)


# ---- the training loop's data-parallel hook -------------------------------------------------
def test_data_parallel_hands_the_loop_to_the_runner_and_replays_progress() -> None:
    jobs: list[training.LoopJob] = []

    def runner(job: training.LoopJob) -> training.TrainHistory:
        jobs.append(job)
        return training.run_loop(job)

    X, y = torch.randn(64, 3, generator=torch.Generator().manual_seed(0)), torch.zeros(64)
    seen: list[int] = []
    with training.data_parallel(runner):
        history = training.fit_torch(
            nn.Sequential(nn.Linear(3, 1), nn.Flatten(0)),
            [X],
            y,
            loss_fn=nn.BCEWithLogitsLoss(),
            epochs=2,
            batch_size=16,
            lr=0.01,
            seed=0,
            progress=lambda epoch, train, val: seen.append(epoch),
        )
    assert len(jobs) == 1 and jobs[0].epochs == 2 and history.epochs_run == 2
    assert seen == [0, 1]
    training.fit_torch(  # outside the block: in-process again
        nn.Sequential(nn.Linear(3, 1), nn.Flatten(0)),
        [X],
        y,
        loss_fn=nn.BCEWithLogitsLoss(),
        epochs=1,
        batch_size=16,
        lr=0.01,
        seed=0,
    )
    assert len(jobs) == 1


def test_a_local_run_never_imports_ray() -> None:
    code = (
        "import sys\n"
        "from mlsd.runner import RunContext\n"
        "from mlsd.engine import make_engine\n"
        "from mlsd.systems import SYSTEMS\n"
        "for s in SYSTEMS.values():\n"
        "    if s.package: s.pipeline()\n"
        "make_engine('local').map(abs, [-1])\n"
        "print(','.join(sorted(m for m in sys.modules if m.split('.')[0] == 'ray')))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=300
    )
    assert out.stdout.strip() == "", f"a local run imports {out.stdout.strip()[:200]}"


def test_the_cli_refuses_a_bad_engine_before_anything_runs(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from mlsd.cli import app

    out = tmp_path / "run"
    bad = CliRunner().invoke(app, ["run", "ad-click", "--engine", "spark", "--out", str(out)])
    assert bad.exit_code == 2 and "--engine 'spark'" in bad.output
    lone = CliRunner().invoke(
        app, ["run", "ad-click", "--ray-address", "127.0.0.1:1", "--out", str(out)]
    )
    assert lone.exit_code == 2 and "--ray-address needs --engine ray" in lone.output
    assert not out.exists()


def test_a_vector_index_travels_to_workers_by_pickle() -> None:
    import pickle

    from mlsd.index import VectorIndex

    vectors = np.random.default_rng(0).normal(size=(50, 8)).astype(np.float32)
    index = VectorIndex.build("flat", vectors)
    copy = pickle.loads(pickle.dumps(index))  # what Ray does with a shard's shared object
    assert len(copy) == 50 and copy.kind == index.kind
    np.testing.assert_array_equal(copy.ids, index.ids)
    np.testing.assert_array_equal(copy.search(vectors[:3], 5)[1], index.search(vectors[:3], 5)[1])
