"""Ad click prediction, step 6 (serving): the latency budget picks the served model.

Every model is timed in-process, one thread, on the request the budget is written for: on the
simulated world, a user, a context and 100 candidate ads through the online store, feature
assembly and the model (:class:`~.serving.AdClickScorer`, exactly the serving path); on a file,
100 rows of ready-made features through the model. The served model is the most accurate one on
the validation day (lowest NCE) whose p99 meets the budget of the requirements; if none does, the
most accurate one is served and the run says so. The models are timed in interleaved rounds and
judged by the median over rounds, with the machine's load recorded beside the figures and a
p99 near the budget flagged as a close call: the same run on the same machine serves the same
model, and a reader sees when a choice was tight.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import numpy as np
import pandas as pd

from mlsd.latency import in_rounds, machine_load
from mlsd.report import Blueprint
from mlsd.rng import rng
from mlsd.runner import ProgressFn
from mlsd.stores import FrameStore
from mlsd.systems.ad_click import REQUIREMENTS
from mlsd.systems.ad_click.evaluation import OfflineEvaluation
from mlsd.systems.ad_click.features_split import TrainingData
from mlsd.systems.ad_click.model import TrainedModels
from mlsd.systems.ad_click.serving import AdClickScorer
from mlsd.systems.ad_click.world import AdClickWorld
from mlsd.training import torch_threads

log = logging.getLogger(__name__)

N_CANDIDATES = 100
WARMUP = 5
ROUNDS = 5  # interleaved timing rounds; each model's figures are medians over them
MARGIN = 0.2  # a p99 within 20% of the budget is a close call, flagged in the blueprint
CLOSE_CALL_ROUNDS = 2 * ROUNDS  # a close call is timed again in this many rounds, judged on them
LATENCY_REQUESTS = {"tiny": 100, "small": 400, "medium": 500, "large": 500}
DEVICES = ("ios", "web")

# one scoring request: (user_id, hour, device, candidate ad ids)
Request = tuple[int, int, str, list[int]]


@dataclass(frozen=True)
class ServingChoice:
    """The serving step: each model's latency, the one served and why, and (world runs) every
    model behind the online store, which the online A/B test puts in its arms."""

    chosen: str
    because: str
    within_budget: bool  # whether some model met the budget
    budget_ms: float
    measured: str  # what one timed request is
    n_requests: int
    latency_ms: Mapping[str, Mapping[str, float]]  # model -> p50 / p99 / mean / p99 spread
    load: Mapping[str, Mapping[str, float]]  # machine load before and after the timing
    close_calls: Sequence[str]  # models whose p99 is within MARGIN of the budget
    scorers: Mapping[str, AdClickScorer] = field(default_factory=dict)
    retimed: Sequence[str] = ()  # close calls of the first rounds, judged on CLOSE_CALL_ROUNDS

    def meets_budget(self, name: str) -> bool:
        return bool(self.latency_ms[name]["p99"] <= self.budget_ms)

    def runtime(self, name: str) -> str | None:
        """What computes the model on the serving path (:mod:`.serving_kernels`), if timed
        behind the store."""
        scorer = self.scorers.get(name)
        return None if scorer is None else scorer.kernel.runtime

    def metrics(self) -> dict[str, Any]:
        return {
            "models": {
                name: {
                    "latency_ms": dict(lat),
                    "meets_budget": self.meets_budget(name),
                    "serving_runtime": self.runtime(name),
                }
                for name, lat in self.latency_ms.items()
            },
            "chosen_model": self.chosen,
            "serving": {
                "chosen_because": self.because,
                "latency_budget_ms": self.budget_ms,
                "latency_measured": self.measured,
                "latency_requests": self.n_requests,
                "latency_rounds": ROUNDS,
                "machine_load": {k: dict(v) for k, v in self.load.items()},
                "close_calls": list(self.close_calls),
                "margin": MARGIN,
                "retimed": list(self.retimed),
                "retimed_rounds": CLOSE_CALL_ROUNDS,
            },
        }


def world_requests(world: AdClickWorld, n: int, seed: int) -> list[Request]:
    """``n`` feed requests on the day after the log: a user, an hour, a device and
    ``N_CANDIDATES`` distinct live ads each."""
    draw = rng(seed, "ad-click/serving/latency-requests")
    user_ids = world.users["user_id"].to_numpy()
    active = world.ads.loc[world.ads["created_day"] < world.n_days, "ad_id"].to_numpy()
    k = min(N_CANDIDATES, len(active))
    return [
        (
            int(draw.choice(user_ids)),
            int(draw.integers(24)),
            str(draw.choice(DEVICES)),
            draw.choice(active, size=k, replace=False).tolist(),
        )
        for _ in range(n)
    ]


def _time_requests(scorer: AdClickScorer, requests: list[Request]) -> np.ndarray:
    """Latency of each request in ms (the first few are warm-up and not counted)."""
    samples = []
    for j, req in enumerate(requests):
        t0 = time.perf_counter()
        scorer.score(*req)
        if j >= WARMUP:
            samples.append((time.perf_counter() - t0) * 1e3)
    return np.asarray(samples)


def _time_blocks(model: Any, blocks: list[pd.DataFrame]) -> np.ndarray:
    """Latency of scoring each block of feature rows in ms (after the warm-up)."""
    samples = []
    for j, block in enumerate(blocks):
        t0 = time.perf_counter()
        model.predict_proba(block)
        if j >= WARMUP:
            samples.append((time.perf_counter() - t0) * 1e3)
    return np.asarray(samples)


def _in_rounds(timers: Mapping[str, Callable[[], np.ndarray]]) -> dict[str, dict[str, float]]:
    """Time every model in :data:`ROUNDS` interleaved rounds (:func:`mlsd.latency.in_rounds`:
    medians over rounds, with the spread of the round p99s)."""
    return in_rounds(timers, ROUNDS)


def compute_serving(
    trained: TrainedModels,
    offline: OfflineEvaluation,
    data: TrainingData,
    world: AdClickWorld | None,
    *,
    scale: str,
    seed: int,
    torch_thread_count: int | None,
    progress: ProgressFn | None = None,
) -> ServingChoice:
    """Time every model on the serving path and pick the one to serve."""
    n_req = LATENCY_REQUESTS[scale] // ROUNDS + WARMUP
    budget = REQUIREMENTS.latency_budget_ms
    models = trained.models
    scorers: dict[str, AdClickScorer] = {}
    timers: dict[str, Callable[[], np.ndarray]] = {}
    if world is not None and data.tables is not None:
        store = FrameStore(data.tables)  # columnar, over the frames themselves (no copy)
        requests = world_requests(world, n_req, seed)
        measured = (
            f"{N_CANDIDATES} candidates: online-store lookups (integer gathers into feature "
            "arrays), the model on one contiguous batch, the ranking"
        )
        for name, model in models.items():
            scorers[name] = AdClickScorer(model, store, name)
            timers[name] = partial(_time_requests, scorers[name], requests)
    else:
        draw = rng(seed, "ad-click/serving/latency-requests")
        X = data.X
        blocks = [X.iloc[draw.integers(0, len(X), N_CANDIDATES)] for _ in range(n_req)]
        measured = f"{N_CANDIDATES} rows of ready-made features through the model (no store)"
        timers = {name: partial(_time_blocks, model, blocks) for name, model in models.items()}
    if progress is not None:
        progress(f"timing {len(models)} models in {ROUNDS} rounds", 0, 1)
    load_before = machine_load()
    with torch_threads(torch_thread_count):  # as `mlsd serve` runs
        lat = _in_rounds(timers)
        # a p99 near the budget is timed again in more rounds and judged on those: the noise
        # of one run near the line moves the choice less often
        retimed = [n for n in models if abs(lat[n]["p99"] - budget) <= MARGIN * budget]
        if retimed:
            lat |= in_rounds({n: timers[n] for n in retimed}, CLOSE_CALL_ROUNDS)
    load = {"before": load_before, "after": machine_load()}
    eligible = [n for n in models if lat[n]["p99"] <= budget]
    chosen = min(eligible or list(models), key=offline.validation_nce)
    because = (
        f"lowest validation NCE ({offline.validation_nce(chosen):.4f}) among the models whose "
        f"p99 (median of {CLOSE_CALL_ROUNDS if chosen in retimed else ROUNDS} rounds: "
        f"{lat[chosen]['p99']:.2f} ms for {N_CANDIDATES} "
        f"candidates) meets the {budget:g} ms budget"
        if eligible
        else f"no model met the {budget:g} ms budget on this machine; served the most accurate "
        f"({chosen}) and flagged it"
    )
    close = [n for n in models if abs(lat[n]["p99"] - budget) <= MARGIN * budget]
    return ServingChoice(
        chosen,
        because,
        bool(eligible),
        budget,
        measured,
        (n_req - WARMUP) * ROUNDS,
        lat,
        load,
        close,
        scorers,
        retimed,
    )


def report_serving(bp: Blueprint, result: ServingChoice, offline: OfflineEvaluation) -> None:
    """The blueprint's serving section: the accuracy / latency trade-off and the choice."""
    budget, chosen = result.budget_ms, result.chosen
    bp.section("Serving")
    before, after = result.load["before"], result.load["after"]
    load = (
        f"{before['load_1m']:.2f} → {after['load_1m']:.2f} (1-minute average) on "
        f"{before['cores']:g} cores"
    )
    bp.text(
        f"Latency measured in-process, one thread, over {result.n_requests} requests of "
        f"{result.measured}, in {ROUNDS} interleaved rounds (every figure is the median over the "
        f"rounds, so one burst of load moves no decision). Machine load while timing: {load}. "
        + (
            f"The served model is the most accurate one whose p99 meets the {budget:g} ms "
            f"budget: **{chosen}**, because it has the {result.because}."
            if result.within_budget
            else f"**{chosen}** is served: {result.because}."
        )
    )
    if result.retimed:
        bp.text(
            f"Near the budget after the first {ROUNDS} rounds (within {MARGIN:.0%}), "
            f"{', '.join(result.retimed)} were timed again in {CLOSE_CALL_ROUNDS} rounds; "
            "their figures below are the medians of those."
        )
    if result.close_calls:
        bp.text(
            f"Close call: the p99 of {', '.join(result.close_calls)} is within "
            f"{MARGIN:.0%} of the budget, so on a busier or quieter machine the choice may "
            "differ; the round spread below shows how much the load moved it."
        )
    bp.table(
        [
            "model",
            "validation NCE",
            "test NCE",
            "share of achievable gain",
            "p50 ms",
            "p99 ms",
            "p99 spread ms",
            f"p99 ≤ {budget:g} ms",
            "runtime",
        ],
        [
            [
                f"**{name}**" if name == chosen else name,
                offline.validation_nce(name),
                offline.scores[name]["nce"],
                offline.scores[name].get("share_of_achievable_gain"),
                lat["p50"],
                lat["p99"],
                f"{lat['p99_min']:.2f}–{lat['p99_max']:.2f}",
                result.meets_budget(name),
                result.runtime(name) or "feature frame",
            ]
            for name, lat in result.latency_ms.items()
        ],
        caption="The accuracy / latency trade-off that picks the served model (machine load "
        f"while timing: {load}).",
    )
    if result.scorers:
        bp.text(
            "`mlsd serve ad-click --run <this directory>` serves it: `POST /v1/ad-click/score` "
            "with a user, a context and up to 500 candidate ad ids returns calibrated click "
            "probabilities ranked by expected value (p × bid). Features come from the online "
            "store (in-process by default, Redis when `MLSD_REDIS_URL` is set); `/healthz`, "
            "`/readyz`, `/metrics` (Prometheus) and `/docs` (OpenAPI) come with it."
        )
