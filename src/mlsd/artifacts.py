"""Artifacts on disk: one atomic writer and one run-directory layout for every system.

A run directory holds ``blueprint.md``, ``blueprint.html``, ``metrics.json``, ``figures/`` and
``artifacts/`` (what the server loads). Every file here is written to a temporary sibling and
renamed into place, so a reader (a server reloading, a crash mid-write) never sees half a file.
Artifacts carry no code: weights as state dicts or native formats, tables as Parquet, metadata
as JSON.
"""

from __future__ import annotations

import json
import math
import os
import pickle
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

T = TypeVar("T")

ARTIFACTS = "artifacts"
METRICS = "metrics.json"


def artifacts_dir_of(run_dir: Path) -> Path:
    """The ``artifacts/`` folder of a run directory, or ``run_dir`` itself when it is an
    artifacts folder (named ``artifacts``, or holding files but no ``artifacts/``). A missing
    folder is returned as ``run_dir/artifacts``, so the loader's error names the file it
    looked for."""
    run_dir = Path(run_dir)
    inner = run_dir / ARTIFACTS
    if inner.is_dir():
        return inner
    if run_dir.is_dir() and (
        run_dir.name == ARTIFACTS or any(p.is_file() for p in run_dir.iterdir())
    ):
        return run_dir
    return inner


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary sibling of ``path`` to write; rename it onto ``path`` on success.

    On an exception the temporary file is removed and ``path`` is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        yield tmp
        tmp.replace(path)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_bytes(path: Path, data: bytes) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return path


def write_text(path: Path, text: str) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return path


def write_json(path: Path, obj: Any) -> Path:
    """``obj`` as indented JSON (numpy values, Paths converted; NaN becomes null), atomically."""
    return write_text(path, json.dumps(to_jsonable(obj), indent=2, allow_nan=False) + "\n")


def write_npy(path: Path, array: np.ndarray) -> Path:
    with atomic_path(path) as tmp, tmp.open("wb") as fh:
        np.save(fh, array, allow_pickle=False)
    return path


def write_pickle(path: Path, obj: object) -> Path:
    """``obj`` pickled, atomically. Only for models whose library has no format of its own
    (a scikit-learn estimator holding a LightGBM booster); load only files you wrote."""
    with atomic_path(path) as tmp, tmp.open("wb") as fh:
        pickle.dump(obj, fh, protocol=pickle.HIGHEST_PROTOCOL)
    return path


def read_pickle(path: Path, cls: type[T]) -> T:
    """The object pickled at ``path``; :class:`TypeError` naming the file if it is not a
    ``cls``."""
    with Path(path).open("rb") as fh:
        obj: Any = pickle.load(fh)
    if not isinstance(obj, cls):
        raise TypeError(f"{path} holds a {type(obj).__name__}, not a {cls.__name__}")
    return obj


def to_jsonable(value: Any) -> Any:
    """Numpy scalars and arrays, Paths and NaN made JSON-safe (NaN becomes null)."""
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return [to_jsonable(v) for v in value.tolist()]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Path):
        return str(value)
    return value
