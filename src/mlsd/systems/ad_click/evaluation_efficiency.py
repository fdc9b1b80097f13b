"""Ad click prediction, step 6: making DCN-v2 cheaper to serve, and the latency trade-off table.

The chapter serves under 10 ms for 100 candidates, which rules out a large deep model unless it
is made cheaper. DCN-v2 is the line-up's most accurate deep model; it is made cheaper four ways
(:mod:`mlsd.efficiency`): a **distilled** student (a DCN-v2 with 4-dim embeddings in 4,096
buckets, one cross layer and a 32-unit tower, trained on DCN-v2's logits for the training rows),
its linear weights **pruned** by magnitude, **dynamic int8**, and an **ONNX** export run by
onnxruntime. Every variant keeps the estimator around the network (the fields, Platt scaling,
the downsampling correction), so it is scored on the same validation and test rows as DCN-v2
and timed on the same serving path as the serving step (online-store lookups, feature assembly,
the model), interleaved with the model the serving step chose.

The **trade-off table** re-makes the serving choice for budgets of 1, 5, 10, 50 and 200 ms p99
and 10, 100 and 1,000 candidates: every model of the line-up timed through the scorer's batch
path (``score_frame``: the store lookups, feature assembly and the model for that many rows).
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Callable, Mapping
from functools import partial

import numpy as np
import pandas as pd
import torch

from mlsd import metrics as mm
from mlsd.efficiency import Variant, compress, distill
from mlsd.efficiency_table import EfficiencyTable, measure_efficiency
from mlsd.latency import Timer, machine_load, time_calls
from mlsd.models import ClickEstimator, NegativeDownsampled
from mlsd.rng import rng, seed_of, torch_generator
from mlsd.stores import FrameStore
from mlsd.systems.ad_click import REQUIREMENTS
from mlsd.systems.ad_click.evaluation import OfflineEvaluation, predict
from mlsd.systems.ad_click.features_split import TrainingData
from mlsd.systems.ad_click.model import TrainedModels
from mlsd.systems.ad_click.model_dcn import DCNv2
from mlsd.systems.ad_click.model_deep import init_weights
from mlsd.systems.ad_click.serving import AdClickScorer
from mlsd.systems.ad_click.serving_latency import (
    N_CANDIDATES,
    WARMUP,
    ServingChoice,
    _time_blocks,
    _time_requests,
    world_requests,
)
from mlsd.systems.ad_click.world import AdClickWorld
from mlsd.tradeoffs import BudgetSweep, measure_by_candidates, sweep_budgets
from mlsd.training import torch_threads

log = logging.getLogger(__name__)

TEACHER = "dcn_v2"
PRUNE_AMOUNT = 0.5
STUDENT = {"embedding_dim": 4, "field_buckets": 2**12, "n_cross_layers": 1, "deep_layers": (32,)}
DISTILL_ROWS = {"tiny": 60_000, "small": 300_000, "medium": 600_000, "large": 1_000_000}
DISTILL_EPOCHS = {"tiny": 3, "small": 4, "medium": 4, "large": 4}
# timed requests per round and rounds: few at tiny scale (a test run), more where it counts
REQUESTS = {"tiny": 10, "small": 60, "medium": 100, "large": 100}
ROUNDS = {"tiny": 2, "small": 5, "medium": 5, "large": 5}
SWEEP_COUNTS = (10, 100, 1000)
SWEEP_REQUESTS = {"tiny": 5, "small": 25, "medium": 40, "large": 40}
SWEEP_ROUNDS = {"tiny": 2, "small": 3, "medium": 3, "large": 3}


def with_network(
    teacher: NegativeDownsampled, network: torch.nn.Module, **params: object
) -> NegativeDownsampled:
    """A copy of the downsampled DCN-v2 whose network is ``network`` (the estimator, its
    fields, Platt scaling and downsampling correction kept; ``params`` set on the inner model
    so that it describes the network it holds)."""
    inner = copy.copy(teacher.estimator_)
    inner.network_ = network
    for key, value in params.items():
        setattr(inner, key, value)
    outer = copy.copy(teacher)
    outer.estimator_ = inner
    return outer


def distill_student(
    teacher: NegativeDownsampled, X: pd.DataFrame, scale: str, seed: int
) -> tuple[NegativeDownsampled, int]:
    """The distilled DCN-v2: a small one trained on the teacher's logits for up to
    ``DISTILL_ROWS`` training rows (a seeded sample); returns it and the rows it saw."""
    inner: DCNv2 = teacher.estimator_
    n = min(len(X), DISTILL_ROWS[scale])
    rows = np.sort(rng(seed, "ad-click/distill/rows").choice(len(X), n, replace=False))
    X = X.iloc[rows]
    teacher_logits = torch.from_numpy(inner._logits(*inner._tensors(X))).float()
    shell = copy.copy(inner)
    for key, value in STUDENT.items():
        setattr(shell, key, value)
    shell.dropout = 0.0
    cat, dense = shell._tensors(X)  # ids taken modulo the student's buckets

    def student() -> torch.nn.Module:
        with torch.random.fork_rng(devices=[]):
            net = shell._network()
        init_weights(net, torch_generator(seed, "ad-click/distill/init"))
        with torch.no_grad():
            net.embedding.dense_mean.copy_(inner.network_.embedding.dense_mean)
            net.embedding.dense_std.copy_(inner.network_.embedding.dense_std)
            net.start_at(float(teacher_logits.mean()))
        return net

    result = distill(
        teacher_logits,
        student,
        [cat, dense],
        objective="binary",
        epochs=DISTILL_EPOCHS[scale],
        batch_size=1024,
        lr=5e-3,
        seed=seed_of(seed, "ad-click/distill/training"),
        num_threads=inner.num_threads,
    )
    params = {**STUDENT, "dropout": 0.0}
    return with_network(teacher, result.student, **params), n


def _nce(model: ClickEstimator, data: TrainingData, part: str) -> float:
    idx = data.split[part]
    return mm.normalized_cross_entropy(data.y[idx], predict(model, data.X.iloc[idx]))


def _model_timer(module: torch.nn.Module, inputs: tuple[torch.Tensor, ...], n: int) -> Timer:
    def run() -> None:
        with torch.inference_mode():
            module(*inputs)

    return partial(time_calls, run, n, WARMUP)


def compute_efficiency(
    trained: TrainedModels,
    offline: OfflineEvaluation,
    serving: ServingChoice,
    data: TrainingData,
    world: AdClickWorld | None,
    *,
    scale: str,
    seed: int,
    torch_thread_count: int | None,
) -> EfficiencyTable:
    """DCN-v2, its four cheaper variants and the served model: accuracy, size and p99."""
    teacher = trained.models[TEACHER]
    if not isinstance(teacher, NegativeDownsampled) or not isinstance(teacher.estimator_, DCNv2):
        raise TypeError(f"efficiency: {TEACHER} is not the downsampled DCN-v2 of the line-up")
    inner = teacher.estimator_
    X_train = data.X.iloc[data.split["train"]]
    example = inner._tensors(X_train.iloc[:N_CANDIDATES])
    variants = compress(
        inner.network_,
        example,
        name=TEACHER,
        input_names=["cat", "dense"],
        prune_amount=PRUNE_AMOUNT,
        threads=torch_thread_count or 1,
    )
    student, distill_rows = distill_student(teacher, X_train, scale, seed)
    variants[f"{TEACHER}/distilled"] = Variant.of(
        f"{TEACHER}/distilled",
        f"distilled into a small DCN-v2 ({distill_rows:,} training rows of teacher logits)",
        student.estimator_.network_,
    )
    estimators: dict[str, ClickEstimator] = {
        name: (student if name.endswith("/distilled") else with_network(teacher, v.module))
        for name, v in variants.items()
    }
    served = serving.chosen
    if served not in estimators:
        estimators[served] = trained.models[served]
    validation = {n: _nce(m, data, "validation") for n, m in estimators.items()}
    test = {n: _nce(m, data, "test") for n, m in estimators.items()}
    timers, measured = _timers(estimators, data, world, scale, seed)
    n = REQUESTS[scale]
    model_timers: dict[str, Timer] = {}
    for name, v in variants.items():
        est = estimators[name].estimator_  # type: ignore[attr-defined]
        model_timers[name] = _model_timer(v.module, est._tensors(X_train.iloc[:N_CANDIDATES]), n)
    with torch_threads(torch_thread_count):
        table = measure_efficiency(
            teacher=TEACHER,
            previously_served=served,
            variants=variants,
            techniques={served: "the serving step's choice"},
            validation=validation,
            test=test,
            timers=timers,
            model_timers=model_timers,
            rounds=ROUNDS[scale],
            budget_ms=REQUIREMENTS.latency_budget_ms,
            metric="NCE",
            higher_is_better=False,
            measured=measured,
            notes=(
                "Sizes: DCN-v2's weights are mostly its embedding tables (one 65,536-row table "
                "per field), which pruning and int8 of the linear layers leave as they are; the "
                "distilled student's tables have 4,096 rows of 4 dimensions.",
            ),
        )
    log.info("efficiency: the rule would now serve %s", table.choice.served)
    return table


def _timers(
    estimators: Mapping[str, ClickEstimator],
    data: TrainingData,
    world: AdClickWorld | None,
    scale: str,
    seed: int,
) -> tuple[dict[str, Timer], str]:
    """Per contender, one round of the serving step's timing (its requests, its path)."""
    n = REQUESTS[scale] + WARMUP
    if world is not None and data.tables is not None:
        store = FrameStore(data.tables)
        requests = world_requests(world, n, seed)
        timers: dict[str, Timer] = {
            name: partial(_time_requests, AdClickScorer(m, store, name), requests)
            for name, m in estimators.items()
        }
        return timers, f"{N_CANDIDATES} candidates: store lookups, features and the model"
    draw = rng(seed, "ad-click/serving/latency-requests")
    blocks = [data.X.iloc[draw.integers(0, len(data.X), N_CANDIDATES)] for _ in range(n)]
    timers = {name: partial(_time_blocks, m, blocks) for name, m in estimators.items()}
    return timers, f"{N_CANDIDATES} rows of ready-made features through the model"


