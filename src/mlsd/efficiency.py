"""Step 6 of the book, serving: making a model cheaper to serve, measured.

The chapters' efficiency techniques, generic over any ``torch.nn.Module``:

* :func:`prune`: magnitude pruning, the smallest weights of the linear layers set to zero
  (global L1 over all of them, made permanent), :func:`sparsity` to check it;
* :func:`quantize_dynamic`: dynamic int8 quantisation of the linear layers (weights stored as
  int8, activations quantised on the fly), ``torch.ao.quantization.quantize_dynamic``;
* :func:`export_onnx` and :class:`OnnxModule`: the network exported to ONNX (a data file: a
  protobuf graph with its weights, no code) and run with onnxruntime behind the same
  ``forward`` as the original, so a system's estimator serves it unchanged;
* :func:`distill`: knowledge distillation (Hinton et al. 2015), a small student trained on the
  teacher's outputs with :mod:`mlsd.training`'s loop.

A system turns these into variants of its most accurate deep model, scores each on its own
validation and test rows, times each on its own serving path, and hands the figures to
:func:`efficiency_table` (:mod:`mlsd.efficiency_table`): one table of accuracy, size and p99,
and what the latency rule would now serve. onnx / onnxruntime are imported only when used.
"""

from __future__ import annotations

import copy
import io
import logging
import re
import tempfile
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from mlsd.artifacts import atomic_path
from mlsd.training import TrainHistory, fit_torch

log = logging.getLogger(__name__)

PRUNABLE: tuple[type[nn.Module], ...] = (nn.Linear, nn.Conv1d, nn.Conv2d)


def _weights(model: nn.Module, kinds: tuple[type[nn.Module], ...]) -> list[nn.Module]:
    return [m for m in model.modules() if isinstance(m, kinds)]


def prune(
    model: nn.Module, amount: float, *, kinds: tuple[type[nn.Module], ...] = PRUNABLE
) -> nn.Module:
    """A copy of ``model`` whose ``amount`` (a share) smallest-magnitude weights of its ``kinds``
    layers are zero: global L1 unstructured pruning over all of them, made permanent (plain
    weight tensors again, so the copy saves and loads as the original does). Biases are kept."""
    from torch.nn.utils import prune as torch_prune

    if not 0.0 <= amount < 1.0:
        raise ValueError(f"prune: amount must be in [0, 1), got {amount}")
    pruned = copy.deepcopy(model).eval()
    layers = _weights(pruned, kinds)
    if not layers:
        raise ValueError(f"prune: the model has no {[k.__name__ for k in kinds]} layers")
    params = [(m, "weight") for m in layers]
    torch_prune.global_unstructured(params, torch_prune.L1Unstructured, amount=amount)
    for m, name in params:
        torch_prune.remove(m, name)
    return pruned


def sparsity(model: nn.Module, *, kinds: tuple[type[nn.Module], ...] = PRUNABLE) -> float:
    """The share of zero weights in ``model``'s ``kinds`` layers (biases not counted)."""
    weights = [m.weight for m in _weights(model, kinds) if isinstance(m.weight, torch.Tensor)]
    total = sum(int(w.numel()) for w in weights)
    if total == 0:
        raise ValueError("sparsity: the model has no prunable weights")
    return float(sum(int((w == 0).sum()) for w in weights) / total)


def quantize_dynamic(model: nn.Module) -> nn.Module:
    """A copy of ``model`` with every ``nn.Linear`` dynamically quantised to int8 (CPU)."""
    if not _weights(model, (nn.Linear,)):
        raise ValueError("quantize_dynamic: the model has no nn.Linear layers")
    with warnings.catch_warnings():  # torch.ao.quantization announces its successor (torchao)
        warnings.simplefilter("ignore")
        return torch.ao.quantization.quantize_dynamic(
            copy.deepcopy(model).eval(), {nn.Linear}, dtype=torch.qint8
        )


