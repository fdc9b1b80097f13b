"""Video recommendation, step 6: the user tower made cheaper, and batch vs online prediction.

**Efficiency.** The two-tower network is the system's deep model, and its online half is the
user tower (the video tower runs offline, into the ANN index). The user tower is made cheaper
four ways (:mod:`mlsd.efficiency`): a **distilled** student (the same tower shape with 8-dim id
embeddings and a 16-unit MLP, trained to reproduce the teacher's user embeddings, MSE, for the
users of the day), **magnitude pruning** of half the linear weights, **dynamic int8** and an
**ONNX** export run by onnxruntime. Each serves inside a copy of the recommender (the video
embeddings and the index as trained), is scored by the two-tower source's recall@100 on two
disjoint samples of today's users (validation: what the rule chooses by; test: reported), and
timed on a whole home-feed request (retrieval, ranking, re-ranking), interleaved.

**The trade-off table** re-makes the serving choice among the stacks the offline step compares
(popular, co-watch, two-tower alone, + ranking, + re-ranking) for budgets of 1, 5, 10, 50 and
200 ms p99 and 50, 200 and 1,000 candidates per request, by the offline step's nDCG@10.

**Batch vs online** (the chapter's "batch prediction vs online prediction"): the batch step's
measured precompute cost, lookup latency and nDCG@10 of lists 0, 1, 2 days old, against online
feeds, with the daily compute each needs at the chapter's scale (1M users, 1,000 requests/s).
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import time
from functools import partial

import numpy as np
import torch
from torch import nn

from mlsd import metrics as mm
from mlsd.efficiency import Variant, compress, distill
from mlsd.efficiency_table import EfficiencyTable, evaluate_variants
from mlsd.latency import Timer, machine_load
from mlsd.rng import rng, seed_of
from mlsd.systems.video_rec import REQUIREMENTS
from mlsd.systems.video_rec.features import Demographics
from mlsd.systems.video_rec.model_two_tower import TwoTowerRetriever, _init_weights, _Net
from mlsd.systems.video_rec.serving import Recommender
from mlsd.systems.video_rec.serving_batch import BatchResult
from mlsd.systems.video_rec.world import VideoRecWorld
from mlsd.tradeoffs import (
    BatchVsOnline,
    BudgetSweep,
    PredictionMode,
    measure_by_candidates,
    sweep_budgets,
)
from mlsd.training import torch_threads

log = logging.getLogger(__name__)

TEACHER = "two_tower"
RECALL_K = 100
USERS = {"tiny": 60, "small": 300, "medium": 400}
REQUESTS = {"tiny": 8, "small": 40, "medium": 40}
ROUNDS = {"tiny": 2, "small": 5, "medium": 5}
STUDENT = {"dim": 8, "hidden": 16}
WARMUP = 2
SWEEP_COUNTS = (50, 200, 1000)  # candidates per request (retrieved, or ranked)
SWEEP_REQUESTS = {"tiny": 4, "small": 20, "medium": 20}
SWEEP_ROUNDS = {"tiny": 2, "small": 3, "medium": 3}
SWEEP_MODES = ("popular", "cowatch", "two_tower", "ranked", "full")
FEED_K = 20
CHAPTER_USERS = 1_000_000  # REQUIREMENTS.scale: up to 1M users


class UserTower(nn.Module):
    """The user half of a two-tower network as a module: ``forward`` is ``user_tower``."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(
        self,
        user: torch.Tensor,
        hist_ids: torch.Tensor,
        hist_title: torch.Tensor,
        mask: torch.Tensor,
        demo: torch.Tensor,
    ) -> torch.Tensor:
        out = self.net.user_tower(user, hist_ids, hist_title, mask, demo)  # type: ignore[operator]
        return out  # type: ignore[no-any-return]


class ServedTowers(nn.Module):
    """The trained video tower with another user tower (a variant)."""

    def __init__(self, net: nn.Module, user: nn.Module) -> None:
        super().__init__()
        self.net, self.user = net, user

    def user_tower(self, *inputs: torch.Tensor) -> torch.Tensor:
        return self.user(*inputs)  # type: ignore[no-any-return]

    def video_tower(self, *inputs: torch.Tensor) -> torch.Tensor:
        return self.net.video_tower(*inputs)  # type: ignore[no-any-return,operator]


