"""Models saved as data, never as code: the one file format of every fitted model of mlsd.

A pickle runs code when it is read, so nothing in a run directory is one. A saved model (or any
value made of the types below) is a directory:

    model.json     {"format": "mlsd-saved", "version": 1, "value": ...}
    arrays.npz     every numpy array, read back with ``allow_pickle=False``
    <name>.txt     a LightGBM booster in LightGBM's own text format
    <name>.pt      a torch module's state dict, read back with ``weights_only=True``
    <name>.parquet a pandas DataFrame

``value`` is JSON. A model is ``{"__model__": class, "params": ..., "state": ...}``: its
scikit-learn constructor arguments (``get_params(deep=False)``) and every other instance
attribute (the learned ``*_`` ones). Tuples, dicts with keys that are not strings, and
non-finite floats are tagged; numpy arrays and scalars, boosters, torch modules, DataFrames and
sparse matrices point to their files; allow-listed plain objects (a scikit-learn PCA or
LogisticRegression, a dataclass such as ``TrainHistory``) are written attribute by attribute.

Loading never imports what a file names: a class is looked up among those registered here
(every :class:`SavedAsData` subclass registers itself, e.g. each ``ClickEstimator``; plain
objects register with :func:`register_value_class`), and a name that is not registered is
refused. A torch module is rebuilt empty by its owner (:meth:`SavedAsData._empty_module`) and
then filled from the state dict.
"""

from __future__ import annotations

import json
import math
import re
import sys
from pathlib import Path
from typing import Any, Self, TypeVar

import numpy as np
from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegression

from mlsd.artifacts import atomic_dir, atomic_path, write_json

T = TypeVar("T")

FORMAT = "mlsd-saved"
VALUE_FILE = "model.json"
ARRAYS_FILE = "arrays.npz"
_SAFE_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")
_MODELS: dict[str, type] = {}
_VALUE_CLASSES: dict[str, type] = {}


class ModelFileError(ValueError):
    """A saved model cannot be written or read back; the message names the file and field."""