def weights_bytes(model: nn.Module) -> int:
    """The size of the model's saved weights: its state dict, serialised."""
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.save(model.state_dict(), buf)
    return len(buf.getvalue())


def _tensors_in(value: Any) -> list[torch.Tensor]:
    """The tensors of a state-dict value (a quantised layer packs its weight and bias in a
    tuple)."""
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, tuple | list):
        return [t for v in value for t in _tensors_in(v)]
    return []


def sparse_bytes(model: nn.Module) -> int:
    """The size of the weights stored sparse where that is smaller: a float tensor costs
    ``min(dense bytes, non-zeros x (value + 4-byte index))``; what pruning saves on disk and in
    memory once the zeros are not stored."""
    total = 0
    for value in model.state_dict().values():
        for t in _tensors_in(value):
            dense = int(t.numel()) * t.element_size()
            if t.is_floating_point() and not t.is_quantized:
                total += min(dense, int((t != 0).sum()) * (t.element_size() + 4))
            else:
                total += dense
    return total


# ---- ONNX ------------------------------------------------------------------------------------
EXPORT_LOGGERS = ("onnxscript", "onnx_ir", "torch.onnx", "torch.export", "torch._dynamo")


@contextmanager
def _quiet(*names: str) -> Iterator[None]:
    """The exporter's own chatter (graph passes, optional operators it skips) kept out of the
    run's log; its errors still show."""
    loggers = [logging.getLogger(n) for n in names]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(max(lg.level, logging.ERROR))
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


def export_onnx(
    model: nn.Module,
    example_inputs: Sequence[torch.Tensor],
    path: Path,
    *,
    input_names: Sequence[str],
    output_names: Sequence[str] = ("output",),
) -> Path:
    """Export ``model`` (``forward(*inputs) -> one tensor``) to ONNX at ``path``, atomically,
    with a dynamic first (batch) dimension: the torch.export-based exporter (onnxscript)."""
    if len(input_names) != len(example_inputs):
        raise ValueError(
            f"export_onnx: {len(input_names)} input names for {len(example_inputs)} inputs"
        )
    from torch.export import Dim

    batch = Dim("batch")
    model = copy.deepcopy(model).eval()
    # a batch of one would be specialised to a constant: export with at least two rows
    example_inputs = [torch.cat([t, t]) if int(t.shape[0]) == 1 else t for t in example_inputs]
    with atomic_path(Path(path)) as tmp, warnings.catch_warnings(), _quiet(*EXPORT_LOGGERS):
        warnings.simplefilter("ignore")
        tmp_onnx = tmp.with_suffix(".onnx")  # the exporter insists on the suffix
        try:
            torch.onnx.export(
                model,
                tuple(example_inputs),
                str(tmp_onnx),
                input_names=list(input_names),
                output_names=list(output_names),
                dynamic_shapes=tuple({0: batch} for _ in example_inputs),
                dynamo=True,
                verbose=False,
                external_data=False,
            )
            tmp_onnx.replace(tmp)
        finally:
            tmp_onnx.unlink(missing_ok=True)
    return Path(path)


class OnnxModule(nn.Module):
    """An exported model run by onnxruntime behind the original ``forward``: tensors in, a
    tensor (or, for a model of several outputs, a tuple of them) out, so the estimator that
    served the torch network serves this one unchanged."""

    def __init__(self, path: Path, input_names: Sequence[str], threads: int = 1) -> None:
        super().__init__()
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads  # like the torch models: one thread by default
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        self.path = Path(path)
        self.input_names = list(input_names)
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.size_bytes = self.path.stat().st_size  # the file may go: the session holds the model

    def forward(self, *inputs: torch.Tensor) -> Any:
        feed = {n: t.detach().cpu().numpy() for n, t in zip(self.input_names, inputs, strict=True)}
        outs = [torch.from_numpy(np.asarray(o)) for o in self.session.run(None, feed)]
        return outs[0] if len(outs) == 1 else tuple(outs)

    def file_bytes(self) -> int:
        return self.size_bytes


