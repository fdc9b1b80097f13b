"""Event recommendation, step 6: the MLP made cheaper, and the latency trade-off table.

The MLP is the line-up's deep model. It is made cheaper four ways (:mod:`mlsd.efficiency`): a
**distilled** student (one hidden layer of 8 units, trained on the MLP's logits for its own
training rows: the training and validation days), **magnitude pruning** of half its weights,
**dynamic int8** and an **ONNX** export run by onnxruntime. Each keeps the estimator around the
network, so it is ranked with the same ``score`` on the labelled validation sessions (what the
rule chooses by) and test sessions (nDCG@10), and timed scoring 100 candidate events' feature
rows, interleaved with the served model.

The **trade-off table** re-makes the choice for budgets of 1, 5, 10, 50 and 200 ms p99 and 10,
100 and 1,000 candidate events (ready-made feature rows through each model), by the validation
nDCG@10 the model selection measured.
"""

from __future__ import annotations

import logging
from functools import partial
from typing import Any

import torch

from mlsd.efficiency import Variant, compress, distill, with_network
from mlsd.efficiency_table import EfficiencyTable, evaluate_variants
from mlsd.latency import Timer, machine_load, row_blocks, time_blocks
from mlsd.rng import rng, seed_of, torch_generator
from mlsd.systems.event_rec import REQUIREMENTS
from mlsd.systems.event_rec.evaluation import EvalSet
from mlsd.systems.event_rec.evaluation_metrics import ranking_metrics
from mlsd.systems.event_rec.features import TrainingData, rows_of
from mlsd.systems.event_rec.model import MODELS, score
from mlsd.systems.event_rec.model_mlp import EventMLP
from mlsd.systems.event_rec.model_selection import TrainedModels
from mlsd.tradeoffs import BudgetSweep, measure_by_candidates, sweep_budgets
from mlsd.training import torch_threads

log = logging.getLogger(__name__)

TEACHER = "mlp"
N_CANDIDATES = 100
STUDENT_HIDDEN = (8,)
REQUESTS = {"tiny": 10, "small": 60, "medium": 60}
ROUNDS = {"tiny": 2, "small": 5, "medium": 5}
SWEEP_COUNTS = (10, 100, 1000)
SWEEP_REQUESTS = {"tiny": 5, "small": 25, "medium": 25}
SWEEP_ROUNDS = {"tiny": 2, "small": 3, "medium": 3}
WARMUP = 2


def _ndcg(model: Any, ev: EvalSet) -> float:
    k = ev.kept
    X = ev.X[k].reset_index(drop=True)
    return float(ranking_metrics(ev.session[k], ev.y[k], score(model, X))["ndcg@10"])


def distill_student(teacher: EventMLP, data: TrainingData, scale: str, seed: int) -> EventMLP:
    """A one-layer MLP trained on the teacher's logits for the teacher's training rows."""
    rows = rows_of(data, data.train_days + data.val_days)
    x = teacher._x(rows.X)
    with torch.inference_mode():
        logits = teacher.network_(x).float()
    shell = with_network(teacher, teacher.network_, hidden=STUDENT_HIDDEN)

    def student() -> torch.nn.Module:
        with torch.random.fork_rng(devices=[]):
            net = shell._network()
        gen = torch_generator(seed, "event-rec/distill/init")
        with torch.no_grad():
            for p in net.body.parameters():
                p.copy_(torch.randn(p.shape, generator=gen) * (0.1 if p.ndim > 1 else 0.0))
            net.mean.copy_(teacher.network_.mean)
            net.std.copy_(teacher.network_.std)
        return net

    result = distill(
        logits.clone(),
        student,
        [x],
        epochs=8 if scale == "tiny" else 12,
        batch_size=1024,
        lr=5e-3,
        seed=seed_of(seed, "event-rec/distill/training"),
        num_threads=teacher.num_threads,
    )
    return with_network(teacher, result.student, hidden=STUDENT_HIDDEN)


def compute_efficiency(
    models: TrainedModels,
    served: str,
    data: TrainingData,
    val_set: EvalSet,
    test_set: EvalSet,
    *,
    scale: str,
    seed: int,
    torch_thread_count: int | None,
) -> EfficiencyTable:
    """The MLP, its four cheaper variants and the served model: nDCG@10, size and p99."""
    teacher = models.models[TEACHER]
    if not isinstance(teacher, EventMLP):
        raise TypeError(f"efficiency: {TEACHER} is not the event MLP")
    X_val = val_set.X[val_set.kept].reset_index(drop=True)
    variants = compress(
        teacher.network_,
        (teacher._x(X_val.iloc[:N_CANDIDATES]),),
        name=TEACHER,
        input_names=["x"],
        threads=torch_thread_count or 1,
    )
    student = distill_student(teacher, data, scale, seed)
    variants[f"{TEACHER}/distilled"] = Variant.of(
        f"{TEACHER}/distilled",
        f"distilled into an MLP of {STUDENT_HIDDEN} hidden units",
        student.network_,
    )
    draw = rng(seed, "event-rec/efficiency/requests")
    blocks = row_blocks(X_val, N_CANDIDATES, REQUESTS[scale] + WARMUP, draw)

    def estimator_for(v: Variant) -> EventMLP:
        return student if v.name.endswith("/distilled") else with_network(teacher, v.module)

    with torch_threads(torch_thread_count):
        return evaluate_variants(
            variants,
            estimator_for=estimator_for,
            score=lambda m: (_ndcg(m, val_set), _ndcg(m, test_set)),
            timer_for=lambda m: partial(time_blocks, partial(score, m), blocks, WARMUP),
            model_inputs=lambda m: (m._x(blocks[0]),),
            model_calls=REQUESTS[scale],
            others={served: ("the serving step's choice", models.models[served])},
            teacher=TEACHER,
            previously_served=served,
            rounds=ROUNDS[scale],
            budget_ms=REQUIREMENTS.latency_budget_ms,
            metric="nDCG@10",
            higher_is_better=True,
            measured=f"{N_CANDIDATES} candidate events' feature rows through the model",
        )


def compute_budget_sweep(
    models: TrainedModels,
    val_set: EvalSet,
    *,
    scale: str,
    seed: int,
    torch_thread_count: int | None,
) -> BudgetSweep:
    """Every model at 10, 100 and 1,000 candidate events; the rule per budget."""
    X_val = val_set.X[val_set.kept].reset_index(drop=True)
    n = SWEEP_REQUESTS[scale] + WARMUP
    blocks = {
        k: row_blocks(X_val, k, n, rng(seed, f"event-rec/tradeoffs/requests-{k}"))
        for k in SWEEP_COUNTS
    }

    def timer_for(name: str, k: int) -> Timer:
        return partial(time_blocks, partial(score, models.models[name]), blocks[k], WARMUP)

    before = machine_load()
    names = [m for m in MODELS if m in models.models]
    with torch_threads(torch_thread_count):
        lat = measure_by_candidates(timer_for, names, SWEEP_COUNTS, SWEEP_ROUNDS[scale])
    return sweep_budgets(
        {name: models.validation[name]["ndcg@10"] for name in names},
        lat,
        metric="nDCG@10",
        higher_is_better=True,
        measured="that many candidate events' feature rows through the model",
        rounds=SWEEP_ROUNDS[scale],
        load={"before": before, "after": machine_load()},
    )
