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

The models never call ``lgb.train`` themselves: they call :func:`fit_booster`, which trains
in-process, exactly as ``lgb.train`` would, unless the caller is inside an engine's
``data_parallel()`` block (:meth:`mlsd.engine_ray.RayEngine.data_parallel` enters
:func:`lightgbm_data_parallel`) and the training set has at least
:data:`DATA_PARALLEL_MIN_ROWS` rows; then the fit goes to :func:`train_data_parallel`. Ray is
imported only on that path.
"""

from __future__ import annotations

import itertools
import logging
import socket
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Literal

import lightgbm as lgb
import numpy as np

from mlsd.engine import Engine

log = logging.getLogger(__name__)

#: Training rows below which a fit stays in-process even inside ``data_parallel()``: starting the
#: actors and shipping their slices costs one to three seconds, and every split all-reduces
#: histograms over sockets, so small fits lose. Measured on the 2-core machine: a 272k-row
#: LambdaRank fit of 400 trees took 6.1 s on 2 actors against 7.9 s in one 1-thread process
#: (1.3x, load ~1); ad click's 62k-row fits took 9-14 s on 2 actors (load 9-11) against ~3 s
#: in-process.
#: The floor sits between the two; a cluster of nodes of their own moves it down.
DATA_PARALLEL_MIN_ROWS = 200_000

#: ``(X, y)`` of a validation set (early stopping), rows in the training set's columns.
Valid = tuple[np.ndarray, np.ndarray]


@dataclass
class LightGBMParallel:
    """Inside :func:`lightgbm_data_parallel`: ``workers`` Ray actors per fit of at least
    ``min_rows`` rows (default :data:`DATA_PARALLEL_MIN_ROWS`, read at fit time)."""

    workers: int
    min_rows: int | None = None
    fits: int = 0  # fits that went to Ray in this block
    told_small: bool = False  # the "stays in-process" line is logged once per block


_PARALLEL: ContextVar[LightGBMParallel | None] = ContextVar("mlsd_lightgbm_parallel", default=None)


@contextmanager
def lightgbm_data_parallel(
    workers: int, *, min_rows: int | None = None
) -> Iterator[LightGBMParallel]:
    """Inside the block, :func:`fit_booster` trains data-parallel on ``workers`` Ray actors
    (Ray must be initialised; ``workers`` < 2: in-process as usual). Yields the block's state
    (``fits``: how many fits went to Ray)."""
    state = LightGBMParallel(workers, min_rows)
    token = _PARALLEL.set(state if workers >= 2 else None)
    try:
        yield state
    finally:
        _PARALLEL.reset(token)


def fit_booster(
    params: dict[str, Any],
    X: np.ndarray,
    y: np.ndarray,
    num_boost_round: int,
    *,
    group_sizes: Sequence[int] | np.ndarray | None = None,
    feature_name: Sequence[str] | None = None,
    categorical_feature: Sequence[int] | None = None,
    valid: Valid | None = None,
    early_stopping_rounds: int = 0,
) -> lgb.Booster:
    """``lgb.train(params, Dataset(X, y, group=group_sizes, ...), num_boost_round)``, with early
    stopping on ``valid`` after ``early_stopping_rounds`` rounds without progress (when both are
    given; the booster's ``best_iteration`` says where). In-process (bit-equal to calling
    ``lgb.train`` so) unless inside :func:`lightgbm_data_parallel` with at least
    :data:`DATA_PARALLEL_MIN_ROWS` rows: then on the block's Ray actors, each holding a slice of
    the rows and the whole validation set (all machines grow the same trees, so they score it
    alike and stop at the same round)."""
    state = _PARALLEL.get()
    rows = len(X)
    kw: dict[str, Any] = {
        "group_sizes": group_sizes,
        "feature_name": feature_name,
        "categorical_feature": categorical_feature,
        "valid": valid,
        "early_stopping_rounds": early_stopping_rounds,
    }
    if state is not None:
        threshold = DATA_PARALLEL_MIN_ROWS if state.min_rows is None else state.min_rows
        groups = None if group_sizes is None else len(group_sizes)
        if rows >= threshold and (groups is None or groups >= state.workers):
            t0 = time.perf_counter()
            booster = train_data_parallel(
                params, X, y, num_boost_round, workers=state.workers, **kw
            )
            state.fits += 1
            log.info(
                "LightGBM fit of %d rows data-parallel on %d Ray actors in %.1f s",
                rows,
                state.workers,
                time.perf_counter() - t0,
            )
            return booster
        if not state.told_small:
            state.told_small = True
            log.info(
                "LightGBM fit of %d rows stays in-process: data-parallel starts at %d rows "
                "(DATA_PARALLEL_MIN_ROWS); smaller fits in this block are not logged",
                rows,
                threshold,
            )
    return _fit_here(params, X, y, num_boost_round, **kw)


def _datasets(
    X: np.ndarray,
    y: np.ndarray,
    groups: np.ndarray | None,
    feature_name: Sequence[str] | None,
    categorical_feature: Sequence[int] | None,
    valid: Valid | None,
    params: dict[str, Any],
) -> tuple[lgb.Dataset, list[lgb.Dataset]]:
    """The training set and the validation sets (binned with the training set's bins)."""
    names: list[str] | Literal["auto"] = list(feature_name) if feature_name else "auto"
    cats: list[int] | Literal["auto"] = (
        list(categorical_feature) if categorical_feature is not None else "auto"
    )
    train = lgb.Dataset(
        X, label=y, group=groups, feature_name=names, categorical_feature=cats, params=params
    )
    if valid is None:
        return train, []
    return train, [
        lgb.Dataset(
            valid[0],
            label=valid[1],
            feature_name=names,
            categorical_feature=cats,
            reference=train,
            params=params,
        )
    ]


def _fit_here(
    params: dict[str, Any],
    X: np.ndarray,
    y: np.ndarray,
    num_boost_round: int,
    *,
    group_sizes: Sequence[int] | np.ndarray | None,
    feature_name: Sequence[str] | None,
    categorical_feature: Sequence[int] | None,
    valid: Valid | None,
    early_stopping_rounds: int,
    dataset_params: dict[str, Any] | None = None,
) -> lgb.Booster:
    groups = None if group_sizes is None else np.asarray(group_sizes, dtype=np.int64)
    train, valid_sets = _datasets(
        X,
        y,
        groups,
        feature_name,
        categorical_feature,
        valid if early_stopping_rounds > 0 else None,
        {"verbosity": -1} if dataset_params is None else dataset_params,
    )
    callbacks: list[Callable[..., Any]] = []
    if valid_sets:
        callbacks.append(lgb.early_stopping(early_stopping_rounds, verbose=False))
    return lgb.train(
        params, train, num_boost_round=num_boost_round, valid_sets=valid_sets, callbacks=callbacks
    )


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
    """One LightGBM machine, as a Ray actor: says where it will listen, then trains on its slice
    when all are ready."""

    def __init__(self) -> None:
        self._held: socket.socket | None = None

    def listen_address(self) -> tuple[str, int]:
        """The address of this actor's node (127.0.0.1 for mlsd's local instance; the node's
        own on a cluster) and a port free there, held until :meth:`train` so that two machines
        on one node never draw the same port."""
        import ray

        ip = str(ray.util.get_node_ip_address())
        self._held = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._held.bind((ip, 0))
        return ip, int(self._held.getsockname()[1])

    def train(
        self,
        params: dict[str, Any],
        X: np.ndarray,
        y: np.ndarray,
        groups: np.ndarray | None,
        rounds: int,
        feature_name: list[str] | None,
        categorical_feature: list[int] | None = None,
        valid: Valid | None = None,
        early_stopping_rounds: int = 0,
    ) -> tuple[str, int, float]:
        """The model (every tree), its best iteration (0: no early stopping) and the seconds
        LightGBM took here."""
        if self._held is not None:  # LightGBM listens on the port from here
            self._held.close()
            self._held = None
        t0 = time.perf_counter()
        booster = _fit_here(
            params,
            X,
            y,
            rounds,
            group_sizes=groups,
            feature_name=feature_name,
            categorical_feature=categorical_feature,
            valid=valid,
            early_stopping_rounds=early_stopping_rounds,
            dataset_params=params,
        )
        seconds = time.perf_counter() - t0
        out = str(booster.model_to_string(num_iteration=-1)), int(booster.best_iteration), seconds
        booster.free_network()  # this process may train again, on other ports
        return out


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
    ``min(workers, engine.workers)`` Ray actors on the Ray engine, whatever the rows."""
    n = min(workers, engine.workers) if engine.name == "ray" else 1
    if n > 1:
        engine.start()
    with lightgbm_data_parallel(n, min_rows=0):
        return fit_booster(
            params, X, y, num_boost_round, group_sizes=group_sizes, feature_name=feature_name
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
    categorical_feature: Sequence[int] | None = None,
    valid: Valid | None = None,
    early_stopping_rounds: int = 0,
    timeout_minutes: int = 5,
) -> lgb.Booster:
    """``lgb.train(params, Dataset(X, y, group=group_sizes), num_boost_round)`` data-parallel on
    ``workers`` Ray actors of one CPU each (Ray must be initialised: a :class:`RayEngine` that
    has run, or ``ray.init``). The rows must be in group order when ``group_sizes`` is given.

    The actors live for this fit only: kept idle between fits, they would hold their CPUs, and
    Ray work that needs them (Ray Train's workers for a PyTorch fit in the same block, on a
    2-CPU instance) would wait for ever."""
    import ray

    if not ray.is_initialized():
        raise RuntimeError("train_data_parallel needs Ray: use it inside an --engine ray run")
    X, y = np.asarray(X), np.asarray(y)
    slices = split_rows(len(X), workers, group_sizes)
    ends = None if group_sizes is None else np.cumsum(np.asarray(group_sizes, dtype=np.int64))
    actor_cls: Any = ray.remote(num_cpus=1)(_Machine)
    pool: list[Any] = [actor_cls.remote() for _ in range(workers)]
    valid_ref = None if valid is None else ray.put((np.asarray(valid[0]), np.asarray(valid[1])))
    try:
        addresses = ray.get([a.listen_address.remote() for a in pool], timeout=300)
        machines = ",".join(f"{ip}:{port}" for ip, port in addresses)
        futures = []
        for rank, (part, (ip, port)) in enumerate(zip(slices, addresses, strict=True)):
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
                "local_ip": ip,
                "time_out": timeout_minutes,
                "pre_partition": True,
                "num_threads": 1,
            }
            names = list(feature_name) if feature_name is not None else None
            futures.append(
                pool[rank].train.remote(
                    mine,
                    X[part],
                    y[part],
                    groups,
                    num_boost_round,
                    names,
                    None if categorical_feature is None else list(categorical_feature),
                    valid_ref,
                    early_stopping_rounds,
                )
            )
        models = ray.get(futures, timeout=timeout_minutes * 60 + 60)
    finally:
        for a in pool:
            ray.kill(a)
    model_str, best, seconds = models[0]
    log.info(
        "LightGBM data-parallel on %d Ray actors (%s): %.1f s in LightGBM on rank 0",
        workers,
        machines,
        seconds,
    )
    booster = lgb.Booster(model_str=model_str)
    booster.best_iteration = best
    return booster