def compute_budget_sweep(
    trained: TrainedModels,
    offline: OfflineEvaluation,
    data: TrainingData,
    world: AdClickWorld | None,
    *,
    scale: str,
    seed: int,
    torch_thread_count: int | None,
) -> BudgetSweep:
    """Every model of the line-up at 10, 100 and 1,000 candidates; the rule per budget."""
    models = trained.models
    n = SWEEP_REQUESTS[scale]
    if world is not None and data.tables is not None:
        store = FrameStore(data.tables)
        scorers = {name: AdClickScorer(m, store, name) for name, m in models.items()}
        frames = {k: _request_frames(world, k, n + WARMUP, seed) for k in SWEEP_COUNTS}

        def timer_for(name: str, k: int) -> Timer:
            return partial(_time_frames, scorers[name].score_frame, frames[k])

        measured = "online-store lookups, feature assembly and the model for that many rows"
    else:
        draw = rng(seed, "ad-click/tradeoffs/rows")
        blocks = {
            k: [data.X.iloc[draw.integers(0, len(data.X), k)] for _ in range(n + WARMUP)]
            for k in SWEEP_COUNTS
        }

        def timer_for(name: str, k: int) -> Timer:
            return partial(_time_frames, models[name].predict_proba, blocks[k])

        measured = "that many rows of ready-made features through the model (no store)"
    before = machine_load()
    with torch_threads(torch_thread_count):
        lat = measure_by_candidates(timer_for, list(models), SWEEP_COUNTS, SWEEP_ROUNDS[scale])
    return sweep_budgets(
        {name: offline.validation_nce(name) for name in models},
        lat,
        metric="NCE",
        higher_is_better=False,
        measured=measured,
        rounds=SWEEP_ROUNDS[scale],
        load={"before": before, "after": machine_load()},
    )


