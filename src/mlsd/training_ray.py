"""mlsd's one training loop, data-parallel on Ray Train (``TorchTrainer``, CPU workers, gloo).

:func:`ray_train_runner` returns a :data:`mlsd.training.LoopRunner`: inside
``engine.data_parallel()`` (:mod:`mlsd.engine_ray`) every :func:`mlsd.training.train_loop` call
becomes a Ray Train run of ``num_workers`` workers. Each worker receives the same job (module,
batch source, loss) through the object store and runs :func:`mlsd.training.run_loop` as one
:class:`GlooReplica`: it draws the same seeded global mini-batches as the local loop, computes
the loss on its contiguous slice of each, and the gradients are all-reduced (weighted by the
slice's share of the rows, sparse embedding gradients included), so every worker takes the
full batch's optimiser step. The trained weights and history come back from rank 0 as a Ray
Train checkpoint and are loaded into the caller's module.

Same results: for a loss that is a mean over rows and a model without dropout or batch
statistics, the weights equal the local loop's up to float summation order (a test bounds the
difference on a tiny model). Losses over the whole batch (in-batch negatives) see smaller batches
per worker, and dropout draws differ: those models train as well, not identically.
"""

from __future__ import annotations

import json
import logging
import tempfile
import uuid
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from mlsd.training import Batch, LoopJob, LoopRunner, TrainHistory, run_loop

log = logging.getLogger(__name__)

_STATE = "state.pt"
_HISTORY = "history.json"


class GlooReplica:
    """One worker's side of the data-parallel loop, over an initialised process group."""

    def __init__(self, rank: int, world_size: int) -> None:
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is not in 0..{world_size - 1}")
        self.rank, self.world_size = rank, world_size

    def shard(self, batch: Batch) -> tuple[Batch, float]:
        """Rows ``[n*r/W, n*(r+1)/W)`` of the batch; an empty slice trains on one row at weight
        0 (its gradients are zeros, so the all-reduce still has every replica's tensors)."""
        n = int(batch[0].shape[0])
        lo, hi = n * self.rank // self.world_size, n * (self.rank + 1) // self.world_size
        if hi > lo:
            return tuple(t[lo:hi] for t in batch), (hi - lo) / n
        return tuple(t[:1] for t in batch), 0.0

    def sync_gradients(self, module: nn.Module, weight: float) -> None:
        for p in module.parameters():
            if not p.requires_grad:
                continue
            grad = p.grad
            if grad is None:  # unused this step on this replica: contribute zeros
                grad = torch.zeros_like(p)
            if grad.is_sparse:
                grad = _sparse_weighted_sum(grad.coalesce() * weight)
            else:
                grad = grad * weight
                dist.all_reduce(grad, op=dist.ReduceOp.SUM)
            p.grad = grad

    def weighted_sum(self, value: float, weight: float) -> float:
        t = torch.tensor([value * weight], dtype=torch.float64)
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
        return float(t[0])


def _sparse_weighted_sum(grad: torch.Tensor) -> torch.Tensor:
    """The sum over replicas of a coalesced sparse gradient: its rows gathered from every
    replica (padded to the longest), summed per row."""
    indices, values = grad.indices()[0], grad.values()
    size = torch.tensor([indices.numel()], dtype=torch.int64)
    sizes = [torch.zeros_like(size) for _ in range(dist.get_world_size())]
    dist.all_gather(sizes, size)
    longest = int(max(int(s[0]) for s in sizes))
    pad_i = torch.zeros(longest, dtype=indices.dtype)
    pad_v = torch.zeros((longest, *values.shape[1:]), dtype=values.dtype)
    pad_i[: indices.numel()], pad_v[: indices.numel()] = indices, values
    all_i = [torch.zeros_like(pad_i) for _ in sizes]
    all_v = [torch.zeros_like(pad_v) for _ in sizes]
    dist.all_gather(all_i, pad_i)
    dist.all_gather(all_v, pad_v)
    rows = torch.cat([i[: int(s[0])] for i, s in zip(all_i, sizes, strict=True)])
    vals = torch.cat([v[: int(s[0])] for v, s in zip(all_v, sizes, strict=True)])
    return torch.sparse_coo_tensor(rows[None, :], vals, grad.shape).coalesce()


def _worker_loop(config: dict[str, Any]) -> None:
    """What each Ray Train worker runs: the loop as one replica; rank 0 reports the result."""
    import ray
    import ray.train

    job: LoopJob = ray.get(config["job"])  # a reference into the object store
    context = ray.train.get_context()
    rank, world_size = context.get_world_rank(), context.get_world_size()
    history = run_loop(job, replica=GlooReplica(rank, world_size))
    if rank != 0:
        ray.train.report({"rank": rank}, checkpoint=None)
        return
    with tempfile.TemporaryDirectory() as tmp:
        torch.save(job.module.state_dict(), Path(tmp) / _STATE)
        (Path(tmp) / _HISTORY).write_text(json.dumps(asdict(history)))
        checkpoint = ray.train.Checkpoint.from_directory(tmp)
        ray.train.report({"rank": 0, "epochs": history.epochs_run}, checkpoint=checkpoint)


def ray_train_runner(num_workers: int, storage: Path | None = None) -> LoopRunner:
    """A runner that trains each :class:`LoopJob` on ``num_workers`` Ray Train CPU workers
    (gloo); checkpoints go under ``storage`` (a temporary folder when None; on a multi-machine
    cluster, a path every node can reach)."""
    if num_workers < 1:
        raise ValueError(f"num_workers must be >= 1, got {num_workers}")

    def run(job: LoopJob) -> TrainHistory:
        import ray
        from ray.train import RunConfig, ScalingConfig
        from ray.train.torch import TorchConfig, TorchTrainer

        with tempfile.TemporaryDirectory(prefix="mlsd-train-") as tmp:
            root = storage if storage is not None else Path(tmp)
            trainer = TorchTrainer(
                _worker_loop,
                train_loop_config={"job": ray.put(job)},
                torch_config=TorchConfig(backend="gloo"),
                scaling_config=ScalingConfig(num_workers=num_workers, use_gpu=False),
                run_config=RunConfig(
                    name=f"mlsd-{uuid.uuid4().hex[:8]}", storage_path=str(root.resolve())
                ),
            )
            result = trainer.fit()
            if result.checkpoint is None:
                raise RuntimeError("Ray Train finished without the rank-0 checkpoint")
            with result.checkpoint.as_directory() as folder:
                state = torch.load(Path(folder) / _STATE, weights_only=True)
                history = TrainHistory(**json.loads((Path(folder) / _HISTORY).read_text()))
        job.module.load_state_dict(state)
        job.module.eval()
        log.info(
            "data-parallel training on %d Ray Train workers: %d epochs",
            num_workers,
            history.epochs_run,
        )
        return history

    return run
