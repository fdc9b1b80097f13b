"""Ad click prediction, step 6: each served model as one call on a request's feature blocks.

A model's ``predict_proba`` takes a feature frame and converts it to its own input every call
(column selection, dtype casts, checks): on 100 candidates that costs more than the model's own
arithmetic. :func:`compile_model` reads a fitted model once and returns a :class:`ModelKernel`,
``p_click = kernel(dense, cat)`` on the contiguous blocks of :mod:`.serving_arrays`, with the
model's columns resolved to block positions at load:

* LightGBM (:class:`~mlsd.models.LightGBMClick`): its matrix (dense columns, category codes)
  built by gathers, then the booster's numpy predict on one thread;
* the deep models (DCN-v2, FM, DeepFM): int64 bucket ids and float32 dense values straight into
  the network under ``torch.inference_mode()`` or, where measured faster at load
  (:func:`choose_runtime`), the network exported to ONNX and run by onnxruntime;
* logistic regression on hashed features and the historical-CTR baseline: their arithmetic in
  numpy (a weight gather and a dot product; a sorted-key look-up);
* :class:`~mlsd.models.NegativeDownsampled`: the inner kernel, then the re-calibration.

Every kernel gives what the model's ``predict_proba(frame)[:, 1]`` gives on the same rows (the
test holds them within 1e-6 for every model of the line-up). A model of any other kind keeps the
frame path (``runtime`` says ``frame``), correct and slower.
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mlsd.data import recalibrate_downsampled
from mlsd.models import ClickEstimator, HistoricalCTR, LightGBMClick, NegativeDownsampled
from mlsd.systems.ad_click.features import CATEGORICAL_FEATURES, DENSE_FEATURES
from mlsd.systems.ad_click.model import HashedLogisticRegression, _field_hash
from mlsd.systems.ad_click.model_deep import DeepClickModel
from mlsd.systems.ad_click.serving_arrays import CAT_INDEX, DENSE_INDEX

log = logging.getLogger(__name__)

Blocks = tuple[np.ndarray, np.ndarray]  # (dense, cat) of one request
AGREEMENT = 1e-6  # a faster runtime is used only if its scores agree with torch's within this


def _clip(p: Any) -> np.ndarray:
    """As :func:`mlsd.models.as_proba` clips."""
    return np.minimum(np.maximum(np.asarray(p, dtype=np.float64), 1e-7), 1 - 1e-7)


@dataclass(frozen=True)
class ModelKernel:
    """``p_click = kernel(dense, cat)``; ``runtime`` names what computes it."""

    call: Callable[[np.ndarray, np.ndarray], np.ndarray]
    runtime: str

    def __call__(self, dense: np.ndarray, cat: np.ndarray) -> np.ndarray:
        return self.call(dense, cat)


class _UnsupportedError(Exception):
    """The model is not one :func:`compile_model` knows exactly: keep the frame path."""


def _dense_cols(names: Sequence[str]) -> np.ndarray:
    try:
        return np.array([DENSE_INDEX[c] for c in names], dtype=np.int64)
    except KeyError as exc:
        raise _UnsupportedError(f"dense column {exc} is not served") from exc


def _cat_cols(names: Sequence[str]) -> np.ndarray:
    try:
        return np.array([CAT_INDEX[c] for c in names], dtype=np.int64)
    except KeyError as exc:
        raise _UnsupportedError(f"categorical column {exc} is not served") from exc


def _frame_kernel(model: ClickEstimator, columns: Sequence[str]) -> ModelKernel:
    """Any model: the blocks back into a frame of the served columns, then ``predict_proba``."""
    names = list(columns)
    source = {c: ("dense", DENSE_INDEX[c]) for c in DENSE_FEATURES} | {
        c: ("cat", CAT_INDEX[c]) for c in CATEGORICAL_FEATURES
    }

    def call(dense: np.ndarray, cat: np.ndarray) -> np.ndarray:
        blocks = {"dense": dense, "cat": cat}
        frame = pd.DataFrame({c: blocks[source[c][0]][:, source[c][1]] for c in names})
        return np.asarray(model.predict_proba(frame)[:, 1], dtype=np.float64)

    return ModelKernel(call, "frame")


def _lightgbm(model: LightGBMClick) -> ModelKernel:
    dense_cols = _dense_cols(model.dense_)
    # per categorical: its block column, its kept values (sorted) and the last code
    cats = [
        (int(_cat_cols([c])[0]), np.asarray(v), max(len(v) - 1, 0))
        for c, v in model.categories_.items()
    ]
    n_dense, width = len(dense_cols), len(model.feature_names_)
    booster, best = model.booster_, model.best_iteration_

    def call(dense: np.ndarray, cat: np.ndarray) -> np.ndarray:
        matrix = np.empty((len(dense), width), dtype=np.float64)
        matrix[:, :n_dense] = dense[:, dense_cols]
        for j, (col, values, last) in enumerate(cats, start=n_dense):
            v = cat[:, col]
            codes = np.minimum(values.searchsorted(v), last)  # as LightGBMClick._matrix codes
            matrix[:, j] = np.where(values[codes] == v, codes, np.nan)
        return _clip(booster.predict(matrix, num_iteration=best, num_threads=1))

    return ModelKernel(call, "lightgbm")


def _deep_inputs(model: DeepClickModel) -> Callable[[np.ndarray, np.ndarray], Blocks]:
    cat_cols, dense_cols = _cat_cols(model.categorical_), _dense_cols(model.dense_)
    buckets = model.field_buckets

    def inputs(dense: np.ndarray, cat: np.ndarray) -> Blocks:
        return (
            np.ascontiguousarray(dense[:, dense_cols], dtype=np.float32),
            np.ascontiguousarray(cat[:, cat_cols] % buckets, dtype=np.int64),
        )

    return inputs


def _deep(model: DeepClickModel) -> ModelKernel:
    import torch

    inputs = _deep_inputs(model)
    network = model.network_.eval()
    a, b = model.platt_

    def call(dense: np.ndarray, cat: np.ndarray) -> np.ndarray:
        d, c = inputs(dense, cat)
        with torch.inference_mode():
            logits = network(torch.from_numpy(c), torch.from_numpy(d)).double().numpy()
        return _clip(1.0 / (1.0 + np.exp(-(a * logits + b))))

    return ModelKernel(call, "torch")


def _deep_onnx(model: DeepClickModel, folder: Path) -> ModelKernel:
    """The network exported to ONNX (:func:`mlsd.efficiency.export_onnx`) and run by one
    onnxruntime session (one thread, as the torch models serve)."""
    import onnxruntime as ort
    import torch

    from mlsd.efficiency import export_onnx

    inputs = _deep_inputs(model)
    n_cat, n_dense = len(model.categorical_), len(model.dense_)
    example = (torch.zeros((2, n_cat), dtype=torch.int64), torch.zeros((2, n_dense)))
    path = export_onnx(
        model.network_, example, folder / "network.onnx", input_names=("cat", "dense")
    )
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    a, b = model.platt_

    def call(dense: np.ndarray, cat: np.ndarray) -> np.ndarray:
        d, c = inputs(dense, cat)
        logits = np.asarray(session.run(None, {"cat": c, "dense": d})[0], dtype=np.float64)
        return _clip(1.0 / (1.0 + np.exp(-(a * logits.reshape(-1) + b))))

    return ModelKernel(call, "onnxruntime")


def _hashed_lr(model: HashedLogisticRegression) -> ModelKernel:
    cat_cols, dense_cols = _cat_cols(model.categorical_), _dense_cols(model.dense_)
    coef = np.asarray(model.model_.coef_[0], dtype=np.float64)
    intercept = float(model.model_.intercept_[0])
    n_buckets, n_bits = 1 << model.n_bits, model.n_bits
    dense_coef = coef[n_buckets:]
    mean, std = model.mean_, model.std_

    def call(dense: np.ndarray, cat: np.ndarray) -> np.ndarray:
        logit = np.full(len(dense), intercept)
        for j, col in enumerate(cat_cols):
            logit += coef[_field_hash(cat[:, col], j, n_bits)]
        if len(dense_cols):
            logit += np.nan_to_num((dense[:, dense_cols] - mean) / std) @ dense_coef
        return _clip(1.0 / (1.0 + np.exp(-logit)))

    return ModelKernel(call, "numpy")


def _historical(model: HistoricalCTR) -> ModelKernel:
    col = int(_cat_cols([model.key_])[0])
    keys, ctr, rate = model.keys_, model.ctr_, model.global_rate_

    def call(dense: np.ndarray, cat: np.ndarray) -> np.ndarray:
        values = cat[:, col]
        idx = np.clip(np.searchsorted(keys, values), 0, max(len(keys) - 1, 0))
        return _clip(np.where(keys[idx] == values, ctr[idx], rate))

    return ModelKernel(call, "numpy")


def _is_plain_deep(model: ClickEstimator) -> bool:
    """A deep model whose input and output steps are :class:`DeepClickModel`'s own."""
    cls = type(model)
    return isinstance(model, DeepClickModel) and all(
        getattr(cls, m) is getattr(DeepClickModel, m)
        for m in ("_tensors", "_logits", "predict_proba")
    )