# ---- distillation ----------------------------------------------------------------------------
Objective = str  # "binary": teacher logits of P(y=1); "regression": teacher scores, MSE


def distillation_loss(
    objective: Objective,
    temperature: float = 1.0,
    alpha: float = 1.0,
    *,
    with_labels: bool = False,
) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """The student's loss against ``target``: the teacher's outputs (any shape the student's
    outputs have) or, ``with_labels``, the teacher's outputs and the hard labels stacked on a
    last axis of 2. ``binary``: cross-entropy against the teacher's softened probabilities
    ``sigmoid(t / T)`` (times ``T²``, Hinton et al. 2015); ``regression``: mean squared error
    to the teacher's scores or logits (Ba & Caruana 2014). ``alpha`` weighs the teacher's part
    against the labels'."""
    if objective not in ("binary", "regression"):
        raise ValueError(f"distill: objective must be 'binary' or 'regression', not {objective!r}")
    if temperature <= 0 or not 0.0 <= alpha <= 1.0:
        raise ValueError(
            f"distill: need temperature > 0 and alpha in [0, 1], got {temperature}, {alpha}"
        )

    def loss(student: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        teacher = target[..., 0] if with_labels else target
        if objective == "binary":
            soft = F.binary_cross_entropy_with_logits(
                student / temperature, torch.sigmoid(teacher / temperature)
            ) * (temperature**2)
            hard = (
                F.binary_cross_entropy_with_logits(student, target[..., 1]) if with_labels else None
            )
        else:
            soft = F.mse_loss(student, teacher)
            hard = F.mse_loss(student, target[..., 1]) if with_labels else None
        return soft if hard is None else alpha * soft + (1.0 - alpha) * hard

    return loss


@dataclass(frozen=True)
class Distilled:
    """A trained student and its training history."""

    student: nn.Module
    history: TrainHistory


def distill(
    teacher_scores: torch.Tensor,
    student_factory: Callable[[], nn.Module],
    inputs: Sequence[torch.Tensor],
    *,
    objective: Objective = "binary",
    labels: torch.Tensor | None = None,
    temperature: float = 1.0,
    alpha: float = 1.0,
    epochs: int = 5,
    batch_size: int = 1024,
    lr: float = 3e-3,
    seed: int,
    val_share: float = 0.1,
    patience: int = 2,
    num_threads: int | None = None,
) -> Distilled:
    """Knowledge distillation: train ``student_factory()`` to reproduce ``teacher_scores`` (the
    teacher's logits or scores on the same training rows, ``(n,)`` or ``(n, heads)``, what the
    student's ``forward(*inputs)`` returns), through :func:`mlsd.training.fit_torch`, with
    ``labels`` (the same shape) mixed in by ``alpha``. A seeded ``val_share`` of the rows is
    held out for early stopping on the same loss."""
    scores = teacher_scores.detach().float()
    n = int(scores.shape[0])
    if n == 0 or any(int(t.shape[0]) != n for t in inputs):
        raise ValueError(
            f"distill: {n} teacher scores for inputs of {[len(t) for t in inputs]} rows"
        )
    target = (
        scores
        if labels is None
        else torch.stack([scores, labels.detach().float().reshape(scores.shape)], dim=-1)
    )
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    n_val = round(val_share * n) if n >= 20 else 0
    val_idx, train_idx = order[:n_val], order[n_val:]
    student = student_factory()
    history = fit_torch(
        student,
        [t[train_idx] for t in inputs],
        target[train_idx],
        loss_fn=distillation_loss(objective, temperature, alpha, with_labels=labels is not None),
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        seed=seed,
        val=([t[val_idx] for t in inputs], target[val_idx]) if n_val else None,
        patience=patience,
        num_threads=num_threads,
    )
    log.info("distilled a student in %d epochs (best %d)", history.epochs_run, history.best_epoch)
    return Distilled(student.eval(), history)


def parameter_count(model: nn.Module) -> int:
    """Parameters of a torch module (0 for an ONNX one, whose weights live in its file)."""
    return sum(int(p.numel()) for p in model.parameters())


# ---- the variants of one model ---------------------------------------------------------------
@dataclass(frozen=True)
class Variant:
    """One way of serving a model: the module, how it was made, and what its weights weigh."""

    name: str
    technique: str
    module: nn.Module
    size_bytes: int  # saved weights (the ONNX file for an ONNX variant)
    sparse_size_bytes: int  # the same stored sparse where that is smaller
    sparsity: float | None = None  # share of zero linear weights (pruned variants)

    @classmethod
    def of(cls, name: str, technique: str, module: nn.Module, **extra: Any) -> Variant:
        if isinstance(module, OnnxModule):
            size = module.file_bytes()
            return cls(name, technique, module, size, size, **extra)
        return cls(name, technique, module, weights_bytes(module), sparse_bytes(module), **extra)


Estimator = TypeVar("Estimator")


def with_network(
    teacher: Estimator, network: nn.Module, *, attribute: str = "network_", **params: object
) -> Estimator:
    """A shallow copy of the fitted estimator ``teacher`` whose ``attribute`` is ``network`` (a
    variant: pruned, int8, ONNX, distilled), with ``params`` set on the copy so that it
    describes the network it holds; the teacher is left as it was."""
    if not hasattr(teacher, attribute):
        raise AttributeError(f"with_network: {type(teacher).__name__} has no {attribute!r}")
    est = copy.copy(teacher)
    setattr(est, attribute, network)
    for key, value in params.items():
        setattr(est, key, value)
    return est


def compress(
    model: nn.Module,
    example_inputs: Sequence[torch.Tensor],
    onnx_path: Path | None = None,
    *,
    name: str,
    input_names: Sequence[str],
    output_names: Sequence[str] = ("output",),
    prune_amount: float = 0.5,
    threads: int = 1,
) -> dict[str, Variant]:
    """``name`` (the model as trained) and three cheaper ways to serve it, named
    ``name/pruned_<pct>`` (magnitude pruning of ``prune_amount`` of the linear and
    convolution weights), ``name/int8`` (dynamic int8 of the linear layers; left out for a
    model without any, e.g. a CNN: dynamic quantisation does not cover convolutions) and
    ``name/onnx`` (exported to ``onnx_path``, or to a temporary file removed once onnxruntime
    has loaded it, run with ``threads`` threads). Distillation needs training data, so the
    system adds its student with :func:`distill` and :meth:`Variant.of`."""
    model = model.eval()
    pruned = prune(model, prune_amount)
    pct = round(prune_amount * 100)
    with tempfile.TemporaryDirectory(prefix="mlsd-onnx-") as tmp:
        path = Path(onnx_path) if onnx_path is not None else Path(tmp) / f"{_safe(name)}.onnx"
        export_onnx(model, example_inputs, path, input_names=input_names, output_names=output_names)
        onnx = OnnxModule(path, input_names, threads=threads)
    variants = [
        Variant.of(name, "as trained (float32)", model),
        Variant.of(
            f"{name}/pruned_{pct}",
            f"magnitude pruning, {pct}% of weights zeroed",
            pruned,
            sparsity=sparsity(pruned),
        ),
        Variant.of(f"{name}/onnx", "ONNX export, run by onnxruntime", onnx),
    ]
    if _weights(model, (nn.Linear,)):
        technique = "dynamic int8 quantisation of linear layers"
        variants.insert(2, Variant.of(f"{name}/int8", technique, quantize_dynamic(model)))
    else:
        log.info("compress: %s has no linear layers; dynamic int8 does not apply", name)
    return {v.name: v for v in variants}


def _safe(name: str) -> str:
    """A file name from a model name (``dcn_v2/onnx`` -> ``dcn_v2_onnx``)."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name) or "model"
