"""One contract, every model of every system (see :mod:`mlsd.contracts`).

The cases come from the framework and from ``contract_cases()`` in the ``model.py`` of every
system that runs; a new system's models join by registering there.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.metrics import log_loss

from mlsd.artifacts import pickle_protocol
from mlsd.contracts import ModelCase, click_data, framework_cases
from mlsd.model_io import ModelFileError
from mlsd.models import ConstantRate, HistoricalCTR
from mlsd.systems import SYSTEMS

torch.set_num_threads(1)


def all_cases() -> list[ModelCase]:
    cases = framework_cases()
    for info in SYSTEMS.values():
        if info.package is not None:
            cases += info.module("model").contract_cases()
    return cases


CASES = {case.name: case for case in all_cases()}
_DATA: dict[str, Any] = {}  # each case's data, built once per worker


def _data(case: ModelCase) -> Any:
    if case.name not in _DATA:
        _DATA[case.name] = case.data()
    return _DATA[case.name]


def test_every_running_system_registers_models() -> None:
    for info in SYSTEMS.values():
        if info.package is not None:
            assert info.module("model").contract_cases(), f"{info.name} registers no model"
    assert len(CASES) == len(all_cases()), "two contract cases share a name"


@pytest.mark.parametrize("name", sorted(CASES))
def test_model_contract(name: str, tmp_path: Path) -> None:
    case = CASES[name]
    data = _data(case)
    model = case.make(3)

    if case.sklearn_params:  # __init__ stores only its arguments: clone and get_params agree
        params = model.get_params(deep=False)
        twin = clone(model)
        assert type(twin) is type(model)
        assert twin.get_params(deep=False).keys() == params.keys()
        assert type(model)(**params).get_params(deep=False).keys() == params.keys()
    assert not [k for k in vars(model) if k.endswith("_") and not k.startswith("_")], (
        "an unfitted model holds learned state"
    )

    assert case.fit(model, data) is model, "fit must return self"
    out = case.output(model, data)
    assert out.shape == case.shape(model, data)
    assert np.all(np.isfinite(out))

    # the same seed gives the same output
    again = case.make(3)
    case.fit(again, data)
    np.testing.assert_array_equal(case.output(again, data), out)

    # save -> load gives the same output, and the saved model is data: no file is a pickle, and
    # loading it unpickles nothing (torch's weights-only reader has an unpickler of its own)
    path = tmp_path / name
    case.save(model, path)
    files = [p for p in ([path] if path.is_file() else path.rglob("*")) if p.is_file()]
    assert files and not [p for p in files if pickle_protocol(p) is not None]
    with pytest.MonkeyPatch.context() as mp:
        for attr in ("load", "loads", "Unpickler"):
            mp.setattr(pickle, attr, _no_unpickling)
        loaded = case.load(path)
    np.testing.assert_allclose(case.output(loaded, data), out, rtol=0, atol=case.atol)

    if case.kind == "click":
        _check_click(case, out, data)
    elif case.kind == "encoder":
        assert out.dtype == np.float32
        np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)


def _no_unpickling(*args: Any, **kwargs: Any) -> Any:
    raise AssertionError("a model load called pickle")


def _check_click(case: ModelCase, proba: np.ndarray, data: Any) -> None:
    X_train, y_train, X_test, y_test = data
    assert list(case.make(0).fit(X_train, y_train).classes_) == [0, 1]
    assert np.all((proba >= 0.0) & (proba <= 1.0))
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-9)
    if case.beats_baseline:
        base = ConstantRate().fit(X_train, y_train).predict_proba(X_test)
        loss, base_loss = float(log_loss(y_test, proba)), float(log_loss(y_test, base))
        assert loss < base_loss, f"{case.name}: {loss:.4f} does not beat {base_loss:.4f}"


@pytest.mark.parametrize(
    "name", sorted(n for n, c in CASES.items() if c.kind == "click" and c.beats_baseline)
)
def test_click_estimators_reject_bad_labels(name: str) -> None:
    X, y, _, _ = click_data()
    X, y = X.iloc[:100], y[:100].copy()
    y[4] = 2
    with pytest.raises(ValueError, match="row 4"):
        CASES[name].make(0).fit(X, y)


def test_load_rejects_another_class(tmp_path: Path) -> None:
    X, y, _, _ = click_data()
    path = tmp_path / "constant"
    ConstantRate().fit(X, y).save(path)
    with pytest.raises(ModelFileError, match="holds a ConstantRate, not a HistoricalCTR"):
        HistoricalCTR.load(path)
