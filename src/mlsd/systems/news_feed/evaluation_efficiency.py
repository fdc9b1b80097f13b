"""News feed, step 6: the multi-task network made cheaper, and the latency trade-off table.

The multi-task network is the chapter's deep model. It is made cheaper four ways
(:mod:`mlsd.efficiency`): a **distilled** student (a shared bottom of 32 units, heads of 8 and
4-dim embeddings, trained to reproduce the network's seven outputs, six reaction logits and log
dwell, on its training rows), **magnitude pruning** of half its linear weights, **dynamic
int8**, and an **ONNX** export run by onnxruntime. Each keeps the ranker around the network, so
it is scored with the same feed metric (nDCG@10 of the expected engagement gains) on the
validation and test sessions and timed ranking 100 candidate posts' feature rows, interleaved
with the served model.

The **trade-off table** re-makes the choice for budgets of 1, 5, 10, 50 and 200 ms p99 and 10,
100 and 1,000 candidate posts (ready-made feature rows through each ranker).
"""

from __future__ import annotations

import logging
from functools import partial
from typing import Any

import pandas as pd
import torch

from mlsd.efficiency import Variant, compress, distill, with_network
from mlsd.efficiency_table import EfficiencyTable, evaluate_variants
from mlsd.latency import Timer, machine_load, row_blocks, time_blocks
from mlsd.rng import rng, seed_of, torch_generator
from mlsd.systems.news_feed import REQUIREMENTS
from mlsd.systems.news_feed.evaluation import EvalSet, ndcg_per_session
from mlsd.systems.news_feed.model import MODELS, TrainedModels, ranking_score
from mlsd.systems.news_feed.model_multitask import MultiTaskRanker
from mlsd.systems.news_feed.world_config import DEFAULT_WEIGHTS
from mlsd.tradeoffs import BudgetSweep, measure_by_candidates, sweep_budgets
from mlsd.training import torch_threads

log = logging.getLogger(__name__)

TEACHER = "multi_task"
N_CANDIDATES = 100
STUDENT: dict[str, Any] = {"hidden": (32,), "head": 8, "embed_dim": 4}
REQUESTS = {"tiny": 10, "small": 60, "medium": 60}
ROUNDS = {"tiny": 2, "small": 5, "medium": 5}
SWEEP_COUNTS = (10, 100, 1000)
SWEEP_REQUESTS = {"tiny": 5, "small": 25, "medium": 25}
SWEEP_ROUNDS = {"tiny": 2, "small": 3, "medium": 3}
WARMUP = 2


def feed_ndcg(model: Any, ev: EvalSet) -> float:
    """nDCG@10 of the expected engagement gains, the metric the serving step chooses by."""
    expected = DEFAULT_WEIGHTS.score(ev.true_heads)
    return float(ndcg_per_session(ev.session, expected, ranking_score(model, ev.X)).mean())


def distill_student(
    teacher: MultiTaskRanker, X_train: pd.DataFrame, scale: str, seed: int
) -> MultiTaskRanker:
    """A small multi-task network trained on the teacher's seven outputs (MSE on the logits and
    the log dwell) for the teacher's training rows."""
    dense, cats = teacher._tensors(X_train)
    with torch.inference_mode():
        outputs = teacher.network_(dense, cats).float()
    shell = with_network(teacher, teacher.network_, **STUDENT)

    def student() -> torch.nn.Module:
        with torch.random.fork_rng(devices=[]):
            net = shell._network()
        gen = torch_generator(seed, "news-feed/distill/init")
        with torch.no_grad():
            for p in net.parameters():
                p.copy_(torch.randn(p.shape, generator=gen) * (0.1 if p.ndim > 1 else 0.0))
            net.mean.copy_(teacher.network_.mean)
            net.std.copy_(teacher.network_.std)
        return net

    result = distill(
        outputs.clone(),
        student,
        [dense, cats],
        objective="regression",
        epochs=8 if scale == "tiny" else 12,
        batch_size=256,
        lr=3e-3,
        seed=seed_of(seed, "news-feed/distill/training"),
        num_threads=teacher.num_threads,
    )
    return with_network(teacher, result.student, **STUDENT)


def compute_efficiency(
    models: TrainedModels,
    served: str,
    X_train: pd.DataFrame,
    valid_ev: EvalSet,
    test_ev: EvalSet,
    *,
    scale: str,
    seed: int,
    torch_thread_count: int | None,
) -> EfficiencyTable:
    """The multi-task network, its four cheaper variants and the served ranker."""
    teacher = models.models[TEACHER]
    if not isinstance(teacher, MultiTaskRanker):
        raise TypeError(f"efficiency: {TEACHER} is not the multi-task ranker")
    draw = rng(seed, "news-feed/efficiency")
    blocks = row_blocks(valid_ev.X, N_CANDIDATES, REQUESTS[scale] + WARMUP, draw)
    variants = compress(
        teacher.network_,
        teacher._tensors(blocks[0]),
        name=TEACHER,
        input_names=["dense", "cats"],
        threads=torch_thread_count or 1,
    )
    student = distill_student(teacher, X_train, scale, seed)
    variants[f"{TEACHER}/distilled"] = Variant.of(
        f"{TEACHER}/distilled",
        "distilled into a multi-task network of 32 shared units, heads of 8",
        student.network_,
    )

    def estimator_for(v: Variant) -> MultiTaskRanker:
        return student if v.name.endswith("/distilled") else with_network(teacher, v.module)

    with torch_threads(torch_thread_count):
        return evaluate_variants(
            variants,
            estimator_for=estimator_for,
            score=lambda m: (feed_ndcg(m, valid_ev), feed_ndcg(m, test_ev)),
            timer_for=lambda m: partial(time_blocks, partial(ranking_score, m), blocks, WARMUP),
            model_inputs=lambda m: m._tensors(blocks[0]),
            model_calls=REQUESTS[scale],
            others={served: ("the serving step's choice", models.models[served])},
            teacher=TEACHER,
            previously_served=served,
            rounds=ROUNDS[scale],
            budget_ms=REQUIREMENTS.latency_budget_ms,
            metric="nDCG@10 (expected gains)",
            higher_is_better=True,
            measured=f"{N_CANDIDATES} candidate posts' feature rows through the ranker",
        )


def compute_budget_sweep(
    models: TrainedModels,
    validation: dict[str, float],
    valid_ev: EvalSet,
    *,
    scale: str,
    seed: int,
    torch_thread_count: int | None,
) -> BudgetSweep:
    """Every ranker at 10, 100 and 1,000 candidate posts; the rule per budget."""
    n = SWEEP_REQUESTS[scale] + WARMUP
    blocks = {
        k: row_blocks(valid_ev.X, k, n, rng(seed, f"news-feed/tradeoffs-{k}")) for k in SWEEP_COUNTS
    }

    def timer_for(name: str, k: int) -> Timer:
        return partial(time_blocks, partial(ranking_score, models.models[name]), blocks[k], WARMUP)

    before = machine_load()
    with torch_threads(torch_thread_count):
        lat = measure_by_candidates(timer_for, list(MODELS), SWEEP_COUNTS, SWEEP_ROUNDS[scale])
    return sweep_budgets(
        {name: validation[name] for name in MODELS},
        lat,
        metric="nDCG@10 (expected gains)",
        higher_is_better=True,
        measured="that many candidate posts' feature rows through the ranker",
        rounds=SWEEP_ROUNDS[scale],
        load={"before": before, "after": machine_load()},
    )
