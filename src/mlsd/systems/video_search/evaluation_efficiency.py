"""Video search, step 6: the dual encoder's query tower made cheaper.

The dual encoder is the system's deep model, and its online half is the query tower (the video
tower's vectors sit in the visual index). The query tower is made cheaper four ways
(:mod:`mlsd.efficiency`): a **distilled** student (one hidden layer of 32 units, trained to
reproduce the teacher's query vectors, MSE, for the training days' queries), **magnitude
pruning** of half the weights, **dynamic int8**, and an **ONNX** export run by onnxruntime.
Each serves inside a copy of the searcher (the video vectors as trained) and is scored by the
visual retriever's nDCG@10 on the judged validation queries (the rule) and test queries, and
timed on the whole served search (encoding, both halves, fusion, re-ranking), interleaved.

The **trade-off table** re-makes the choice of the served ranker (BM25, semantic, visual, the
reciprocal-rank fusions, the learned fusion) for budgets of 1, 5, 10, 50 and 200 ms p99 and 10,
100 and 1,000 candidates per retriever, by the validation nDCG@10 the serving step chose with.
"""

from __future__ import annotations

import copy
import logging
import time
from functools import partial
from typing import Any

import numpy as np
import torch
from torch import nn

from mlsd import metrics as mm
from mlsd.efficiency import Variant, compress, distill
from mlsd.efficiency_table import EfficiencyTable, evaluate_variants
from mlsd.latency import Timer, machine_load
from mlsd.rng import seed_of
from mlsd.systems.video_search import REQUIREMENTS
from mlsd.systems.video_search.model_dual import DualEncoder
from mlsd.systems.video_search.serving import METHODS, VideoSearcher
from mlsd.tradeoffs import BudgetSweep, measure_by_candidates, sweep_budgets
from mlsd.training import torch_threads

log = logging.getLogger(__name__)

TEACHER = "dual_encoder"
REQUESTS = {"tiny": 8, "small": 40, "medium": 40, "large": 40}
ROUNDS = {"tiny": 2, "small": 5, "medium": 5, "large": 5}
STUDENT_HIDDEN = 32
WARMUP = 2

Judged = tuple[list[str], np.ndarray, list[dict[int, int]]]  # texts, days, grades