def _request_frames(world: AdClickWorld, k: int, n: int, seed: int) -> list[pd.DataFrame]:
    """``n`` requests of ``k`` candidate ads each (user, hour, device, ad id per row); ads are
    drawn with replacement when the world has fewer than ``k`` live ones."""
    draw = rng(seed, f"ad-click/tradeoffs/requests-{k}")
    users = world.users["user_id"].to_numpy()
    live = world.ads.loc[world.ads["created_day"] < world.n_days, "ad_id"].to_numpy()
    out = []
    for _ in range(n):
        out.append(
            pd.DataFrame(
                {
                    "user_id": np.full(k, draw.choice(users), dtype=np.int64),
                    "hour": np.full(k, draw.integers(24), dtype=np.int64),
                    "device": np.full(k, draw.choice(["ios", "web"]), dtype=object),
                    "ad_id": draw.choice(live, size=k, replace=k > len(live)),
                }
            )
        )
    return out


def _time_frames(score: Callable[[pd.DataFrame], object], frames: list[pd.DataFrame]) -> np.ndarray:
    """Latency in ms of scoring each frame (after the warm-up)."""
    samples = []
    for j, frame in enumerate(frames):
        t0 = time.perf_counter()
        score(frame)
        if j >= WARMUP:
            samples.append((time.perf_counter() - t0) * 1e3)
    return np.asarray(samples)
