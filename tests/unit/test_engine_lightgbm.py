"""The LightGBM seam (mlsd.engine_lightgbm.fit_booster): in-process it is bit-equal to calling
``lgb.train`` as the models did before; inside ``lightgbm_data_parallel`` a fit of enough rows
is handed to the data-parallel trainer (replaced here by a fake: no Ray), a smaller one stays
in-process and says so once. The Ray-backed fits are in tests/integration/test_ray_lightgbm.py.
"""

from __future__ import annotations

import logging
from typing import Any

import lightgbm as lgb
import numpy as np
import pytest

from mlsd import engine_lightgbm
from mlsd.contracts import click_frame
from mlsd.engine_lightgbm import fit_booster, lightgbm_data_parallel
from mlsd.models import LightGBMClick
from mlsd.systems.event_rec.model import LambdaRank

PARAMS: dict[str, Any] = {
    "learning_rate": 0.1,
    "num_leaves": 7,
    "min_child_samples": 10,
    "seed": 3,
    "num_threads": 1,
    "deterministic": True,
    "force_row_wise": True,
    "verbosity": -1,
}


def _ranking(n_groups: int = 60, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    g = np.random.default_rng(seed)
    sizes = g.integers(4, 10, n_groups)
    X = g.normal(size=(int(sizes.sum()), 3))
    y = (X[:, 0] + 0.5 * g.normal(size=len(X)) > 0.8).astype(int)
    return X, y, sizes


def test_in_process_ranker_is_bit_equal_to_lgb_train() -> None:
    X, y, sizes = _ranking()
    params = {**PARAMS, "objective": "lambdarank", "metric": "ndcg"}
    names = ["d_a", "d_b", "d_c"]
    plain = lgb.train(
        params,
        lgb.Dataset(X, label=y, group=sizes, feature_name=names, params={"verbosity": -1}),
        num_boost_round=15,
    )
    seam = fit_booster(params, X, y, 15, group_sizes=sizes, feature_name=names)
    assert seam.model_to_string() == plain.model_to_string()
    assert seam.num_trees() == 15


def test_in_process_early_stopping_with_categoricals_is_bit_equal() -> None:
    g = np.random.default_rng(1)
    X = np.column_stack([g.normal(size=600), g.integers(0, 5, 600)]).astype(np.float64)
    y = (X[:, 0] + (X[:, 1] == 2) + g.normal(size=600) > 0.5).astype(np.float64)
    params = {**PARAMS, "objective": "binary"}
    names, cats = ["d_x", "c_k"], [1]
    common = {"feature_name": names, "categorical_feature": cats, "params": {"verbosity": -1}}
    train = lgb.Dataset(X[:500], label=y[:500], **common)
    valid = lgb.Dataset(X[500:], label=y[500:], reference=train, **common)
    plain = lgb.train(
        params,
        train,
        num_boost_round=300,
        valid_sets=[valid],
        callbacks=[lgb.early_stopping(5, verbose=False)],
    )
    seam = fit_booster(
        params,
        X[:500],
        y[:500],
        300,
        feature_name=names,
        categorical_feature=cats,
        valid=(X[500:], y[500:]),
        early_stopping_rounds=5,
    )
    assert 0 < plain.best_iteration < 300  # it did stop early
    assert seam.best_iteration == plain.best_iteration
    assert seam.model_to_string() == plain.model_to_string()


class _FakeParallel:
    """Stands in for train_data_parallel: records the call, trains in-process."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    def __call__(
        self, params: dict[str, Any], X: np.ndarray, y: np.ndarray, rounds: int, **kw: Any
    ) -> lgb.Booster:
        self.calls.append({"rows": len(X), **kw})
        return engine_lightgbm._fit_here(
            params, X, y, rounds, **{k: v for k, v in kw.items() if k not in ("workers", "actors")}
        )


def test_inside_the_block_a_big_fit_goes_data_parallel_and_a_small_one_stays(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    fake = _FakeParallel()
    monkeypatch.setattr(engine_lightgbm, "train_data_parallel", fake)
    monkeypatch.setattr(engine_lightgbm, "DATA_PARALLEL_MIN_ROWS", 300)
    X, y, sizes = _ranking()
    params = {**PARAMS, "objective": "lambdarank"}
    caplog.set_level(logging.INFO, logger="mlsd.engine_lightgbm")
    with lightgbm_data_parallel(2) as state:
        fit_booster(params, X, y, 5, group_sizes=sizes)  # > 300 rows: data-parallel
        binary = {**PARAMS, "objective": "binary"}
        fit_booster(binary, X[:100], y[:100], 5)  # too small: in-process
        fit_booster(binary, X[:50], y[:50], 5)  # too small again: not logged twice
    fit_booster(params, X, y, 5, group_sizes=sizes)  # outside the block: in-process
    assert state.fits == 1
    assert len(fake.calls) == 1
    assert fake.calls[0]["workers"] == 2 and fake.calls[0]["rows"] == len(X)
    assert list(fake.calls[0]["group_sizes"]) == list(sizes)
    stays = [r for r in caplog.records if "stays in-process" in r.getMessage()]
    assert len(stays) == 1 and "100 rows" in stays[0].getMessage()
    assert any("data-parallel on 2 Ray actors" in r.getMessage() for r in caplog.records)


def test_the_models_fit_through_the_seam(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = _FakeParallel()
    monkeypatch.setattr(engine_lightgbm, "train_data_parallel", fake)
    X, y = click_frame(800, 0)
    with lightgbm_data_parallel(2, min_rows=100):
        click = LightGBMClick(n_estimators=40, num_leaves=7, num_threads=1).fit(X, y)
        groups = np.arange(len(y)) // 8
        rank = LambdaRank(n_estimators=10, num_leaves=7).fit(X, y, groups)
    assert [c["rows"] for c in fake.calls] == [720, 800]  # LightGBMClick holds out 10%
    assert fake.calls[0]["valid"] is not None and fake.calls[0]["early_stopping_rounds"] == 30
    assert fake.calls[0]["categorical_feature"] == [2, 3, 4]
    assert fake.calls[1]["feature_name"] == ["d_x1", "d_x2"]
    assert click.best_iteration_ >= 1 and rank.best_iteration_ == 10


def test_one_worker_means_in_process(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = _FakeParallel()
    monkeypatch.setattr(engine_lightgbm, "train_data_parallel", fake)
    X, y, _ = _ranking()
    with lightgbm_data_parallel(1, min_rows=1) as state:
        fit_booster({**PARAMS, "objective": "binary"}, X, y, 5)
    assert fake.calls == [] and state.fits == 0
