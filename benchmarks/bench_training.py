"""Training throughput of the ad-click models, and the cost of mlsd's PyTorch loop (book ch. 8).

Two measurements on one feature frame (the offline, point-in-time features of a small world):

1. for every model of the chapter's line-up (``candidate_models``), the end-to-end ``fit`` time
   and its throughput, training rows / fit seconds (each model makes as many passes as its own
   defaults and early stopping decide, so the number says how long a retrain takes, not how fast
   one pass is);
2. ``mlsd.training.fit_torch`` against a plain hand-written PyTorch loop (shuffle, mini-batches,
   Adam, BCE) on the same ``DCNv2Network``, the same initial weights, tensors, epochs and batch
   size: examples per second of each, and their ratio (1.0 = the framework's loop is free).
"""

from __future__ import annotations

import copy
import logging
import time
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from benchmarks import BenchResult
from benchmarks.bench_serving import bench_world
from mlsd.models import categorical_columns, dense_columns
from mlsd.rng import torch_generator
from mlsd.systems.ad_click import features as feats
from mlsd.systems.ad_click.model import candidate_models
from mlsd.systems.ad_click.model_dcn import DCNv2Network
from mlsd.systems.ad_click.model_deep import init_weights
from mlsd.training import fit_torch, torch_threads

log = logging.getLogger(__name__)

NUM_THREADS = 1
BATCH_SIZE = 1024
LR = 2e-3
FIELD_BUCKETS = 2**16


def training_frame(quick: bool) -> tuple[pd.DataFrame, np.ndarray]:
    world = bench_world(quick)
    log_df = world.log()
    X = feats.offline_features(log_df, world.users, world.ads)
    return X, log_df["click"].to_numpy(dtype=np.int64)


def time_models(X: pd.DataFrame, y: np.ndarray, quick: bool) -> list[dict[str, Any]]:
    """Fit every candidate model once; rows per second of the whole fit."""
    rows = []
    for name, model in candidate_models(random_state=0).items():
        params = model.get_params()
        overrides = {k: NUM_THREADS for k in ("num_threads",) if k in params}
        if quick and "epochs" in params:
            overrides["epochs"] = 2
        model.set_params(**overrides)
        t0 = time.perf_counter()
        model.fit(X, y)
        seconds = time.perf_counter() - t0
        rows.append(
            {
                "model": name,
                "rows": len(X),
                "fit_s": seconds,
                "examples_per_s": len(X) / seconds,
            }
        )
        log.info("fitted %s in %.2f s", name, seconds)
    return rows


def dcn_tensors(X: pd.DataFrame, y: np.ndarray) -> tuple[list[torch.Tensor], torch.Tensor]:
    """The DCN's inputs: categorical ids mod the field buckets, standardized dense features."""
    cat = torch.from_numpy(X[categorical_columns(X)].to_numpy(np.int64) % FIELD_BUCKETS)
    dense_np = X[dense_columns(X)].to_numpy(np.float32)
    dense_np = np.nan_to_num((dense_np - dense_np.mean(0)) / (dense_np.std(0) + 1e-6))
    return [cat, torch.from_numpy(dense_np)], torch.from_numpy(y.astype(np.float32))


def plain_loop(
    module: nn.Module, tensors: list[torch.Tensor], y: torch.Tensor, epochs: int, seed: int
) -> None:
    """The textbook PyTorch loop, nothing else: the reference ``fit_torch`` is compared to."""
    generator = torch.Generator().manual_seed(seed)
    # the textbook split: SparseAdam for sparse embedding tables, Adam for the rest
    tables = [m for m in module.modules() if isinstance(m, nn.Embedding) and m.sparse]
    sparse = [p for m in tables for p in m.parameters()]
    dense = [p for p in module.parameters() if all(p is not q for q in sparse)]
    optimizers = [torch.optim.Adam(dense, lr=LR)] + (
        [torch.optim.SparseAdam(sparse, lr=LR)] if sparse else []
    )
    loss_fn = nn.BCEWithLogitsLoss()
    module.train()
    n = int(y.shape[0])
    for _ in range(epochs):
        order = torch.randperm(n, generator=generator)
        for start in range(0, n, BATCH_SIZE):
            idx = order[start : start + BATCH_SIZE]
            for opt in optimizers:
                opt.zero_grad(set_to_none=True)
            loss = loss_fn(module(*[t[idx] for t in tensors]), y[idx])
            loss.backward()
            for opt in optimizers:
                opt.step()


def compare_loops(X: pd.DataFrame, y: np.ndarray, quick: bool) -> dict[str, Any]:
    """fit_torch vs the plain loop on identical copies of one DCN-v2 network."""
    tensors, target = dcn_tensors(X, y)
    epochs = 1 if quick else 3
    with torch.random.fork_rng(devices=[]):  # torch's default init leaves the global RNG as it was
        network = DCNv2Network(
            n_fields=int(tensors[0].shape[1]),
            n_buckets=FIELD_BUCKETS,
            embedding_dim=8,
            n_dense=int(tensors[1].shape[1]),
            n_cross_layers=2,
            deep_layers=(128, 64),
            dropout=0.1,
            structure="stacked",
        )
    init_weights(network, torch_generator(0, "benchmarks/training/dcn-init"))
    n = int(target.shape[0])
    timings: dict[str, float] = {}
    with torch_threads(NUM_THREADS):
        for round_ in range(2):  # alternate the order so warm-up favours neither
            for which in ("plain", "fit_torch") if round_ == 0 else ("fit_torch", "plain"):
                module = copy.deepcopy(network)
                t0 = time.perf_counter()
                if which == "plain":
                    plain_loop(module, tensors, target, epochs, seed=0)
                else:
                    fit_torch(
                        module,
                        tensors,
                        target,
                        loss_fn=nn.BCEWithLogitsLoss(),
                        epochs=epochs,
                        batch_size=BATCH_SIZE,
                        lr=LR,
                        seed=0,
                    )
                seconds = time.perf_counter() - t0
                timings[which] = min(timings.get(which, float("inf")), seconds)
    plain_eps = n * epochs / timings["plain"]
    ours_eps = n * epochs / timings["fit_torch"]
    return {
        "rows": n,
        "epochs": epochs,
        "batch_size": BATCH_SIZE,
        "plain_examples_per_s": plain_eps,
        "fit_torch_examples_per_s": ours_eps,
        "fit_torch_over_plain_throughput": ours_eps / plain_eps,
    }


def run(quick: bool = False) -> BenchResult:
    """Training throughput of each model, and fit_torch's overhead over a plain loop."""
    X, y = training_frame(quick)
    rows = time_models(X, y, quick)
    loops = compare_loops(X, y, quick)
    for loop in ("plain loop", "fit_torch"):
        key = "plain" if loop == "plain loop" else "fit_torch"
        rows.append(
            {
                "model": f"dcn_v2 module, {loop}",
                "rows": loops["rows"],
                "examples_per_s": loops[f"{key}_examples_per_s"],
            }
        )
    summary = {
        "examples_per_s": {r["model"]: r["examples_per_s"] for r in rows},
        "fit_torch_over_plain_throughput": loops["fit_torch_over_plain_throughput"],
    }
    return BenchResult(
        name="training",
        description="ad-click training throughput per model; fit_torch vs a plain torch loop",
        rows=rows,
        summary=summary,
        params={
            "train_rows": len(X),
            "features": X.shape[1],
            "torch_threads": NUM_THREADS,
            "loop_comparison": {k: loops[k] for k in ("epochs", "batch_size")},
            "quick": quick,
        },
    )