def class_key(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def register_model(cls: type[T]) -> type[T]:
    """Make ``cls`` (a scikit-learn style estimator) loadable; returns it (a decorator)."""
    _MODELS[class_key(cls)] = cls
    return cls


def register_value_class(cls: type[T]) -> type[T]:
    """Make instances of ``cls`` (a dataclass or a scikit-learn estimator whose state is made of
    the supported types) savable attribute by attribute; returns it (a decorator)."""
    _VALUE_CLASSES[class_key(cls)] = cls
    return cls


class SavedAsData:
    """Mixin of every model class: ``save`` / ``load`` in the format above; subclasses
    register themselves."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        register_model(cls)

    def save(self, path: Path) -> None:
        """Write the model to the directory ``path``, atomically (a temporary sibling renamed
        into place)."""
        save_value(self, Path(path))

    @classmethod
    def load(cls, path: Path) -> Self:
        """The model saved at ``path``; :class:`ModelFileError` if it is not a ``cls``."""
        return load_model(Path(path), cls)

    def _empty_module(self, name: str) -> Any:
        """An empty torch module to load the state dict of attribute ``name`` into (the
        attributes it depends on are already restored)."""
        raise ModelFileError(f"{type(self).__name__} cannot rebuild its torch module {name!r}")


def save_value(value: Any, directory: Path) -> None:
    """Write ``value`` (a registered model, or a dict / list of supported values) as a saved
    directory, atomically."""
    with atomic_dir(Path(directory)) as tmp:
        writer = _Writer(tmp)
        encoded = writer.encode(value, "value")
        if writer.arrays:
            with atomic_path(tmp / ARRAYS_FILE) as part, part.open("wb") as fh:
                np.savez(fh, allow_pickle=False, **writer.arrays)
        write_json(tmp / VALUE_FILE, {"format": FORMAT, "version": 1, "value": encoded})


def load_value(directory: Path) -> Any:
    """The value saved in ``directory``; :class:`ModelFileError` naming the file otherwise."""
    directory = Path(directory)
    path = directory / VALUE_FILE
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise ModelFileError(f"{path}: unreadable saved model: {exc}") from exc
    if not isinstance(doc, dict) or doc.get("format") != FORMAT or doc.get("version") != 1:
        raise ModelFileError(f"{path}: field 'format' is not {FORMAT!r} version 1")
    try:
        return _Reader(directory).decode(doc.get("value"), "value")
    except ModelFileError:
        raise
    except (KeyError, IndexError, TypeError, AttributeError, ValueError, RecursionError) as exc:
        raise ModelFileError(f"{path}: malformed saved value: {exc!r}") from exc


def load_model(directory: Path, base: type[T]) -> T:
    """The model saved in ``directory``, checked to be a ``base``."""
    value = load_value(directory)
    if not isinstance(value, base):
        raise ModelFileError(
            f"{Path(directory) / VALUE_FILE}: holds a {type(value).__name__}, not a {base.__name__}"
        )
    return value


def _module(name: str) -> Any:
    """A library module if it is already imported (a value of its types can exist only then)."""
    return sys.modules.get(name)


def _is_torch_module(value: Any) -> bool:
    torch = _module("torch")
    return torch is not None and isinstance(value, torch.nn.Module)


def _is_booster(value: Any) -> bool:
    lgb = _module("lightgbm")
    return lgb is not None and isinstance(value, lgb.Booster)


def _is_sparse(value: Any) -> bool:
    sparse = _module("scipy.sparse")
    return sparse is not None and isinstance(value, sparse.csr_matrix | sparse.csr_array)


def _is_frame(value: Any) -> bool:
    pd = _module("pandas")
    return pd is not None and isinstance(value, pd.DataFrame)


class _Writer:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.arrays: dict[str, np.ndarray] = {}
        self.names: set[str] = set()

    def file_name(self, where: str, suffix: str) -> str:
        name = re.sub(r"[^A-Za-z0-9_.-]", "_", where.removeprefix("value.")) + suffix
        while name in self.names:
            name = "_" + name
        self.names.add(name)
        return name

    def array(self, value: np.ndarray, where: str) -> dict[str, Any]:
        key = where
        while key in self.arrays:  # a dict key with a dot could repeat a path
            key += "_"
        out: dict[str, Any] = {"__array__": key}
        if value.dtype == object:
            if not all(isinstance(v, str) for v in value.ravel()):
                raise ModelFileError(f"cannot save {where}: an object array that is not strings")
            value, out["object"] = value.astype(str), True
        self.arrays[key] = value
        return out

    def encode(self, value: Any, where: str) -> Any:
        if value is None or isinstance(value, bool | int | str):
            return value
        if isinstance(value, float):
            return value if math.isfinite(value) else {"__float__": repr(value)}
        if isinstance(value, np.ndarray):
            return self.array(value, where)
        if isinstance(value, np.generic):
            return self.array(np.asarray(value), where) | {"scalar": True}
        if isinstance(value, tuple):
            return {"__tuple__": [self.encode(v, f"{where}.{i}") for i, v in enumerate(value)]}
        if isinstance(value, list):
            return [self.encode(v, f"{where}.{i}") for i, v in enumerate(value)]
        if isinstance(value, dict):
            return self.encode_dict(value, where)
        if class_key(type(value)) in _MODELS:
            return self.encode_model(value, where)
        if class_key(type(value)) in _VALUE_CLASSES:
            attrs = self.encode_dict(dict(vars(value)), where)
            return {"__object__": class_key(type(value)), "attributes": attrs}
        return self.encode_native(value, where)

    def encode_dict(self, value: dict[Any, Any], where: str) -> Any:
        if all(isinstance(k, str) and not k.startswith("__") for k in value):
            return {k: self.encode(v, f"{where}.{k}") for k, v in value.items()}
        items = [
            [self.encode(k, f"{where}.key{i}"), self.encode(v, f"{where}.{i}")]
            for i, (k, v) in enumerate(value.items())
        ]
        return {"__dict__": items}

    def encode_model(self, model: Any, where: str) -> dict[str, Any]:
        params = model.get_params(deep=False) if hasattr(model, "get_params") else {}
        state: dict[str, Any] = {}
        for name, v in vars(model).items():
            if name in params:
                continue
            if _is_torch_module(v):
                state[name] = {"__torch__": self.torch(v, f"{where}.{name}")}
            else:
                state[name] = self.encode(v, f"{where}.{name}")
        return {
            "__model__": class_key(type(model)),
            "params": self.encode_dict(params, f"{where}.params"),
            "state": state,
        }

    def torch(self, module: Any, where: str) -> str:
        import torch

        name = self.file_name(where, ".pt")
        with atomic_path(self.directory / name) as tmp:
            torch.save(module.state_dict(), tmp)
        return name

    def encode_native(self, value: Any, where: str) -> dict[str, Any]:
        if _is_booster(value):
            name = self.file_name(where, ".txt")
            with atomic_path(self.directory / name) as tmp:
                value.save_model(str(tmp), num_iteration=-1)
            return {"__lightgbm__": name}
        if _is_frame(value):
            name = self.file_name(where, ".parquet")
            with atomic_path(self.directory / name) as tmp:
                value.to_parquet(tmp)
            return {"__parquet__": name}
        if _is_sparse(value):
            csr = value.tocsr()
            parts = {"data": csr.data, "indices": csr.indices, "indptr": csr.indptr}
            encoded = {k: self.array(np.asarray(v), f"{where}.{k}") for k, v in parts.items()}
            return {"__csr__": encoded, "shape": [int(n) for n in csr.shape]}
        if _is_torch_module(value):
            raise ModelFileError(f"cannot save {where}: a torch module must be a model attribute")
        raise ModelFileError(
            f"cannot save {where}: a {type(value).__module__}.{type(value).__qualname__} is "
            "not a supported value (register its class, or store arrays and JSON values)"
        )


class _Reader:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.json = directory / VALUE_FILE
        self._arrays: dict[str, np.ndarray] | None = None

    def fail(self, where: str, why: str) -> ModelFileError:
        return ModelFileError(f"{self.json}: field {where!r}: {why}")

    def file(self, name: Any, where: str) -> Path:
        if not isinstance(name, str) or not _SAFE_NAME.match(name):
            raise self.fail(where, f"{name!r} is not a plain file name")
        path = self.directory / name
        if not path.is_file():
            raise ModelFileError(f"{path}: missing (named by {self.json}, field {where!r})")
        return path

    def array(self, key: Any, where: str) -> np.ndarray:
        if self._arrays is None:
            path = self.directory / ARRAYS_FILE
            try:
                with np.load(path, allow_pickle=False) as z:
                    self._arrays = {k: z[k] for k in z.files}
            except (OSError, ValueError, EOFError) as exc:
                raise ModelFileError(f"{path}: unreadable arrays: {exc}") from exc
        if not isinstance(key, str) or key not in self._arrays:
            raise self.fail(where, f"array {key!r} is not in {ARRAYS_FILE}")
        return self._arrays[key]

    def decode(self, value: Any, where: str) -> Any:
        if value is None or isinstance(value, bool | int | float | str):
            return value
        if isinstance(value, list):
            return [self.decode(v, f"{where}.{i}") for i, v in enumerate(value)]
        if not isinstance(value, dict):
            raise self.fail(where, f"unexpected {type(value).__name__}")
        if "__array__" in value:
            arr = self.array(value["__array__"], where)
            if value.get("object"):
                arr = arr.astype(object)
            return arr[()] if value.get("scalar") else arr
        if "__float__" in value:
            if value["__float__"] not in ("nan", "inf", "-inf"):
                raise self.fail(where, f"bad float {value['__float__']!r}")
            return float(value["__float__"])
        if "__tuple__" in value:
            return tuple(self.decode(value["__tuple__"], where))
        if "__dict__" in value:
            return {self.decode(k, where): self.decode(v, where) for k, v in value["__dict__"]}
        if "__model__" in value:
            return self.decode_model(value, where)
        if "__object__" in value:
            return self.decode_object(value, where)
        if any(k.startswith("__") for k in value):
            return self.decode_native(value, where)
        return {k: self.decode(v, f"{where}.{k}") for k, v in value.items()}

    def lookup(self, registry: dict[str, type], name: Any, where: str) -> type:
        if not isinstance(name, str) or name not in registry:
            raise self.fail(
                where, f"class {name!r} is not a registered model or value class of mlsd"
            )
        return registry[name]

    def decode_model(self, value: dict[str, Any], where: str) -> Any:
        cls = self.lookup(_MODELS, value["__model__"], where)
        params = self.decode(value.get("params", {}), f"{where}.params")
        try:
            model = cls(**params)
        except TypeError as exc:
            raise self.fail(where, f"parameters do not fit {cls.__name__}: {exc}") from exc
        state = value.get("state", {})
        if not isinstance(state, dict):
            raise self.fail(where, "'state' is not an object")
        modules = {}
        for name, v in state.items():
            if isinstance(v, dict) and "__torch__" in v:
                modules[name] = self.file(v["__torch__"], f"{where}.{name}")
            else:
                setattr(model, name, self.decode(v, f"{where}.{name}"))
        for name, path in modules.items():
            setattr(model, name, self.torch(model, name, path))
        return model

    def torch(self, model: Any, name: str, path: Path) -> Any:
        import torch

        module = model._empty_module(name)
        try:
            weights = torch.load(path, map_location="cpu", weights_only=True)
            module.load_state_dict(weights, assign=True)
        except Exception as exc:  # a damaged or foreign state dict, whatever torch raises
            raise ModelFileError(f"{path}: unreadable torch weights: {exc}") from exc
        return module.eval()

    def decode_object(self, value: dict[str, Any], where: str) -> Any:
        cls = self.lookup(_VALUE_CLASSES, value["__object__"], where)
        attrs = self.decode(value.get("attributes", {}), f"{where}.attributes")
        if not isinstance(attrs, dict):
            raise self.fail(where, "'attributes' is not an object")
        obj: Any = object.__new__(cls)  # as unpickling does, but from attributes that are data
        obj.__dict__.update(attrs)
        return obj

    def decode_native(self, value: dict[str, Any], where: str) -> Any:
        if "__lightgbm__" in value:
            import lightgbm as lgb

            path = self.file(value["__lightgbm__"], where)
            try:
                return lgb.Booster(model_str=path.read_text(encoding="utf-8"))
            except (lgb.basic.LightGBMError, UnicodeDecodeError) as exc:
                raise ModelFileError(f"{path}: unreadable LightGBM model: {exc}") from exc
        if "__parquet__" in value:
            import pandas as pd

            path = self.file(value["__parquet__"], where)
            try:
                return pd.read_parquet(path)
            except (OSError, ValueError) as exc:
                raise ModelFileError(f"{path}: unreadable Parquet table: {exc}") from exc
        if "__csr__" in value:
            from scipy import sparse

            parts = {k: self.decode(v, where) for k, v in value["__csr__"].items()}
            shape = tuple(int(n) for n in value.get("shape", ()))
            try:
                return sparse.csr_matrix((parts["data"], parts["indices"], parts["indptr"]), shape)
            except (KeyError, ValueError, TypeError) as exc:
                raise self.fail(where, f"not a sparse matrix: {exc}") from exc
        raise self.fail(where, f"unknown tag {sorted(value)}")


# the scikit-learn estimators the models hold, saved attribute by attribute
for _cls in (PCA, LogisticRegression):
    register_value_class(_cls)
