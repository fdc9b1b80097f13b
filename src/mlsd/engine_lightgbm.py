"""LightGBM's own data-parallel training, its machines being Ray actors (the ``ray`` extra).

LightGBM trains data-parallel natively (``tree_learner="data"``): every machine holds a slice of
the rows, builds histograms on it, and the machines all-reduce the histograms over TCP sockets
(``machines``, ``local_listen_port``, ``num_machines``) so each grows the same trees.
:func:`train_data_parallel` starts one Ray actor per machine (one CPU each, on 127.0.0.1 or
across a cluster's nodes), hands each its contiguous slice (whole query groups for a ranker),
and returns rank 0's booster. No library beyond LightGBM and Ray is needed (``lightgbm-ray``
installs here but is unmaintained and pulls in xgboost; see the issue's note).

Same results? The trees are grown from the same global histograms, but each machine finds its
features' bin boundaries from its own rows (``pre_partition``), so the model is not bit-equal to
a single-machine one: its quality is (the tests compare AUC / nDCG within a stated tolerance).
"""

from __future__ import annotations

import itertools
import logging
import socket
from collections.abc import Sequence
from typing import Any, Literal

import lightgbm as lgb
import numpy as np

from mlsd.engine import Engine

log = logging.getLogger(__name__)


def _free_ports(n: int) -> list[int]:
    """``n`` distinct free TCP ports on 127.0.0.1 (bound then released)."""
    socks = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [int(s.getsockname()[1]) for s in socks]
    finally:
        for s in socks:
            s.close()


def split_rows(
    n: int, workers: int, group_sizes: Sequence[int] | np.ndarray | None = None
) -> list[slice]:
    """Contiguous row slices, one per worker, of about equal size; with ``group_sizes`` (a
    ranker's query groups, in row order) a slice never cuts a group."""
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    if group_sizes is None:
        bounds = [n * k // workers for k in range(workers + 1)]
    else:
        ends = np.cumsum(np.asarray(group_sizes, dtype=np.int64))
        if len(ends) == 0 or int(ends[-1]) != n:
            raise ValueError(f"the group sizes sum to {int(ends[-1]) if len(ends) else 0}, not {n}")
        if len(ends) < workers:
            raise ValueError(f"{len(ends)} groups cannot be split over {workers} workers")
        cuts = [int(ends[np.searchsorted(ends, n * k / workers)]) for k in range(1, workers)]
        bounds = [0, *cuts, n]
    slices = [slice(a, b) for a, b in itertools.pairwise(bounds)]
    if any(s.stop <= s.start for s in slices):
        raise ValueError(f"{n} rows are too few for {workers} workers")
    return slices


class _Machine:
    """One LightGBM machine, as a Ray actor: trains on its slice when all are ready."""

    def train(
        self,
        params: dict[str, Any],
        X: np.ndarray,
        y: np.ndarray,
        groups: np.ndarray | None,
        rounds: int,
        feature_name: list[str] | None,
    ) -> str:
        names: list[str] | Literal["auto"] = feature_name if feature_name is not None else "auto"
        data = lgb.Dataset(X, label=y, group=groups, feature_name=names, params=params)
        return str(lgb.train(params, data, num_boost_round=rounds).model_to_string())


def train_lightgbm(
    engine: Engine,
    params: dict[str, Any],
    X: np.ndarray,
    y: np.ndarray,
    num_boost_round: int,
    *,
    group_sizes: Sequence[int] | np.ndarray | None = None,
    feature_name: Sequence[str] | None = None,
    workers: int = 2,
) -> lgb.Booster:
    """``lgb.train`` on ``engine``: in-process on the local engine, data-parallel on
    ``min(workers, engine.workers)`` Ray actors on the Ray engine."""
    n = min(workers, engine.workers) if engine.name == "ray" else 1
    if n <= 1:
        names: list[str] | Literal["auto"] = list(feature_name) if feature_name else "auto"
        groups = None if group_sizes is None else np.asarray(group_sizes, dtype=np.int64)
        data = lgb.Dataset(X, label=y, group=groups, feature_name=names, params=params)
        return lgb.train(params, data, num_boost_round=num_boost_round)
    engine.start()
    return train_data_parallel(
        params, X, y, num_boost_round, workers=n, group_sizes=group_sizes, feature_name=feature_name
    )


def train_data_parallel(
    params: dict[str, Any],
    X: np.ndarray,
    y: np.ndarray,
    num_boost_round: int,
    *,
    workers: int = 2,
    group_sizes: Sequence[int] | np.ndarray | None = None,
    feature_name: Sequence[str] | None = None,
    timeout_minutes: int = 5,
) -> lgb.Booster:
    """``lgb.train(params, Dataset(X, y, group=group_sizes), num_boost_round)`` data-parallel on
    ``workers`` Ray actors of one CPU each (Ray must be initialised: a :class:`RayEngine` that
    has run, or ``ray.init``). The rows must be in group order when ``group_sizes`` is given."""
    import ray

    if not ray.is_initialized():
        raise RuntimeError("train_data_parallel needs Ray: use it inside an --engine ray run")
    X, y = np.asarray(X), np.asarray(y)
    slices = split_rows(len(X), workers, group_sizes)
    ends = None if group_sizes is None else np.cumsum(np.asarray(group_sizes, dtype=np.int64))
    ports = _free_ports(workers)
    machines = ",".join(f"127.0.0.1:{p}" for p in ports)
    actor_cls: Any = ray.remote(num_cpus=1)(_Machine)
    actors: list[Any] = [actor_cls.remote() for _ in range(workers)]
    try:
        futures = []
        for rank, (part, port) in enumerate(zip(slices, ports, strict=True)):
            groups = None
            if ends is not None:
                inside = ends[(ends > part.start) & (ends <= part.stop)]
                groups = np.diff(np.concatenate([[part.start], inside]))
            mine = {
                **params,
                "tree_learner": "data",
                "num_machines": workers,
                "machines": machines,
                "local_listen_port": port,
                "local_ip": "127.0.0.1",
                "time_out": timeout_minutes,
                "pre_partition": True,
                "num_threads": 1,
            }
            names = list(feature_name) if feature_name is not None else None
            futures.append(
                actors[rank].train.remote(mine, X[part], y[part], groups, num_boost_round, names)
            )
        models = ray.get(futures, timeout=timeout_minutes * 60 + 60)
    finally:
        for a in actors:
            ray.kill(a)
    log.info("LightGBM data-parallel on %d Ray actors (%s)", workers, machines)
    return lgb.Booster(model_str=models[0])
