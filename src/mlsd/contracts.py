"""The contract every model of every system meets, checked by one registry-driven test.

Like scikit-learn's ``parametrize_with_checks``: a system declares its models as
:class:`ModelCase` s in ``contract_cases()`` of its ``model.py``; ``tests/contract`` gathers
the cases of every system that runs (plus the framework's own models, :func:`framework_cases`)
and runs the same checks on each, so a new system's models join by registering, never by
writing a new test. The checks (see ``tests/contract/test_contracts.py``):

* ``__init__`` stores only its arguments (``get_params`` / ``clone`` round-trip; no learned
  ``*_`` attribute before ``fit``) and ``fit`` returns ``self``;
* the output has the declared shape and is finite;
* the same seed gives the same output (a clone fitted again), a different model is not needed;
* ``save`` then ``load`` gives the same output, and what ``save`` wrote is data: no file of it
  is a pickle and ``load`` never calls :mod:`pickle` (models save through
  :mod:`mlsd.model_io`: a directory of JSON, ``.npz`` arrays and native formats);
* per kind: click estimators return an ``(n, 2)`` probability layout and (the learners) beat the
  constant-rate baseline on held-out log loss; encoders return L2-normalised float32 rows.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mlsd.models import (
    ClickEstimator,
    ConstantRate,
    HistoricalCTR,
    LightGBMClick,
    NegativeDownsampled,
)
from mlsd.rng import rng

# "classifier": multi-label probabilities, (n, classes)
# "detector": (n, k, 6), each image's best boxes x, y, w, h, score, label
KINDS = ("click", "encoder", "retriever", "ranker", "classifier", "detector")


@dataclass(frozen=True)
class ModelCase:
    """One model under the contract: how to build it, fit it on tiny seeded data, read its
    output, and save and load it."""

    name: str
    kind: str  # one of KINDS
    make: Callable[[int], Any]  # seed -> an unfitted model
    data: Callable[[], Any]  # -> tiny seeded data (whatever ``fit`` and ``output`` take)
    fit: Callable[[Any, Any], Any]  # (model, data) -> what fit returned (must be the model)
    output: Callable[[Any, Any], np.ndarray]  # (fitted model, data) -> the array to compare
    shape: Callable[[Any, Any], tuple[int, ...]]  # (fitted model, data) -> the output's shape
    save: Callable[[Any, Path], None]
    load: Callable[[Path], Any]
    sklearn_params: bool = True  # get_params / clone apply (scikit-learn's estimator API)
    beats_baseline: bool = True  # click estimators: must beat the constant rate on log loss
    atol: float = 0.0  # save/load tolerance (0: identical)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"{self.name}: kind {self.kind!r} is not one of {KINDS}")


# ---- click estimators -------------------------------------------------------------------------
def click_frame(n: int, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    """A tiny feature frame: clicks depend on d_x1, on the ad, and on (c_a XOR c_b) parities."""
    r = rng(seed, "contract/click-frame")
    vocab = rng(7, "contract/click-vocab")  # the same hashed ids in every split
    ids_a, ids_b = vocab.integers(0, 2**20, 8), vocab.integers(0, 2**20, 8)
    ids_ad, ad_effect = vocab.integers(0, 2**20, 60), vocab.normal(0.0, 0.8, 60)
    a, b, ad = r.integers(0, 8, n), r.integers(0, 8, n), r.integers(0, 60, n)
    x1, x2 = r.normal(size=n), r.normal(size=n)
    logit = -1.2 + 0.9 * x1 + 1.5 * ((a % 2) ^ (b % 2)) + ad_effect[ad]
    y = (r.random(n) < 1.0 / (1.0 + np.exp(-logit))).astype(np.int64)
    X = pd.DataFrame(
        {"d_x1": x1, "d_x2": x2, "c_a": ids_a[a], "c_b": ids_b[b], "c_ad_id": ids_ad[ad]}
    )
    return X, y


ClickData = tuple[pd.DataFrame, np.ndarray, pd.DataFrame, np.ndarray]


def click_data() -> ClickData:
    """Train on 2,000 rows, test on 1,000 other rows of :func:`click_frame`."""
    return (*click_frame(2000, 0), *click_frame(1000, 1))


def click_case(
    name: str, make: Callable[[int], ClickEstimator], beats_baseline: bool = True
) -> ModelCase:
    """A :class:`~mlsd.models.ClickEstimator` under the contract, on :func:`click_data`."""

    def fit(model: ClickEstimator, d: ClickData) -> Any:
        return model.fit(d[0], d[1])

    return ModelCase(
        name=name,
        kind="click",
        make=make,
        data=click_data,
        fit=fit,
        output=lambda m, d: np.asarray(m.predict_proba(d[2])),
        shape=lambda m, d: (len(d[2]), 2),
        save=lambda m, path: m.save(path),
        load=lambda path: make(0).load(path),
        beats_baseline=beats_baseline,
    )


def _lgbm(seed: int) -> LightGBMClick:
    return LightGBMClick(
        n_estimators=60, learning_rate=0.1, min_child_samples=20, num_threads=1, random_state=seed
    )


def framework_cases() -> list[ModelCase]:
    """The framework's own models: the baselines, LightGBM and the downsampling wrapper."""
    return [
        click_case("constant_rate", lambda seed: ConstantRate(), beats_baseline=False),
        click_case("historical_ctr", lambda seed: HistoricalCTR(key="c_ad_id")),
        click_case("lightgbm", _lgbm),
        click_case(
            "downsampled_lightgbm",
            lambda seed: NegativeDownsampled(_lgbm(seed), rate=0.5, random_state=seed),
        ),
    ]
