"""Harmful content detection, step 6: the fused classifier made cheaper, and a latency table.

The teacher is the early-fusion network (one of :data:`~.model.EARLY`) with the best mean
PR-AUC on the validation days. It is made cheaper four ways (:mod:`mlsd.efficiency`): a
**distilled** student (one hidden layer of 32 units, trained on the teacher's logits for every
class on the training posts), **magnitude pruning** of half its linear weights, **dynamic
int8**, and an **ONNX** export run by onnxruntime. Each keeps the classifier around the network,
so it is scored with the same mean PR-AUC on the validation and test posts and timed
classifying one post from its ready representations (text embedding, image features, author;
the text encoder runs before and costs every variant the same), interleaved with the served
model.

The **trade-off table** re-makes the choice among the servable models (late and early fusion)
for budgets of 1, 5, 10, 50 and 200 ms p99 and 1, 10 and 100 posts per call.
"""

from __future__ import annotations

import logging
from functools import partial
from typing import Any

import numpy as np
import torch

from mlsd.efficiency import Variant, compress, distill, with_network
from mlsd.efficiency_table import EfficiencyTable, evaluate_variants
from mlsd.latency import Timer, machine_load, time_blocks
from mlsd.rng import rng, seed_of, torch_generator
from mlsd.systems.harmful_content import REQUIREMENTS
from mlsd.systems.harmful_content.evaluation import class_metrics
from mlsd.systems.harmful_content.model import EARLY, SERVABLE, Lineup, Reps, score_model
from mlsd.systems.harmful_content.model_fusion import HarmClassifier
from mlsd.tradeoffs import BudgetSweep, measure_by_candidates, sweep_budgets
from mlsd.training import torch_threads

log = logging.getLogger(__name__)

STUDENT_HIDDEN = (32,)
REQUESTS = {"tiny": 20, "small": 100, "medium": 100, "large": 100}
ROUNDS = {"tiny": 2, "small": 5, "medium": 5, "large": 5}
SWEEP_COUNTS = (1, 10, 100)
SWEEP_REQUESTS = {"tiny": 5, "small": 25, "medium": 25, "large": 25}
SWEEP_ROUNDS = {"tiny": 2, "small": 3, "medium": 3, "large": 3}
WARMUP = 2


def _pr_auc(Y: np.ndarray, P: np.ndarray, classes: tuple[str, ...]) -> float:
    return float(class_metrics(Y, P, classes)["mean_pr_auc"])


def _blocks(reps: Reps, k: int, n: int, seed: int, purpose: str) -> list[Reps]:
    draw = rng(seed, f"harmful-content/{purpose}")
    return [reps.take(draw.integers(0, len(reps), k)) for _ in range(n)]


def distill_student(teacher: HarmClassifier, train: Reps, scale: str, seed: int) -> HarmClassifier:
    """A one-layer classifier trained on the teacher's logits (every class) for the training
    posts."""
    x = torch.from_numpy(np.nan_to_num(train.early()))
    with torch.inference_mode():
        logits = teacher.network_(x).float()
    shell = with_network(teacher, teacher.network_, hidden=STUDENT_HIDDEN, mode="multi_task")

    def student() -> torch.nn.Module:
        with torch.random.fork_rng(devices=[]):
            net = shell._network()
        gen = torch_generator(seed, "harmful-content/distill/init")
        with torch.no_grad():
            for p in net.nets.parameters():
                p.copy_(torch.randn(p.shape, generator=gen) * (0.05 if p.ndim > 1 else 0.0))
            net.mean.copy_(teacher.network_.mean)
            net.std.copy_(teacher.network_.std)
        return net

    result = distill(
        logits.clone(),
        student,
        [x],
        objective="binary",
        epochs=10 if scale == "tiny" else 15,
        batch_size=256,
        lr=3e-3,
        seed=seed_of(seed, "harmful-content/distill/training"),
        num_threads=teacher.num_threads,
    )
    return with_network(teacher, result.student, hidden=STUDENT_HIDDEN, mode="multi_task")


def has_early_fusion(lineup: Lineup) -> bool:
    """Whether the line-up holds an early-fusion network (a world run does; a text file not)."""
    return any(isinstance(lineup.models.get(n), HarmClassifier) for n in EARLY)


