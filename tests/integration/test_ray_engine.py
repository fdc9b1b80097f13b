"""The Ray engine on a real two-node cluster: same results as the local engine, shards on both
nodes, PyTorch training data-parallel on Ray Train (issue #15).

The module starts its own cluster, once: a head (``ray start --head`` on 127.0.0.1, a free
port, 1 CPU, its own temporary folder) and a second node (``ray start --address``, 1 CPU), both
separate processes, and connects to it by address as ``mlsd run --ray-address`` does. Teardown
stops only this cluster's processes (those whose command line names its temporary folder),
never a machine-wide ``ray stop``: other tests and programs may be running Ray.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
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

from mlsd.engine import LocalEngine, make_engine, score_rows
from mlsd.systems.ad_click.features_split import compute_world_features
from mlsd.systems.ad_click.world import AdClickWorld
from mlsd.systems.ad_click.world_log import write_world_log
from mlsd.training import fit_torch

ray = pytest.importorskip("ray")
pytestmark = [
    pytest.mark.xdist_group("ray"),
    pytest.mark.filterwarnings("ignore::DeprecationWarning:ray.*"),
]

RAY = Path(sys.executable).parent / "ray"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _names(entry: Path, marker: str) -> bool:
    """Whether process ``entry`` names ``marker`` in its command line or an open file (Ray's
    agents rename their command line, but keep their logs open under the folder)."""
    try:
        if marker in (entry / "cmdline").read_bytes().decode(errors="replace"):
            return True
        return any(marker in os.readlink(fd) for fd in (entry / "fd").iterdir())
    except OSError:
        return False


def _our_pids(marker: str) -> list[int]:
    """This cluster's processes: those naming ``marker``, this cluster's unique folder."""
    me = os.getpid()
    return [
        int(e.name)
        for e in Path("/proc").iterdir()
        if e.name.isdigit() and int(e.name) != me and _names(e, marker)
    ]


def _stop(marker: str) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        pids = _our_pids(marker)
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        deadline = time.monotonic() + 10
        while pids and time.monotonic() < deadline and _our_pids(marker):
            time.sleep(0.2)


@pytest.fixture(scope="module")
def cluster() -> Iterator[str]:
    """The address of a two-node Ray cluster started for this module (stopped after it)."""
    # short: Ray's socket paths live under it and must stay under 108 characters
    root = Path(tempfile.mkdtemp(prefix="mlsd-ray-", dir="/tmp"))
    # the driver and both nodes use token authentication (the token in ~/.ray, as ray.init)
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "token"}
    port = _free_port()
    common = ["--node-ip-address=127.0.0.1", "--num-cpus=1", "--disable-usage-stats"]
    head = [f"--port={port}", "--include-dashboard=false", f"--temp-dir={root / 'head'}"]
    second = [f"--address=127.0.0.1:{port}", f"--temp-dir={root / 'head'}"]
    try:
        for args in (["--head", *head], second):
            subprocess.run(
                [str(RAY), "start", *common, *args],
                env=env,
                check=True,
                capture_output=True,
                timeout=180,
            )
        with pytest.MonkeyPatch.context() as mp:
            # a driver given an address uses a token only when RAY_AUTH_MODE=token was set at
            # start-up (as `RAY_AUTH_MODE=token mlsd run --ray-address ...`); this process
            # started without it, so Ray's cached configuration is refreshed, as Ray does
            mp.setenv("RAY_AUTH_MODE", "token")
            ray._raylet.Config.initialize("")
            yield f"127.0.0.1:{port}"
    finally:
        if ray.is_initialized():
            ray.shutdown()
        _stop(str(root))
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def engine(cluster: str) -> Iterator[object]:
    eng = make_engine("ray", address=cluster)
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # this module's functions
    yield eng
    eng.shutdown()


def test_the_cluster_has_two_nodes_and_shards_run_on_both(engine: object, tmp_path: Path) -> None:
    world = AdClickWorld("tiny", seed=5)
    on_ray = write_world_log(world, tmp_path / "ray", engine=engine)  # type: ignore[arg-type]
    local = write_world_log(world, tmp_path / "local", engine=LocalEngine())
    pd.testing.assert_frame_equal(pd.read_parquet(on_ray.log_path), pd.read_parquet(local.log_path))
    assert on_ray.days == local.days
    # features: per-day count shards, carried counts merged on the driver, per-day features
    got = compute_world_features(on_ray, seed=5, engine=engine)  # type: ignore[arg-type]
    want = compute_world_features(local, seed=5, engine=LocalEngine())
    pd.testing.assert_frame_equal(got.X, want.X)
    np.testing.assert_array_equal(got.y, want.y)
    np.testing.assert_array_equal(got.p_true, want.p_true)  # type: ignore[arg-type]
    assert got.tables is not None and want.tables is not None
    for name, table in want.tables.items():
        pd.testing.assert_frame_equal(got.tables[name], table, obj=name)
    described = engine.describe()  # type: ignore[attr-defined]
    assert described["nodes"] == 2 and described["workers"] == 2
    assert len(described["tasks_by_node"]) == 2, described  # both nodes ran shards


def _with_double(batch: pa.Table) -> pa.Table:
    return batch.append_column("double", pc.multiply(batch["x"], 2))


def test_map_table_on_ray_data_equals_local(engine: object, tmp_path: Path) -> None:
    table = pa.table({"x": np.arange(5000, dtype=np.int64)})
    for i in range(2):
        pq.write_table(table.slice(i * 2500, 2500), tmp_path / f"part-{i}.parquet")
    got = engine.map_table(_with_double, tmp_path, batch_size=700)  # type: ignore[attr-defined]
    assert got.equals(LocalEngine().map_table(_with_double, table, batch_size=5000))
    # batch scoring: blocks of rows as Ray tasks, the model shipped once
    X = pd.DataFrame({"a": np.linspace(-3, 3, 900), "b": np.cos(np.arange(900))})
    model = LogisticRegression().fit(X, X["a"] + X["b"] > 0)
    on_ray = score_rows(engine, _predict, model, X, block=128)  # type: ignore[arg-type]
    np.testing.assert_array_equal(on_ray, _predict(model, X))


def _predict(model: LogisticRegression, X: pd.DataFrame) -> np.ndarray:
    return np.asarray(model.predict_proba(X)[:, 1])


class _TinyRanker(nn.Module):
    """A sparse id embedding and a dense layer: both kinds of gradient are all-reduced."""

    def __init__(self) -> None:
        super().__init__()
        self.ids = nn.Embedding(40, 4, sparse=True)
        self.dense = nn.Linear(3, 4)

    def forward(self, ids: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return (self.ids(ids) * self.dense(x)).sum(dim=1)  # (B,)


def test_data_parallel_training_on_two_nodes_equals_local(engine: object) -> None:
    g = torch.Generator().manual_seed(0)
    ids, x = torch.randint(0, 40, (301,), generator=g), torch.randn(301, 3, generator=g)
    y = ((ids % 3 == 0) ^ (x[:, 0] > 0)).float()
    models = []
    for data_parallel in (False, True):
        torch.manual_seed(0)
        model = _TinyRanker()
        kwargs = {"epochs": 3, "batch_size": 64, "lr": 0.05, "seed": 1}
        val = ([ids[:60], x[:60]], y[:60])
        if data_parallel:
            with engine.data_parallel():  # type: ignore[attr-defined]
                history = fit_torch(
                    model, [ids, x], y, loss_fn=nn.BCEWithLogitsLoss(), val=val, **kwargs
                )
        else:
            history = fit_torch(
                model, [ids, x], y, loss_fn=nn.BCEWithLogitsLoss(), val=val, **kwargs
            )
        models.append((model, history))
    (local, h_local), (dp, h_dp) = models
    assert h_dp.epochs_run == h_local.epochs_run == 3
    np.testing.assert_allclose(h_dp.train_loss, h_local.train_loss, rtol=0, atol=1e-5)
    assert h_local.train_loss[-1] < h_local.train_loss[0]  # it trained
    for (name, a), b in zip(local.state_dict().items(), dp.state_dict().values(), strict=True):
        torch.testing.assert_close(b, a, rtol=0, atol=1e-5, msg=name)


def test_lightgbm_fits_data_parallel_across_the_two_nodes(
    engine: object, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A fit through :func:`mlsd.engine_lightgbm.fit_booster` inside ``data_parallel()``: its 2
    actors need 1 CPU each and each node has 1, so LightGBM's machines are on both nodes (each
    listening at its own node's address); the model classifies as well as the local one."""
    import logging

    from sklearn.metrics import roc_auc_score

    from mlsd import engine_lightgbm

    monkeypatch.setattr(engine_lightgbm, "DATA_PARALLEL_MIN_ROWS", 1000)
    g = np.random.default_rng(0)
    X, Xt = g.normal(size=(3000, 4)), g.normal(size=(1000, 4))
    y, yt = ((m[:, 0] + m[:, 1] * m[:, 2] + g.normal(size=len(m)) > 0).astype(int) for m in (X, Xt))
    params = {"objective": "binary", "num_leaves": 15, "verbosity": -1, "seed": 0}
    local = engine_lightgbm.fit_booster(params, X, y, 30)
    caplog.set_level(logging.INFO, logger="mlsd.engine_lightgbm")
    with engine.data_parallel():  # type: ignore[attr-defined]
        on_ray = engine_lightgbm.fit_booster(params, X, y, 30)
    assert any("on 2 Ray actors in" in r.getMessage() for r in caplog.records)
    assert on_ray.num_trees() == 30
    auc_local, auc_ray = roc_auc_score(yt, local.predict(Xt)), roc_auc_score(yt, on_ray.predict(Xt))
    assert auc_local > 0.75 and abs(auc_ray - auc_local) < 0.02
