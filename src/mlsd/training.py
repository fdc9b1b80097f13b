"""Step 4 of the book, model development: the one PyTorch training loop of mlsd.

``train_loop`` trains any ``nn.Module`` on mini-batches from any source with any per-batch loss
(the DCN's log loss, the two-tower's in-batch softmax, the image encoder's InfoNCE on augmented
pairs); ``fit_torch`` is its supervised form for a module whose ``forward`` takes the feature
tensors and returns one logit per row. It is the loop the chapters describe (mini-batch
gradient descent with Adam, shuffled every epoch, early stopping on a held-out validation
loss) and records what the blueprint shows: per-epoch train / validation loss and throughput.

Determinism: shuffling uses a seeded ``torch.Generator`` and the whole loop runs inside
``torch.random.fork_rng()`` with ``torch.manual_seed(seed)`` (for dropout), so the caller's global
RNG state is left untouched. Torch's thread count is set only for the call and restored after.
"""

from __future__ import annotations

import copy
import logging
import math
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Protocol

import torch
from torch import nn

logger = logging.getLogger(__name__)

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
Progress = Callable[[int, float, float | None], None]


@dataclass
class TrainHistory:
    """What happened during training, epoch by epoch (0-based epochs)."""

    train_loss: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    step_loss: list[float] = field(default_factory=list)  # every optimiser step
    examples_per_second: list[float] = field(default_factory=list)
    best_epoch: int = -1
    stopped_early: bool = False

    @property
    def epochs_run(self) -> int:
        return len(self.train_loss)

    @property
    def best_val_loss(self) -> float | None:
        return self.val_loss[self.best_epoch] if self.val_loss and self.best_epoch >= 0 else None