class StudentUserTower(nn.Module):
    """A smaller user tower (its own id embeddings and MLP; the title projection is the
    teacher's, frozen), the distillation student."""

    def __init__(self, teacher: _Net, n_users: int, n_videos: int, dim: int, hidden: int) -> None:
        super().__init__()
        head = teacher.user_mlp[-1]
        assert isinstance(head, nn.Linear)
        out = head.out_features
        self.user_id = nn.Embedding(n_users + 1, dim)
        self.video_id = nn.Embedding(n_videos + 1, dim)
        self.title = copy.deepcopy(teacher.title).requires_grad_(False)
        self.age, self.country, self.language = (
            copy.deepcopy(teacher.age),
            copy.deepcopy(teacher.country),
            copy.deepcopy(teacher.language),
        )
        width = 2 * dim + self.title.out_features + 24
        self.mlp = nn.Sequential(nn.Linear(width, hidden), nn.ReLU(), nn.Linear(hidden, out))

    def forward(
        self,
        user: torch.Tensor,
        hist_ids: torch.Tensor,
        hist_title: torch.Tensor,
        mask: torch.Tensor,
        demo: torch.Tensor,
    ) -> torch.Tensor:
        w = mask / mask.sum(1, keepdim=True).clamp(min=1.0)  # (B, H)
        pooled_id = torch.einsum("bh,bhd->bd", w, self.video_id(hist_ids))  # (B, dim)
        pooled_title = torch.einsum("bh,bhd->bd", w, self.title(hist_title))  # (B, D)
        parts = [
            self.user_id(user),
            pooled_id,
            pooled_title,
            self.age(demo[:, 0]),
            self.country(demo[:, 1]),
            self.language(demo[:, 2]),
        ]
        return torch.nn.functional.normalize(self.mlp(torch.cat(parts, dim=1)), dim=1)


def with_user_tower(rec: Recommender, user: nn.Module) -> Recommender:
    tower = copy.copy(rec.tower)
    tower.net_ = ServedTowers(rec.tower.net_, user)  # type: ignore[assignment]
    return dataclasses.replace(rec, tower=tower)


def _user_inputs(rec: Recommender, users: np.ndarray) -> tuple[torch.Tensor, ...]:
    x = rec._tower_inputs(rec.us, users, Demographics.of(rec.users, users), True)
    return rec.tower._user_tensors(rec.cat, x)


def _recall(rec: Recommender, users: np.ndarray, relevant: dict[int, set[int]]) -> float:
    demo = Demographics.of(rec.users, users)
    lists = rec.sources(rec.us, users, demo, True, RECALL_K, 0, 0)["two_tower"]
    recs = {int(u): [int(v) for v in r] for u, r in zip(users, lists, strict=True)}
    return float(mm.mean_over_users(mm.recall_at_k, recs, relevant, RECALL_K))


def _time_requests(rec: Recommender, users: np.ndarray) -> np.ndarray:
    samples = []
    for j, u in enumerate(users):
        t0 = time.perf_counter()
        rec.recommend_users(np.array([u]), 20)
        if j >= WARMUP:
            samples.append((time.perf_counter() - t0) * 1e3)
    return np.asarray(samples)


def distill_student(rec: Recommender, users: np.ndarray, seed: int) -> StudentUserTower:
    """The student tower, trained on the teacher's user embeddings of ``users``."""
    tower: TwoTowerRetriever = rec.tower
    inputs = _user_inputs(rec, users)
    with torch.inference_mode():
        target = tower.net_.user_tower(*inputs).float()

    def student() -> nn.Module:
        with torch.random.fork_rng(devices=[]):
            net = StudentUserTower(
                tower.net_, tower.n_users_, tower.n_videos_, STUDENT["dim"], STUDENT["hidden"]
            )
        _init_weights(net.mlp, torch.Generator().manual_seed(seed_of(seed, "vr/distill/init")))
        return net

    result = distill(
        target.clone(),
        student,
        list(inputs),
        objective="regression",
        epochs=30,
        batch_size=64,
        lr=1e-2,
        seed=seed_of(seed, "video-rec/distill/training"),
        num_threads=1,
    )
    assert isinstance(result.student, StudentUserTower)
    return result.student


