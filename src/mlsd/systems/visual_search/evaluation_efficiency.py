"""Visual search, step 6: the contrastive CNN made cheaper.

The contrastive CNN is the system's deep model; every uploaded image runs it once. It is made
cheaper four ways (:mod:`mlsd.efficiency`): a **distilled** student (the same network at half
the width, trained to reproduce the teacher's normalised embeddings of the training photos,
MSE), **magnitude pruning** of half the weights (convolutions and head), **dynamic int8** (the
linear head only: dynamic quantisation does not cover convolutions) and an **ONNX** export run
by onnxruntime. The catalogue is embedded again with each variant (a served encoder and its
index go together), each is scored by mAP@10 on half of the queries (validation: the rule)
and the other half (test), and timed on one upload: embedding the photo and exact search of
the catalogue, interleaved.

The **trade-off table** re-makes the choice of the served encoder (raw pixels, colour
histogram, untrained CNN, contrastive CNN) for budgets of 1, 5, 10, 50 and 200 ms p99 and
k = 10, 100 and 1,000 results, each encoder by its mAP@10 on the validation half of the
queries and timed on one upload: embedding the photo and exact search of its catalogue.
"""

from __future__ import annotations

import logging
import time
from functools import partial
from typing import Any

import numpy as np
import torch
from torch import nn

from mlsd.efficiency import Variant, compress, distill, with_network
from mlsd.efficiency_table import EfficiencyTable, evaluate_variants
from mlsd.index import VectorIndex, exact_top_k, faiss_threads
from mlsd.latency import Timer, machine_load
from mlsd.rng import rng, seed_of
from mlsd.systems.visual_search import REQUIREMENTS
from mlsd.systems.visual_search.datasets_split import RetrievalSet
from mlsd.systems.visual_search.evaluation import K, retrieval_metrics
from mlsd.systems.visual_search.features import to_tensor
from mlsd.systems.visual_search.model import CONTRASTIVE, CNNEncoder
from mlsd.systems.visual_search.model_contrastive import ConvNet
from mlsd.systems.visual_search.serving_catalogue import embed_catalogue
from mlsd.tradeoffs import BudgetSweep, measure_by_candidates, sweep_budgets
from mlsd.training import torch_threads

log = logging.getLogger(__name__)

REQUESTS = {"tiny": 10, "small": 40, "medium": 40, "large": 40}
ROUNDS = {"tiny": 2, "small": 5, "medium": 5, "large": 5}
WARMUP = 2


class Normalised(nn.Module):
    """A network's outputs L2-normalised (what the encoder serves)."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.normalize(self.net(x), dim=1)


def _validation_mask(n_queries: int, seed: int) -> np.ndarray:
    """Half of the queries for validation (true), the other half for test (seeded)."""
    order = rng(seed, "visual-search/efficiency/queries").permutation(n_queries)
    val = np.zeros(len(order), bool)
    val[order[: len(order) // 2]] = True
    return val


def _split(rs: RetrievalSet, seed: int) -> tuple[RetrievalSet, RetrievalSet]:
    """Half of the queries for validation, the other half for test (seeded)."""
    val = _validation_mask(len(rs.query_images), seed)
    return rs.with_queries(val), rs.with_queries(~val)


def _time_uploads(enc: CNNEncoder, catalogue: np.ndarray, images: np.ndarray) -> np.ndarray:
    samples = []
    for j in range(len(images)):
        t0 = time.perf_counter()
        exact_top_k(catalogue, enc.encode(images[j : j + 1]), K)
        if j >= WARMUP:
            samples.append((time.perf_counter() - t0) * 1e3)
    return np.asarray(samples)


def distill_student(teacher: CNNEncoder, rs: RetrievalSet, seed: int) -> CNNEncoder:
    """A half-width CNN trained on the teacher's normalised embeddings of the training photos."""
    x = to_tensor(rs.train_images)
    with torch.inference_mode():
        target = Normalised(teacher.net_)(x).float()
    width = max(4, teacher.width // 2)

    def student() -> nn.Module:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed_of(seed, "visual-search/distill/init"))
            return Normalised(ConvNet(width, teacher.embedding_dim))

    result = distill(
        target.clone(),
        student,
        [x],
        objective="regression",
        epochs=15,
        batch_size=64,
        lr=3e-3,
        seed=seed_of(seed, "visual-search/distill/training"),
        num_threads=teacher.num_threads,
    )
    return with_network(teacher, result.student.eval(), attribute="net_", width=width)


