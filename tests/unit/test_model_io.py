"""Models saved as data (mlsd.model_io): every value type round-trips, nothing unpickles, and a
file naming a class that is not registered, or a file outside the folder, is refused."""

from __future__ import annotations

import json
import pickle
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest
import torch
from scipy import sparse
from sklearn.base import BaseEstimator
from sklearn.decomposition import PCA
from torch import nn

from mlsd.artifacts import pickle_protocol
from mlsd.model_io import (
    VALUE_FILE,
    ModelFileError,
    SavedAsData,
    load_model,
    load_value,
    register_value_class,
    save_value,
)


@register_value_class
@dataclass
class _History:
    losses: list[float] = field(default_factory=list)
    best: int = -1


class _TinyNet(SavedAsData, BaseEstimator):  # type: ignore[misc]
    """A registered model holding a torch module, a booster and nested values."""

    def __init__(self, width: int = 3, sizes: tuple[int, ...] = (2, 1)) -> None:
        self.width = width
        self.sizes = sizes

    def fit(self) -> Self:
        gen = torch.Generator().manual_seed(0)
        self.net_ = nn.Linear(self.width, 1)
        with torch.no_grad():
            self.net_.weight.copy_(torch.randn(1, self.width, generator=gen))
        self.history_ = _History([0.5, float("nan")], 1)
        return self

    def _empty_module(self, name: str) -> Any:
        with torch.device("meta"):
            return nn.Linear(self.width, 1)


def _no_unpickling(*args: Any, **kwargs: Any) -> Any:
    raise AssertionError("pickle was called")


@pytest.fixture
def no_pickle(monkeypatch: pytest.MonkeyPatch) -> None:
    for attr in ("load", "loads", "Unpickler"):
        monkeypatch.setattr(pickle, attr, _no_unpickling)


def _booster() -> lgb.Booster:
    r = np.random.default_rng(0)
    X = r.normal(size=(300, 3))
    y = (X[:, 0] > 0).astype(int)
    return lgb.train({"objective": "binary", "verbosity": -1}, lgb.Dataset(X, y), 5)


def test_every_value_type_round_trips(tmp_path: Path) -> None:
    frame = pd.DataFrame({"a": [1, 2], "s": ["x", "y"]})
    booster = _booster()
    value = {
        "ints": [1, -2, 2**40],
        "floats": (0.1, float("inf"), float("-inf")),
        "nan": float("nan"),
        "text": "ü",
        "none": None,
        "by_int": {3: "three", (1, 2): "pair"},
        "__dunder": 1,
        "array": np.arange(6, dtype=np.int32).reshape(2, 3),
        "strings": np.array(["a", "bc"], dtype=object),
        "scalar": np.float32(1.5),
        "frame": frame,
        "csr": sparse.csr_matrix(np.eye(3)),
        "booster": booster,
        "history": _History([1.0, 2.0], 0),
        "pca": PCA(2).fit(np.random.default_rng(1).normal(size=(20, 4))),
    }
    save_value(value, tmp_path / "v")
    files = [p for p in (tmp_path / "v").iterdir()]
    assert not [p for p in files if pickle_protocol(p) is not None]
    back = load_value(tmp_path / "v")
    assert back["ints"] == [1, -2, 2**40] and back["floats"] == (0.1, float("inf"), float("-inf"))
    assert np.isnan(back["nan"]) and back["text"] == "ü" and back["none"] is None
    assert back["by_int"] == {3: "three", (1, 2): "pair"} and back["__dunder"] == 1
    np.testing.assert_array_equal(back["array"], value["array"])
    assert back["array"].dtype == np.int32
    assert back["strings"].dtype == object and list(back["strings"]) == ["a", "bc"]
    assert isinstance(back["scalar"], np.float32) and back["scalar"] == 1.5
    pd.testing.assert_frame_equal(back["frame"], frame)
    assert (back["csr"] != value["csr"]).nnz == 0
    x = np.random.default_rng(2).normal(size=(10, 3))
    np.testing.assert_array_equal(back["booster"].predict(x), booster.predict(x))
    assert back["history"] == _History([1.0, 2.0], 0)
    y = np.random.default_rng(3).normal(size=(5, 4))
    np.testing.assert_array_equal(back["pca"].transform(y), value["pca"].transform(y))


def test_a_model_with_a_torch_module_loads_without_pickle(tmp_path: Path, no_pickle: None) -> None:
    model = _TinyNet(width=4, sizes=(3, 2)).fit()
    model.save(tmp_path / "m")
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["model.json", "net_.pt"]
    back = _TinyNet.load(tmp_path / "m")
    assert back.sizes == (3, 2) and back.history_.best == 1 and not back.net_.training
    x = torch.ones(2, 4)
    torch.testing.assert_close(back.net_(x), model.net_(x))
    with pytest.raises(ModelFileError, match="holds a _TinyNet, not a PCA"):
        load_model(tmp_path / "m", PCA)


def test_saving_an_unsupported_value_names_it(tmp_path: Path) -> None:
    with pytest.raises(ModelFileError, match=r"value\.bad: a builtins\.object"):
        save_value({"bad": object()}, tmp_path / "v")
    with pytest.raises(ModelFileError, match="not strings"):
        save_value({"mixed": np.array(["a", 1], dtype=object)}, tmp_path / "v")
    assert not (tmp_path / "v").exists()  # nothing half-written


def _rewrite(path: Path, edit: Any) -> None:
    doc = json.loads((path / VALUE_FILE).read_text())
    (path / VALUE_FILE).write_text(json.dumps(edit(doc)))


def test_loading_refuses_unregistered_classes_and_paths_outside_the_folder(
    tmp_path: Path, no_pickle: None
) -> None:
    path = tmp_path / "m"
    _TinyNet().fit().save(path)
    _rewrite(path, lambda d: d | {"value": d["value"] | {"__model__": "os.system"}})
    with pytest.raises(ModelFileError, match=r"'os\.system' is not a registered model"):
        load_value(path)
    _TinyNet().fit().save(path)
    _rewrite(path, lambda d: {**d, "value": {"__object__": "subprocess.Popen", "attributes": {}}})
    with pytest.raises(ModelFileError, match="not a registered"):
        load_value(path)
    _TinyNet().fit().save(path)
    (tmp_path / "outside.txt").write_text("x")
    _rewrite(path, lambda d: {**d, "value": {"__lightgbm__": "../outside.txt"}})
    with pytest.raises(ModelFileError, match="not a plain file name"):
        load_value(path)
    _rewrite(path, lambda d: {**d, "format": "pickle"})
    with pytest.raises(ModelFileError, match="'format'"):
        load_value(path)
    (path / VALUE_FILE).write_text("{")
    with pytest.raises(ModelFileError, match="unreadable saved model"):
        load_value(path)


def test_a_pickle_in_place_of_torch_weights_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "m"
    _TinyNet().fit().save(path)
    marker = tmp_path / "pwned"
    (path / "net_.pt").write_bytes(pickle.dumps(_Plant(marker), protocol=2))
    with pytest.raises(ModelFileError, match="unreadable torch weights"):
        _TinyNet.load(path)
    assert not marker.exists()


class _Plant:
    """Unpickling this creates ``marker``: the payload a planted model file would carry."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (Path.touch, (self.marker,))