def compute_efficiency(
    rec: Recommender,
    world: VideoRecWorld,
    *,
    scale: str,
    seed: int,
    torch_thread_count: int | None,
) -> EfficiencyTable:
    """The user tower, its four cheaper variants: recall@100, size and request p99."""
    known = np.flatnonzero(world.users["signup_day"].to_numpy() < world.day)
    draw = rng(seed, "video-rec/efficiency/users")
    n = min(USERS[scale], len(known) // 2)
    picked = draw.choice(known, 2 * n, replace=False)
    val_users, test_users = np.sort(picked[:n]), np.sort(picked[n:])
    rel_val, _ = world.relevance_sample(val_users, rng(seed, "video-rec/efficiency/val-rel"))
    rel_test, _ = world.relevance_sample(test_users, rng(seed, "video-rec/efficiency/test-rel"))
    relevant = {u: set(r) for u, r in (rel_val | rel_test).items()}
    variants = compress(
        UserTower(rec.tower.net_),
        _user_inputs(rec, val_users[:4]),
        name=TEACHER,
        input_names=["user", "hist_ids", "hist_title", "mask", "demo"],
        threads=torch_thread_count or 1,
    )
    train_users = np.setdiff1d(known, picked)  # the student never sees the scored users
    student = distill_student(rec, train_users if len(train_users) else known, seed)
    variants[f"{TEACHER}/distilled"] = Variant.of(
        f"{TEACHER}/distilled",
        f"distilled into a user tower of {STUDENT['dim']}-dim ids, {STUDENT['hidden']} units",
        student,
    )
    timed = draw.choice(known, REQUESTS[scale] + WARMUP)
    one = _user_inputs(rec, timed[:1])
    with torch_threads(torch_thread_count):
        return evaluate_variants(
            variants,
            estimator_for=lambda v: with_user_tower(rec, v.module),
            score=lambda r: (_recall(r, val_users, relevant), _recall(r, test_users, relevant)),
            timer_for=lambda r: partial(_time_requests, r, timed),
            model_inputs=lambda r: one,
            model_calls=REQUESTS[scale],
            teacher=TEACHER,
            previously_served=TEACHER,
            rounds=ROUNDS[scale],
            budget_ms=REQUIREMENTS.latency_budget_ms,
            metric=f"two-tower recall@{RECALL_K}",
            higher_is_better=True,
            measured="one home-feed request: user tower, ANN, ranking, re-ranking",
            notes=(
                "Only the user tower runs per request; the video tower's embeddings sit in the "
                "ANN index, so every variant shares them (sizes are of the whole network for "
                "the teacher's variants, of the user tower for the student).",
            ),
        )


def batch_vs_online(batch: BatchResult, online_mean_ms: float) -> BatchVsOnline:
    """The batch step's measurements as the chapter's trade-off, at the chapter's scale."""
    per_user_ms = batch.seconds * 1e3 / max(batch.users, 1)
    per_day = REQUIREMENTS.throughput_qps * 86_400
    modes = [
        PredictionMode(
            f"batch, lists {row['days_stale']:g} day(s) old",
            float(row["ndcg_batch"]),
            24.0 * float(row["days_stale"]),
            float(batch.lookup_ms["p99"]),
            float(CHAPTER_USERS),
            per_user_ms,
        )
        for row in batch.staleness
    ]
    modes.append(
        PredictionMode(
            "online",
            float(batch.staleness[0]["ndcg_online"]),
            0.0,
            float(batch.online_p99_ms),
            per_day,
            online_mean_ms,
        )
    )
    return BatchVsOnline(
        "nDCG@10",
        tuple(modes),
        f"{CHAPTER_USERS:,} users, one batch list each per day; "
        f"{REQUIREMENTS.throughput_qps:,.0f} requests/s online",
    )


def _sweep_timer(rec: Recommender, users: np.ndarray, mode: str, count: int) -> Timer:
    """One round of home-feed requests under ``mode`` with ``count`` candidates: a retrieval-only
    stack returns its source's top ``count``; a ranked stack ranks ``count`` candidates (the
    sources' shares kept: 200 / 50 / 100 of the default 350) and serves the top 20."""
    if mode in ("ranked", "full"):
        share = count / (rec.n_tower + rec.n_popular + rec.n_cowatch)
        served = dataclasses.replace(
            rec,
            n_tower=max(1, round(rec.n_tower * share)),
            n_popular=max(1, round(rec.n_popular * share)),
            n_cowatch=max(1, round(rec.n_cowatch * share)),
        )
        k = FEED_K
    else:
        served, k = rec, count

    def run() -> np.ndarray:
        samples = []
        for j, u in enumerate(users):
            t0 = time.perf_counter()
            served.recommend_users(np.array([u]), k, mode)
            if j >= WARMUP:
                samples.append((time.perf_counter() - t0) * 1e3)
        return np.asarray(samples)

    return run


def compute_budget_sweep(
    rec: Recommender,
    world: VideoRecWorld,
    validation: dict[str, float],
    *,
    scale: str,
    seed: int,
    torch_thread_count: int | None,
) -> BudgetSweep:
    """Every stack of the offline comparison (by its offline nDCG@10) at 50, 200 and 1,000
    candidates per request; the rule per budget."""
    names = [m for m in SWEEP_MODES if m in validation]
    known = np.flatnonzero(world.users["signup_day"].to_numpy() < world.day)
    timed = rng(seed, "video-rec/tradeoffs/users").choice(known, SWEEP_REQUESTS[scale] + WARMUP)
    before = machine_load()
    with torch_threads(torch_thread_count):
        lat = measure_by_candidates(
            lambda m, n: _sweep_timer(rec, timed, m, n), names, SWEEP_COUNTS, SWEEP_ROUNDS[scale]
        )
    return sweep_budgets(
        {m: validation[m] for m in names},
        lat,
        metric="nDCG@10",
        higher_is_better=True,
        measured=(
            "one home-feed request of a known user through Recommender.recommend_users; quality "
            "is step 5's offline nDCG@10 at the default 350 candidates (the figure the served "
            "stack is chosen by; the stacks have no separate test split)"
        ),
        rounds=SWEEP_ROUNDS[scale],
        load={"before": before, "after": machine_load()},
        unit="candidates per request",
    )