def compute_efficiency(
    lineup: Lineup,
    reps: dict[str, Reps],
    Y_val: np.ndarray,
    Y_test: np.ndarray,
    classes: tuple[str, ...],
    served: str,
    *,
    scale: str,
    seed: int,
    torch_thread_count: int | None,
) -> EfficiencyTable:
    """The best early-fusion network, its four cheaper variants and the served model."""
    early = [n for n in EARLY if isinstance(lineup.models.get(n), HarmClassifier)]
    if not early:
        raise ValueError("efficiency: no early-fusion network in the line-up (has_early_fusion)")
    val, test = reps["val"], reps["test"]
    teacher_name = max(early, key=lambda n: _pr_auc(Y_val, lineup.score(n, val), classes))
    teacher: HarmClassifier = lineup.models[teacher_name]
    blocks = _blocks(val, 1, REQUESTS[scale] + WARMUP, seed, "efficiency/posts")
    x_one = torch.from_numpy(np.nan_to_num(blocks[0].early()))
    variants = compress(
        teacher.network_,
        (x_one,),
        name=teacher_name,
        input_names=["x"],
        threads=torch_thread_count or 1,
    )
    student = distill_student(teacher, reps["train"], scale, seed)
    variants[f"{teacher_name}/distilled"] = Variant.of(
        f"{teacher_name}/distilled",
        f"distilled into a classifier of {STUDENT_HIDDEN} hidden units",
        student.network_,
    )

    def estimator_for(v: Variant) -> HarmClassifier:
        return student if v.name.endswith("/distilled") else with_network(teacher, v.module)

    def score(m: Any) -> tuple[float, float]:
        if isinstance(m, HarmClassifier):
            return (
                _pr_auc(Y_val, m.predict_proba(val.early()), classes),
                _pr_auc(Y_test, m.predict_proba(test.early()), classes),
            )
        return (
            _pr_auc(Y_val, lineup.score(served, val), classes),
            _pr_auc(Y_test, lineup.score(served, test), classes),
        )

    def timer_for(m: Any) -> Timer:
        if isinstance(m, HarmClassifier):
            return partial(time_blocks, lambda r: m.predict_proba(r.early()), blocks, WARMUP)
        return partial(time_blocks, lambda r: score_model(served, m, r, lineup), blocks, WARMUP)

    with torch_threads(torch_thread_count):
        return evaluate_variants(
            variants,
            estimator_for=estimator_for,
            score=score,
            timer_for=timer_for,
            model_inputs=lambda m: (x_one,),
            model_calls=REQUESTS[scale],
            others={served: ("the serving step's choice", lineup.models[served])},
            teacher=teacher_name,
            previously_served=served,
            rounds=ROUNDS[scale],
            budget_ms=REQUIREMENTS.latency_budget_ms,
            metric="mean PR-AUC",
            higher_is_better=True,
            measured="one post from its ready representations through the classifier",
        )


def compute_budget_sweep(
    lineup: Lineup,
    reps: dict[str, Reps],
    Y_val: np.ndarray,
    classes: tuple[str, ...],
    *,
    scale: str,
    seed: int,
    torch_thread_count: int | None,
) -> BudgetSweep:
    """Every servable model at 1, 10 and 100 posts per call; the rule per budget."""
    names = [n for n in SERVABLE if n in lineup.models]
    val = reps["val"]
    n = SWEEP_REQUESTS[scale] + WARMUP
    blocks = {k: _blocks(val, k, n, seed, f"tradeoffs/posts-{k}") for k in SWEEP_COUNTS}

    def timer_for(name: str, k: int) -> Timer:
        return partial(time_blocks, partial(lineup.score, name), blocks[k], WARMUP)

    before = machine_load()
    with torch_threads(torch_thread_count):
        lat = measure_by_candidates(timer_for, names, SWEEP_COUNTS, SWEEP_ROUNDS[scale])
    return sweep_budgets(
        {name: _pr_auc(Y_val, lineup.score(name, val), classes) for name in names},
        lat,
        metric="mean PR-AUC",
        higher_is_better=True,
        measured="that many posts from their ready representations through the model",
        rounds=SWEEP_ROUNDS[scale],
        load={"before": before, "after": machine_load()},
        unit="posts per call",
    )