def compute_efficiency(
    rs: RetrievalSet,
    teacher: CNNEncoder,
    served: str,
    served_encoder: Any,
    *,
    scale: str,
    seed: int,
    torch_thread_count: int | None,
) -> EfficiencyTable:
    """The contrastive CNN, its four cheaper variants and the served encoder."""
    val_rs, test_rs = _split(rs, seed)
    example = to_tensor(rs.query_images[:2])
    variants = compress(
        teacher.net_,
        (example,),
        name=CONTRASTIVE,
        input_names=["image"],
        threads=torch_thread_count or 1,
    )
    student = distill_student(teacher, rs, seed)
    variants[f"{CONTRASTIVE}/distilled"] = Variant.of(
        f"{CONTRASTIVE}/distilled",
        f"distilled into a CNN of width {student.width}",
        student.net_,
    )
    encoders: dict[str, Any] = {
        name: student
        if name.endswith("/distilled")
        else with_network(teacher, v.module, attribute="net_")
        for name, v in variants.items()
    }
    if served not in encoders:
        encoders[served] = served_encoder
    catalogues, _ = embed_catalogue(rs.index_source, encoders)
    names = {id(enc): name for name, enc in encoders.items()}

    def score(enc: Any) -> tuple[float, float]:
        cat = catalogues[names[id(enc)]]
        return tuple(  # type: ignore[return-value]
            retrieval_metrics(exact_top_k(cat, enc.encode(part.query_images), K)[1], part)["map"]
            for part in (val_rs, test_rs)
        )

    uploads = rs.query_images[
        rng(seed, "visual-search/efficiency/uploads").integers(
            0, len(rs.query_images), REQUESTS[scale] + WARMUP
        )
    ]
    with torch_threads(torch_thread_count):
        return evaluate_variants(
            variants,
            estimator_for=lambda v: encoders[v.name],
            score=score,
            timer_for=lambda enc: partial(_time_uploads, enc, catalogues[names[id(enc)]], uploads),
            model_inputs=lambda enc: (to_tensor(uploads[:1]),),
            model_calls=REQUESTS[scale],
            others={served: ("the serving step's choice", encoders[served])},
            teacher=CONTRASTIVE,
            previously_served=served,
            rounds=ROUNDS[scale],
            budget_ms=REQUIREMENTS.latency_budget_ms,
            metric=f"mAP@{K}",
            higher_is_better=True,
            measured="one upload: embed the photo, exact search of the catalogue",
        )


SWEEP_K = (10, 100, 1000)
SWEEP_REQUESTS = {"tiny": 4, "small": 20, "medium": 20, "large": 20}
SWEEP_ROUNDS = {"tiny": 2, "small": 3, "medium": 3, "large": 3}


def _time_queries(enc: Any, index: VectorIndex, images: np.ndarray, k: int) -> np.ndarray:
    samples = []
    for j in range(len(images)):
        t0 = time.perf_counter()
        index.search(enc.encode(images[j : j + 1]), k)
        if j >= WARMUP:
            samples.append((time.perf_counter() - t0) * 1e3)
    return np.asarray(samples)


def compute_budget_sweep(
    rs: RetrievalSet,
    encoders: dict[str, Any],
    embeddings: dict[str, tuple[np.ndarray, np.ndarray]],
    *,
    scale: str,
    seed: int,
    torch_thread_count: int | None,
) -> BudgetSweep:
    """Every embedded encoder (by its validation mAP@10) timed on one upload, embedding and
    exact search, at k = 10, 100 and 1,000 results; the rule per budget."""
    val = _validation_mask(len(rs.query_images), seed)
    val_rs = rs.with_queries(val)
    names = [n for n in embeddings if n in encoders]
    accuracy = {
        n: retrieval_metrics(exact_top_k(embeddings[n][0], embeddings[n][1][val], K)[1], val_rs)[
            "map"
        ]
        for n in names
    }
    indexes = {n: VectorIndex.build("flat", embeddings[n][0]) for n in names}
    uploads = rs.query_images[
        rng(seed, "visual-search/tradeoffs/uploads").integers(
            0, len(rs.query_images), SWEEP_REQUESTS[scale] + WARMUP
        )
    ]

    def timer_for(name: str, k: int) -> Timer:
        return partial(_time_queries, encoders[name], indexes[name], uploads, k)

    before = machine_load()
    with torch_threads(torch_thread_count), faiss_threads(torch_thread_count):
        lat = measure_by_candidates(timer_for, names, SWEEP_K, SWEEP_ROUNDS[scale])
    return sweep_budgets(
        accuracy,
        lat,
        metric=f"mAP@{K}",
        higher_is_better=True,
        measured=(
            f"one upload: embed the photo, exact search of {rs.n_index:,} catalogue "
            f"embeddings for the top k (at most all of them); mAP@{K} on the validation half "
            "of the queries"
        ),
        rounds=SWEEP_ROUNDS[scale],
        load={"before": before, "after": machine_load()},
        unit="results (k)",
    )