@contextmanager
def torch_threads(num_threads: int | None) -> Iterator[None]:
    """Use ``num_threads`` intra-op threads inside the block; restore the previous count after."""
    if num_threads is None:
        yield
        return
    if num_threads < 1:
        raise ValueError(f"num_threads must be >= 1, got {num_threads}")
    previous = torch.get_num_threads()
    torch.set_num_threads(num_threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _check_tensors(tensors: Sequence[torch.Tensor], y: torch.Tensor, what: str) -> int:
    n = int(y.shape[0])
    for i, t in enumerate(tensors):
        if int(t.shape[0]) != n:
            raise ValueError(f"{what}: tensor {i} has {t.shape[0]} rows but the labels have {n}")
    return n


def _batch_loss(
    module: nn.Module,
    tensors: Sequence[torch.Tensor],
    y: torch.Tensor,
    loss_fn: LossFn,
    batch_size: int,
) -> float:
    """The mean loss over ``(tensors, y)``, in evaluation mode, without gradients."""
    module.eval()
    total, n = 0.0, int(y.shape[0])
    with torch.no_grad():
        for start in range(0, n, batch_size):
            batch = [t[start : start + batch_size] for t in tensors]
            target = y[start : start + batch_size]
            total += float(loss_fn(module(*batch), target)) * int(target.shape[0])
    return total / max(n, 1)


def make_optimizers(
    module: nn.Module, *, lr: float, weight_decay: float
) -> list[torch.optim.Optimizer]:
    """Adam for the dense parameters; SparseAdam for ``nn.Embedding(sparse=True)`` tables.

    Sparse gradients touch only the embedding rows a batch uses, which is what makes hashed id
    tables with millions of rows trainable on a CPU. SparseAdam applies no weight decay.
    """
    sparse = [
        p
        for m in module.modules()
        if isinstance(m, nn.Embedding) and m.sparse
        for p in m.parameters()
        if p.requires_grad
    ]
    sparse_ids = {id(p) for p in sparse}
    dense = [p for p in module.parameters() if p.requires_grad and id(p) not in sparse_ids]
    optimizers: list[torch.optim.Optimizer] = []
    if dense:
        optimizers.append(torch.optim.Adam(dense, lr=lr, weight_decay=weight_decay))
    if sparse:
        optimizers.append(torch.optim.SparseAdam(sparse, lr=lr))
    if not optimizers:
        raise ValueError("fit_torch: the module has no trainable parameters")
    return optimizers


Batch = tuple[torch.Tensor, ...]
#: ``batches(epoch, generator)``: the epoch's mini-batches, shuffled with ``generator``.
BatchSource = Callable[[int, torch.Generator], Iterable[Batch]]
#: ``loss(module, batch)``: the mean loss of one mini-batch (the module is called inside).
BatchLoss = Callable[[nn.Module, Batch], torch.Tensor]


@dataclass(frozen=True)
class LoopJob:
    """One call of :func:`train_loop`, as a data-parallel runner receives it (picklable when its
    callables are: closures over tensors pickle with cloudpickle, as Ray does)."""

    module: nn.Module
    batches: BatchSource
    loss: BatchLoss
    epochs: int
    lr: float
    seed: int
    weight_decay: float = 0.0
    val_loss: Callable[[nn.Module], float] | None = None
    patience: int = 2
    lr_at_step: Callable[[int], float] | None = None
    num_threads: int | None = None


class Replica(Protocol):
    """One worker of a data-parallel run of the loop: every replica draws the same global
    mini-batches (same seed), trains on its slice of each and all-reduces the gradients, so the
    replicas stay identical and the step equals the full batch's (exactly, up to float summation
    order, for a loss that is a mean over rows)."""

    def shard(self, batch: Batch) -> tuple[Batch, float]:
        """This replica's slice of ``batch`` and its weight (its share of the batch's rows)."""
        ...

    def sync_gradients(self, module: nn.Module, weight: float) -> None:
        """Replace every gradient by the weighted sum over replicas (the full batch's)."""
        ...

    def weighted_sum(self, value: float, weight: float) -> float:
        """``sum(weight * value)`` over the replicas (the full batch's mean loss)."""
        ...


#: Runs a :class:`LoopJob` elsewhere (e.g. :mod:`mlsd.training_ray`): trains ``job.module`` in
#: place and returns the history.
LoopRunner = Callable[[LoopJob], TrainHistory]
_RUNNER: ContextVar[LoopRunner | None] = ContextVar("mlsd_training_runner", default=None)


@contextmanager
def data_parallel(runner: LoopRunner | None) -> Iterator[None]:
    """Inside the block, every :func:`train_loop` call is handed to ``runner`` (an engine's
    data-parallel trainer; ``None``: in-process as usual)."""
    token = _RUNNER.set(runner)
    try:
        yield
    finally:
        _RUNNER.reset(token)


def train_loop(
    module: nn.Module,
    batches: BatchSource,
    loss: BatchLoss,
    *,
    epochs: int,
    lr: float,
    seed: int,
    weight_decay: float = 0.0,
    val_loss: Callable[[nn.Module], float] | None = None,
    patience: int = 2,
    lr_at_step: Callable[[int], float] | None = None,
    num_threads: int | None = None,
    progress: Progress | None = None,
) -> TrainHistory:
    """The one PyTorch training loop every model of mlsd uses; train ``module`` in place.

    Each epoch draws its mini-batches from ``batches(epoch, generator)`` (a seeded
    ``torch.Generator``, so shuffling, sampling and augmentation are reproducible) and takes one
    optimiser step per batch on ``loss(module, batch)``: Adam for dense parameters and SparseAdam
    for sparse embedding tables (:func:`make_optimizers`). ``lr_at_step(step)`` multiplies the
    learning rate (warm-up, decay). With ``val_loss``, training stops after ``patience`` epochs
    without a lower validation loss and the best weights are restored. ``progress(epoch,
    train_loss, val_loss)`` is called after every epoch. The loop runs inside
    ``torch.random.fork_rng()`` with ``torch.manual_seed(seed)`` (for dropout), so the caller's
    global RNG state is left untouched; the thread count is set only for the call. Inside
    :func:`data_parallel` the loop runs on the engine's workers instead (same result within
    float tolerance for per-row mean losses without dropout).
    """
    if epochs < 1:
        raise ValueError(f"epochs must be >= 1, got {epochs}")
    if patience < 1:
        raise ValueError(f"patience must be >= 1, got {patience}")
    job = LoopJob(
        module=module,
        batches=batches,
        loss=loss,
        epochs=epochs,
        lr=lr,
        seed=seed,
        weight_decay=weight_decay,
        val_loss=val_loss,
        patience=patience,
        lr_at_step=lr_at_step,
        num_threads=num_threads,
    )
    runner = _RUNNER.get()
    if runner is None:
        return run_loop(job, progress=progress)
    history = runner(job)
    if progress is not None:
        for epoch, train in enumerate(history.train_loss):
            progress(epoch, train, history.val_loss[epoch] if history.val_loss else None)
    return history


def run_loop(
    job: LoopJob, *, replica: Replica | None = None, progress: Progress | None = None
) -> TrainHistory:
    """The body of :func:`train_loop`, in-process; with ``replica``, as one data-parallel worker."""
    module, epochs, val_loss, lr_at_step = job.module, job.epochs, job.val_loss, job.lr_at_step
    history = TrainHistory()
    best_loss, best_state, bad_epochs, step = math.inf, None, 0, 0
    with torch_threads(job.num_threads), torch.random.fork_rng(devices=[]):
        torch.manual_seed(job.seed)
        generator = torch.Generator().manual_seed(job.seed)
        optimizers = make_optimizers(module, lr=job.lr, weight_decay=job.weight_decay)
        schedulers = (
            [torch.optim.lr_scheduler.LambdaLR(o, lr_at_step) for o in optimizers]
            if lr_at_step is not None
            else []
        )
        for epoch in range(epochs):
            module.train()
            started, total, n = time.perf_counter(), 0.0, 0
            for batch in job.batches(epoch, generator):
                for optimizer in optimizers:
                    optimizer.zero_grad(set_to_none=True)
                if replica is None:
                    value = job.loss(module, batch)
                    value.backward()
                    step_loss = float(value.detach())
                else:
                    part, weight = replica.shard(batch)
                    value = job.loss(module, part)
                    value.backward()
                    replica.sync_gradients(module, weight)
                    step_loss = replica.weighted_sum(float(value.detach()), weight)
                for optimizer in optimizers:
                    optimizer.step()
                for scheduler in schedulers:
                    scheduler.step()
                rows = int(batch[0].shape[0])
                history.step_loss.append(step_loss)
                total += step_loss * rows
                n += rows
                step += 1
            if n == 0:
                raise ValueError("training data: no rows to train on")
            elapsed = max(time.perf_counter() - started, 1e-9)
            history.train_loss.append(total / n)
            history.examples_per_second.append(n / elapsed)

            epoch_val = None
            if val_loss is not None:
                epoch_val = val_loss(module)
                history.val_loss.append(epoch_val)
                if epoch_val < best_loss:
                    best_loss, bad_epochs, history.best_epoch = epoch_val, 0, epoch
                    best_state = copy.deepcopy(module.state_dict())
                else:
                    bad_epochs += 1
            else:
                history.best_epoch = epoch
            logger.debug(
                "epoch %d: train loss %.5f, val loss %s, %.0f examples/s",
                epoch,
                history.train_loss[-1],
                "n/a" if epoch_val is None else f"{epoch_val:.5f}",
                history.examples_per_second[-1],
            )
            if progress is not None:
                progress(epoch, history.train_loss[-1], epoch_val)
            if val_loss is not None and bad_epochs >= job.patience:
                history.stopped_early = epoch < epochs - 1
                break
    if best_state is not None:
        module.load_state_dict(best_state)
    module.eval()
    return history


def shuffled_batches(tensors: Sequence[torch.Tensor], batch_size: int) -> BatchSource:
    """Mini-batches of ``tensors`` (rows aligned), in a fresh shuffled order every epoch."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    n = int(tensors[0].shape[0]) if tensors else 0

    def batches(epoch: int, generator: torch.Generator) -> Iterator[Batch]:
        order = torch.randperm(n, generator=generator)
        for start in range(0, n, batch_size):
            idx = order[start : start + batch_size]
            yield tuple(t[idx] for t in tensors)

    return batches


def fit_torch(
    module: nn.Module,
    tensors: Sequence[torch.Tensor],
    y: torch.Tensor,
    *,
    loss_fn: LossFn,
    epochs: int,
    batch_size: int,
    lr: float,
    weight_decay: float = 0.0,
    seed: int,
    val: tuple[Sequence[torch.Tensor], torch.Tensor] | None = None,
    patience: int = 2,
    num_threads: int | None = None,
    progress: Progress | None = None,
) -> TrainHistory:
    """Supervised training on aligned tensors: :func:`train_loop` over shuffled mini-batches.

    ``module(*features)`` must return one logit (or score) per row, compared to ``y`` by
    ``loss_fn`` (a mean-reduced loss such as ``nn.BCEWithLogitsLoss()``). With ``val``, training
    stops early on the validation loss and the best weights are restored.
    """
    if batch_size < 1:
        raise ValueError(f"epochs and batch_size must be >= 1, got {epochs} and {batch_size}")
    n = _check_tensors(tensors, y, "training data")
    if n == 0:
        raise ValueError("training data: no rows to train on")
    val_loss = None
    if val is not None:
        _check_tensors(val[0], val[1], "validation data")
        val_x, val_y = val

        def val_loss(m: nn.Module) -> float:
            return _batch_loss(m, val_x, val_y, loss_fn, max(batch_size, 4096))

    def loss(m: nn.Module, batch: Batch) -> torch.Tensor:
        return loss_fn(m(*batch[:-1]), batch[-1])

    return train_loop(
        module,
        shuffled_batches([*tensors, y], batch_size),
        loss,
        epochs=epochs,
        lr=lr,
        seed=seed,
        weight_decay=weight_decay,
        val_loss=val_loss,
        patience=patience,
        num_threads=num_threads,
        progress=progress,
    )
