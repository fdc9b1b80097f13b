"""One contract, every model: the scikit-learn estimator rules plus mlsd's save / load.

Each model is fitted once per module on a tiny seeded frame with a learnable signal (a dense
effect, a per-id effect and an interaction of two categoricals) and checked for: clone and
get_params, fit returning self, the (n, 2) probability layout, save / load, determinism by seed,
and (for the learning models) beating the constant-rate baseline on held-out log loss.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.base import clone
from sklearn.metrics import log_loss

from mlsd.models import ClickEstimator, ConstantRate, HistoricalCTR, NegativeDownsampled
from mlsd.systems.ad_click.model import DCNv2, HashedLogisticRegression, LightGBMCTR

torch.set_num_threads(1)


def make_frame(n: int, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    """A tiny feature frame: clicks depend on d_x1, on the ad, and on (c_a XOR c_b) parities."""
    rng = np.random.default_rng(seed)
    vocab = np.random.default_rng(7)  # the same hashed ids in every split
    ids_a, ids_b = vocab.integers(0, 2**20, 8), vocab.integers(0, 2**20, 8)
    ids_ad, ad_effect = vocab.integers(0, 2**20, 60), vocab.normal(0.0, 0.8, 60)
    a, b, ad = rng.integers(0, 8, n), rng.integers(0, 8, n), rng.integers(0, 60, n)
    x1, x2 = rng.normal(size=n), rng.normal(size=n)
    logit = -1.2 + 0.9 * x1 + 1.5 * ((a % 2) ^ (b % 2)) + ad_effect[ad]
    y = (rng.random(n) < 1.0 / (1.0 + np.exp(-logit))).astype(np.int64)
    X = pd.DataFrame(
        {"d_x1": x1, "d_x2": x2, "c_a": ids_a[a], "c_b": ids_b[b], "c_ad_id": ids_ad[ad]}
    )
    return X, y


def _lgbm() -> LightGBMCTR:
    return LightGBMCTR(n_estimators=60, learning_rate=0.1, min_child_samples=20, num_threads=1)


MODELS: dict[str, Callable[[int], ClickEstimator]] = {
    "constant_rate": lambda seed: ConstantRate(),
    "historical_ctr": lambda seed: HistoricalCTR(key="c_ad_id"),
    "downsampled_lightgbm": lambda seed: NegativeDownsampled(
        _lgbm().set_params(random_state=seed), rate=0.5, random_state=seed
    ),
    "logistic_regression": lambda seed: HashedLogisticRegression(n_bits=12, random_state=seed),
    "lightgbm": lambda seed: _lgbm().set_params(random_state=seed),
    "dcn_v2": lambda seed: DCNv2(
        embedding_dim=4,
        deep_layers=(16,),
        field_buckets=2**10,
        epochs=4,
        batch_size=128,
        lr=1e-2,
        num_threads=1,
        random_state=seed,
    ),
}


@pytest.fixture(scope="module")
def data() -> tuple[pd.DataFrame, np.ndarray, pd.DataFrame, np.ndarray]:
    X_train, y_train = make_frame(2000, seed=0)
    X_test, y_test = make_frame(1000, seed=1)
    return X_train, y_train, X_test, y_test


@pytest.fixture(scope="module")
def baseline_loss(data: tuple[pd.DataFrame, np.ndarray, pd.DataFrame, np.ndarray]) -> float:
    X_train, y_train, X_test, y_test = data
    return float(log_loss(y_test, ConstantRate().fit(X_train, y_train).predict_proba(X_test)))


@pytest.mark.parametrize("name", sorted(MODELS))
def test_estimator_contract(
    name: str,
    data: tuple[pd.DataFrame, np.ndarray, pd.DataFrame, np.ndarray],
    baseline_loss: float,
    tmp_path: Path,
) -> None:
    X_train, y_train, X_test, y_test = data
    model = MODELS[name](3)

    # __init__ stores only its arguments: clone and get_params round-trip
    params = model.get_params(deep=False)
    twin = clone(model)
    assert type(twin) is type(model)
    assert twin.get_params(deep=False).keys() == params.keys()
    assert type(model)(**params).get_params(deep=False).keys() == params.keys()
    assert not [k for k in vars(model) if k.endswith("_")], "unfitted model holds learned state"

    assert model.fit(X_train, y_train) is model
    assert list(model.classes_) == [0, 1]
    proba = model.predict_proba(X_test)
    assert proba.shape == (len(X_test), 2)
    assert np.all((proba >= 0.0) & (proba <= 1.0))
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-9)
    assert set(np.unique(model.predict(X_test))) <= {0, 1}

    # save -> load gives identical predictions
    path = tmp_path / f"{name}.pkl"
    model.save(path)
    loaded = type(model).load(path)
    np.testing.assert_array_equal(loaded.predict_proba(X_test), proba)

    # same seed, same predictions (fitting a clone of the unfitted model)
    again = clone(twin).fit(X_train, y_train)
    np.testing.assert_array_equal(again.predict_proba(X_test), proba)

    if name != "constant_rate":
        loss = float(log_loss(y_test, proba))
        assert loss < baseline_loss, f"{name}: {loss:.4f} does not beat {baseline_loss:.4f}"


def test_load_rejects_another_class(tmp_path: Path) -> None:
    X, y = make_frame(200, seed=5)
    path = tmp_path / "constant.pkl"
    ConstantRate().fit(X, y).save(path)
    with pytest.raises(TypeError, match="ConstantRate"):
        HistoricalCTR.load(path)


@pytest.mark.parametrize("name", ["historical_ctr", "logistic_regression", "lightgbm"])
def test_bad_labels_are_rejected(name: str) -> None:
    X, y = make_frame(100, seed=6)
    y = y.copy()
    y[4] = 2
    with pytest.raises(ValueError, match="row 4"):
        MODELS[name](0).fit(X, y)