def _compile(model: ClickEstimator) -> ModelKernel:
    kind = type(model)
    if kind is NegativeDownsampled:
        inner = _compile(model.estimator_)
        rate = model.rate

        def call(dense: np.ndarray, cat: np.ndarray) -> np.ndarray:
            return _clip(recalibrate_downsampled(inner(dense, cat), rate))

        return ModelKernel(call, inner.runtime)
    if kind is LightGBMClick:
        return _lightgbm(model)
    if kind is HashedLogisticRegression:
        return _hashed_lr(model)
    if kind is HistoricalCTR:
        return _historical(model)
    if _is_plain_deep(model):
        assert isinstance(model, DeepClickModel)
        return _deep(model)
    raise _UnsupportedError(f"no array kernel for {kind.__name__}")


def compile_model(model: ClickEstimator, columns: Sequence[str]) -> ModelKernel:
    """The array kernel of a fitted model, or the frame path over ``columns`` (the served
    feature columns, in the model's order) for a model of another kind."""
    try:
        return _compile(model)
    except _UnsupportedError as exc:
        log.info("%s: %s; scoring through its feature frame", type(model).__name__, exc)
        return _frame_kernel(model, columns)


def _deep_of(model: ClickEstimator) -> tuple[DeepClickModel | None, float | None]:
    """The plain deep model inside ``model`` (and the downsampling rate around it), if any."""
    rate = None
    if type(model) is NegativeDownsampled:
        model, rate = model.estimator_, model.rate
    return (model, rate) if _is_plain_deep(model) else (None, None)  # type: ignore[return-value]