class QueryTower(nn.Module):
    """The query half of the dual encoder as a module: ``forward`` is ``queries``."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, q: torch.Tensor) -> torch.Tensor:
        return self.net.queries(q)  # type: ignore[no-any-return,operator]


class StudentQueryTower(nn.Module):
    def __init__(self, text_dim: int, hidden: int, dim: int) -> None:
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(text_dim, hidden), nn.ReLU(), nn.Linear(hidden, dim))

    def forward(self, q: torch.Tensor) -> torch.Tensor:
        return nn.functional.normalize(self.mlp(q), dim=1)


class ServedDual(nn.Module):
    """The trained video tower with another query tower (a variant)."""

    def __init__(self, net: nn.Module, query: nn.Module) -> None:
        super().__init__()
        self.net, self.query_tower = net, query

    def queries(self, q: torch.Tensor) -> torch.Tensor:
        return self.query_tower(q)  # type: ignore[no-any-return]

    def videos(self, frames: torch.Tensor) -> torch.Tensor:
        return self.net.videos(frames)  # type: ignore[no-any-return,operator]


def with_query_tower(searcher: VideoSearcher, query: nn.Module) -> VideoSearcher:
    dual = copy.copy(searcher.dual)
    assert dual is not None
    dual.net_ = ServedDual(searcher.dual.net_, query)  # type: ignore[union-attr,assignment]
    served = copy.copy(searcher)
    served.dual = dual
    return served


def visual_ndcg(searcher: VideoSearcher, judged: Judged) -> float:
    texts, days, grades = judged
    ranks = searcher.rank_many(texts, days, ("visual",), max_day=True)["visual"]
    per_query = [
        mm.ndcg_at_k([int(r) for r in rows], g, 10) for rows, g in zip(ranks, grades, strict=True)
    ]
    return float(np.nanmean(per_query))


def _time_searches(searcher: VideoSearcher, queries: list[str]) -> np.ndarray:
    samples = []
    for j, q in enumerate(queries):
        t0 = time.perf_counter()
        searcher.search(q)
        if j >= WARMUP:
            samples.append((time.perf_counter() - t0) * 1e3)
    return np.asarray(samples)


def compute_efficiency(
    searcher: VideoSearcher,
    served: str,
    train_queries: list[str],
    validation: Judged,
    test: Judged,
    *,
    scale: str,
    seed: int,
    torch_thread_count: int | None,
) -> EfficiencyTable:
    """The query tower, its four cheaper variants: visual nDCG@10, size and search p99."""
    dual = searcher.dual
    if not isinstance(dual, DualEncoder):
        raise ValueError("efficiency: this searcher has no dual encoder")
    tower = QueryTower(dual.net_)
    q_train = torch.from_numpy(np.asarray(searcher.encoder.encode(train_queries), np.float32))
    variants = compress(
        tower,
        (q_train[:4],),
        name=TEACHER,
        input_names=["query"],
        threads=torch_thread_count or 1,
    )
    with torch.inference_mode():
        target = tower(q_train).float()

    def student() -> nn.Module:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed_of(seed, "video-search/distill/init"))
            return StudentQueryTower(dual.text_dim_, STUDENT_HIDDEN, dual.dim)

    distilled = distill(
        target.clone(),
        student,
        [q_train],
        objective="regression",
        epochs=30,
        batch_size=128,
        lr=3e-3,
        seed=seed_of(seed, "video-search/distill/training"),
        num_threads=1,
    )
    variants[f"{TEACHER}/distilled"] = Variant.of(
        f"{TEACHER}/distilled",
        f"distilled into a query tower of {STUDENT_HIDDEN} hidden units",
        distilled.student,
    )
    timed = (validation[0] * (1 + (REQUESTS[scale] + WARMUP) // max(len(validation[0]), 1)))[
        : REQUESTS[scale] + WARMUP
    ]
    one = (q_train[:1],)

    def estimator_for(v: Variant) -> Any:
        return with_query_tower(searcher, v.module)

    with torch_threads(torch_thread_count):
        return evaluate_variants(
            variants,
            estimator_for=estimator_for,
            score=lambda s: (visual_ndcg(s, validation), visual_ndcg(s, test)),
            timer_for=lambda s: partial(_time_searches, s, timed),
            model_inputs=lambda s: one,
            model_calls=REQUESTS[scale],
            teacher=TEACHER,
            previously_served=TEACHER,
            rounds=ROUNDS[scale],
            budget_ms=REQUIREMENTS.latency_budget_ms,
            metric="visual nDCG@10",
            higher_is_better=True,
            measured=f"one served search ({served}): encoding, both halves, fusion, re-ranking",
            notes=(
                "Only the query tower runs per search; the video tower's vectors sit in the "
                "visual index and every variant shares them.",
            ),
        )


SWEEP_DEPTHS = (10, 100, 1000)
SWEEP_REQUESTS = {"tiny": 4, "small": 20, "medium": 20, "large": 20}
SWEEP_ROUNDS = {"tiny": 2, "small": 3, "medium": 3, "large": 3}


def compute_budget_sweep(
    searcher: VideoSearcher,
    validation: dict[str, float],
    queries: list[str],
    *,
    scale: str,
    torch_thread_count: int | None,
) -> BudgetSweep:
    """Every ranker of the served search (by its validation nDCG@10) at 10, 100 and 1,000
    candidates per retriever; the rule per budget."""
    n = SWEEP_REQUESTS[scale] + WARMUP
    timed = (queries * (1 + n // max(len(queries), 1)))[:n]

    def timer_for(method: str, depth: int) -> Timer:
        served = copy.copy(searcher)
        served.ranker, served.depth = method, depth
        return partial(_time_searches, served, timed)

    names = [m for m in validation if m in METHODS]
    before = machine_load()
    with torch_threads(torch_thread_count):
        lat = measure_by_candidates(timer_for, names, SWEEP_DEPTHS, SWEEP_ROUNDS[scale])
    return sweep_budgets(
        {m: validation[m] for m in names},
        lat,
        metric="nDCG@10",
        higher_is_better=True,
        measured="one served search with that ranker (encoding, both halves, re-ranking)",
        rounds=SWEEP_ROUNDS[scale],
        load={"before": before, "after": machine_load()},
        unit="candidates per retriever",
    )
