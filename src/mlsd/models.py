"""Step 4 of the book, model development: one estimator contract for every model of every system.

The contract is scikit-learn's: ``__init__`` stores its arguments and nothing else; learned state
ends in ``_``; ``fit`` returns ``self``; ``predict_proba`` returns an ``(n, 2)`` array. mlsd adds
``save`` / ``load`` so that a run directory can be served. Feature frames follow one convention
so that any model runs on any system's features:

* columns named ``d_*`` are dense floats,
* columns named ``c_*`` are categorical ids, already hashed to ``int64`` in ``[0, HASH_BUCKETS)``.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any, Self

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin

HASH_BUCKETS = 2**20


def dense_columns(X: pd.DataFrame) -> list[str]:
    """The dense feature columns of a feature frame, in frame order."""
    return [c for c in X.columns if c.startswith("d_")]


def categorical_columns(X: pd.DataFrame) -> list[str]:
    """The hashed categorical feature columns of a feature frame, in frame order."""
    return [c for c in X.columns if c.startswith("c_")]


class ClickEstimator(ClassifierMixin, BaseEstimator):  # type: ignore[misc]
    """Base of every binary-probability model: the shared fit / predict / save / load contract."""

    classes_: np.ndarray

    def fit(self, X: pd.DataFrame, y: np.ndarray) -> Self:  # pragma: no cover - abstract
        raise NotImplementedError

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        return (self.predict_proba(X)[:, 1] >= 0.5).astype(np.int64)

    def save(self, path: Path) -> None:
        """Write the fitted model to ``path`` atomically (temp file, then rename)."""
        path = Path(path)
        tmp = path.with_suffix(path.suffix + ".tmp")
        with tmp.open("wb") as fh:
            pickle.dump(self, fh, protocol=pickle.HIGHEST_PROTOCOL)
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path) -> Self:
        with Path(path).open("rb") as fh:
            obj: Any = pickle.load(fh)
        if not isinstance(obj, cls):
            raise TypeError(f"{path} holds a {type(obj).__name__}, not a {cls.__name__}")
        return obj


def as_proba(p_click: np.ndarray) -> np.ndarray:
    """Turn a vector of click probabilities into scikit-learn's ``(n, 2)`` layout."""
    p = np.clip(np.asarray(p_click, dtype=np.float64), 1e-7, 1 - 1e-7)
    return np.column_stack([1.0 - p, p])