def median_ms(kernel: ModelKernel, probe: Blocks, n: int = 60) -> float:
    """The median time of ``n`` calls of ``kernel`` on ``probe`` in ms (after 5 not counted)."""
    samples = []
    for j in range(n + 5):
        t0 = time.perf_counter()
        kernel(*probe)
        if j >= 5:
            samples.append(time.perf_counter() - t0)
    return float(np.median(samples) * 1e3)


def choose_runtime(model: ClickEstimator, torch_kernel: ModelKernel, probe: Blocks) -> ModelKernel:
    """For a deep model, torch or onnxruntime, whichever is faster on ``probe`` (a request's
    blocks), measured here, onnxruntime only where its scores agree with torch's within
    :data:`AGREEMENT`; any other model keeps ``torch_kernel``."""
    deep, rate = _deep_of(model)
    if deep is None or torch_kernel.runtime != "torch":
        return torch_kernel
    try:
        with tempfile.TemporaryDirectory(prefix="mlsd-serve-onnx-") as tmp:
            onnx = _deep_onnx(deep, Path(tmp))  # the session holds the model: the file may go
    except Exception as exc:  # any exporter failure leaves torch serving
        log.warning("ONNX export of %s failed, serving with torch: %s", type(deep).__name__, exc)
        return torch_kernel
    if rate is not None:
        inner, r = onnx, rate
        onnx = ModelKernel(
            lambda d, c: _clip(recalibrate_downsampled(inner(d, c), r)), "onnxruntime"
        )
    gap = float(np.max(np.abs(onnx(*probe) - torch_kernel(*probe))))
    t_torch, t_onnx = median_ms(torch_kernel, probe), median_ms(onnx, probe)
    use = onnx if gap <= AGREEMENT and t_onnx < t_torch else torch_kernel
    log.info(
        "%s: torch %.3f ms, onnxruntime %.3f ms (max gap %.1e) on %d rows: serving with %s",
        type(deep).__name__,
        t_torch,
        t_onnx,
        gap,
        len(probe[0]),
        use.runtime,
    )
    return use
