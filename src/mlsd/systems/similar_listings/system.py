"""The similar-listings system, step by step in the chapter's order (book ch. 9).

1-2 requirements and framing → 3 data (the world's search sessions, or a session click log,
split by time) → 4 models side by side (region popularity, co-occurrence, attribute
similarity, skip-gram plain / + booked listing as global context / + hard negatives from the
region) → 5 offline evaluation (booked-listing rank, next-click HR / MRR / nDCG, next to the
oracle; the cold-start slice) → 6 serving (one index per region, latency) → 5b the A/B test of
the carousel in the world → 7 monitoring (embedding drift, the daily retrain) → summary.

Each step reads the results of earlier steps from :class:`SimilarListingsState`, computes its
own (a frozen result with ``metrics()``) in the module of its concept, stores it there, and
writes its part of the blueprint with that module's ``report_*``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd

from mlsd.canary import CanaryResult
from mlsd.report import Blueprint
from mlsd.requirements import requirements_step
from mlsd.runner import (
    Pipeline,
    RunContext,
    RunOptions,
    RunRefusedError,
    Step,
    require,
)
from mlsd.systems.similar_listings import FRAMING, REQUIREMENTS
from mlsd.systems.similar_listings.datasets import load_sessions_file
from mlsd.systems.similar_listings.evaluation import (
    HEADER,
    OfflineResult,
    evaluate,
    headline_rows,
    report_offline,
)
from mlsd.systems.similar_listings.evaluation_files import (
    FileEvaluation,
    evaluate_file,
    report_file_evaluation,
)
from mlsd.systems.similar_listings.evaluation_online import (
    OnlineResult,
    compute_online,
    report_online,
)
from mlsd.systems.similar_listings.features import Sessions, concat_sessions, sessions_from_log
from mlsd.systems.similar_listings.model import OracleSimilarity, SkipGramEmbeddings
from mlsd.systems.similar_listings.model_lineup import (
    ModelsResult,
    SkipGramConfig,
    fit_models,
    fit_models_on_file,
    report_models,
)
from mlsd.systems.similar_listings.monitoring import (
    MonitoringResult,
    compute_monitoring,
    report_monitoring,
)
from mlsd.systems.similar_listings.monitoring_retrain import daily_retrain_curve
from mlsd.systems.similar_listings.serving_availability import simulated_calendar
from mlsd.systems.similar_listings.serving_latency import (
    LATENCY_REQUESTS,
    ServingResult,
    compute_serving,
    report_serving,
)
from mlsd.systems.similar_listings.system_analyses import (
    step_canary,
    step_eda,
    step_efficiency,
    step_tradeoffs,
)
from mlsd.systems.similar_listings.system_scale import step_scale
from mlsd.systems.similar_listings.system_summary import report_summary
from mlsd.systems.similar_listings.world import SimilarListingsConfig, SimilarListingsWorld
from mlsd.tradeoffs import BudgetSweep
from mlsd.world import Scale

TITLE = "Similar Listings on Vacation Rental Platforms"
INTRO = (
    "A vacation-rental platform shows, on every listing page, a carousel of similar listings. "
    "Guests browse many listings of one city before they book, and what they click together "
    "says what they find interchangeable. The system learns an embedding per listing from "
    "search sessions (skip-gram, the booked listing as a global context, hard negatives from "
    "the same city), serves the nearest neighbours within the city, and gives new listings an "
    "embedding from their look-alikes until they are clicked."
)
CALENDAR_NIGHTS = 60  # the simulated calendar: the nights after the world's last day
RETRAIN_CURVE_DAYS = {Scale.TINY: 3, Scale.SMALL: 3, Scale.MEDIUM: 2, Scale.LARGE: 2}
SKIPGRAM_CONFIGS = {
    Scale.TINY: SkipGramConfig(dim=16, window=2, epochs=3, batch_size=256),
    Scale.SMALL: SkipGramConfig(dim=16, window=2, epochs=10, batch_size=1024),
    Scale.MEDIUM: SkipGramConfig(dim=16, window=2, epochs=3, batch_size=4096),
    Scale.LARGE: SkipGramConfig(dim=64, epochs=2, batch_size=8192),
}


@dataclass(frozen=True)
class DataResult:
    """Step 3: the sessions split by time, the listings table, the world (None on a file)."""

    source: str
    listings: pd.DataFrame  # listing_id (= row), region, type, capacity, price, ...
    train: Sessions
    test: Sessions
    world: SimilarListingsWorld | None
    split_day: int
    file_eval: Any = None  # datasets.FileData on a file

    def metrics(self) -> dict[str, Any]:
        def stats(s: Sessions) -> dict[str, Any]:
            return {
                "sessions": len(s),
                "clicks": s.n_clicks,
                "booking_rate": float(np.mean(s.booked >= 0)) if len(s) else None,
            }

        return {
            "data": {
                "source": self.source,
                "listings": len(self.listings),
                "regions": int(self.listings["region"].nunique()),
                "split_day": self.split_day,
                "train": stats(self.train),
                "test": stats(self.test),
            }
        }


@dataclass
class SimilarListingsState:
    data: DataResult | None = None
    models: ModelsResult | None = None
    evaluation: OfflineResult | None = None
    file_evaluation: FileEvaluation | None = None
    serving: ServingResult | None = None
    online: OnlineResult | None = None
    canary: CanaryResult | None = None
    monitoring: MonitoringResult | None = None
    tradeoffs: BudgetSweep | None = None


def new_state(options: RunOptions) -> SimilarListingsState:
    return SimilarListingsState()


def trained_mask(train: Sessions, n: int) -> np.ndarray:
    return np.bincount(train.items, minlength=n)[:n] > 0


# ---- 3. data -----------------------------------------------------------------------------------
def step_data(ctx: RunContext, state: SimilarListingsState) -> DataResult:
    opts = ctx.options
    if opts.data:
        fd = load_sessions_file(opts.data, opts.test_data)
        result = DataResult(
            opts.data, fd.listings, fd.train, fd.test, None, fd.split_day, file_eval=fd
        )
        for step, why in (
            ("online", "an A/B test needs simulated users to act in the world; files cannot"),
            ("monitoring", "the daily retrain is simulated on the world's days"),
        ):
            ctx.skip(step, why)
    else:
        if opts.scale is Scale.LARGE:
            raise RunRefusedError(
                "similar-listings --scale large: the world plays every search session in "
                "Python (~3M a day); run medium, or --data sessions:PATH for a large log"
            )
        world = SimilarListingsWorld(opts.scale, opts.seed)
        chunks = []
        for day, chunk in enumerate(world.iter_log()):
            ctx.progress("simulating days", day, world.config.n_days)
            chunks.append(chunk)
        log = pd.concat(chunks, ignore_index=True)
        sessions = sessions_from_log(log)
        split = world.config.n_days - world.config.test_days
        # what a platform logs of its listings: the quality stays in the world (like the style)
        listings = world.listings.drop(columns=["quality"]).reset_index(drop=True)
        listings.insert(0, "listing_id", np.arange(len(listings), dtype=np.int64))
        result = DataResult(
            f"world ({opts.scale})",
            listings,
            sessions.subset(sessions.day < split),
            sessions.subset(sessions.day >= split),
            world,
            split,
        )
    state.data = result
    report_data(ctx.blueprint, result)
    return result


def report_data(bp: Blueprint, result: DataResult) -> None:
    bp.section("Data preparation")
    m = result.metrics()["data"]
    bp.text(
        f"Source: {result.source}. {m['listings']:,} listings in {m['regions']} regions. "
        f"Sessions before day {result.split_day} train the models; later ones are the test "
        "set. A session is one user's clicks in one region, in order, and the listing it "
        "booked (if any)."
    )
    bp.table(
        ["split", "sessions", "clicks", "booking rate"],
        [
            [name, m[name]["sessions"], m[name]["clicks"], m[name]["booking_rate"]]
            for name in ("train", "test")
        ],
    )


# ---- 4. models ---------------------------------------------------------------------------------
def skipgram_config(options: RunOptions) -> SkipGramConfig:
    return SKIPGRAM_CONFIGS[Scale(options.scale)]


def step_models(ctx: RunContext, state: SimilarListingsState) -> ModelsResult:
    data = require(state.data, "the sessions (step 3)")
    cfg = skipgram_config(ctx.options)
    if data.world is None:
        result = fit_models_on_file(data.train, data.listings, cfg, ctx.options.seed, ctx.progress)
    else:
        result = fit_models(data.train, data.listings, cfg, ctx.options.seed, ctx.progress)
    state.models = result
    report_models(ctx.blueprint, result, cfg)
    return result


# ---- 5. offline evaluation ---------------------------------------------------------------------
def step_evaluation(ctx: RunContext, state: SimilarListingsState) -> OfflineResult | FileEvaluation:
    data = require(state.data, "the sessions (step 3)")
    models = require(state.models, "the models (step 4)").models
    if data.world is None:
        fresult = evaluate_file(models, data.file_eval)
        state.file_evaluation = fresult
        report_file_evaluation(ctx.blueprint, fresult)
        return fresult
    region = data.listings["region"].to_numpy()
    trained = trained_mask(data.train, len(data.listings))
    oracle = OracleSimilarity().fit(data.world)
    result = evaluate(models, oracle, data.test, region, trained, ctx.options.seed, ctx.engine)
    state.evaluation = result
    report_offline(ctx.blueprint, result)
    return result


# ---- 6. serving --------------------------------------------------------------------------------
def step_serving(ctx: RunContext, state: SimilarListingsState) -> ServingResult:
    data = require(state.data, "the sessions (step 3)")
    models = require(state.models, "the models (step 4)").models
    chosen = (
        state.evaluation.chosen_model
        if state.evaluation is not None
        else require(state.file_evaluation, "the offline evaluation (step 5)").chosen_model
    )
    vectors = models[chosen].vectors()
    if vectors is None:
        raise ValueError(f"the chosen model {chosen} has no vectors to index")
    result = compute_serving(
        ctx.artifacts_dir,
        chosen,
        vectors,
        data.listings,
        ctx.options.seed,
        requests=LATENCY_REQUESTS if ctx.options.scale is not Scale.TINY else 100,
        query_vectors=models[chosen].query_vectors(),
        calendar=None
        if data.world is None
        else simulated_calendar(
            data.listings["listing_id"].to_numpy(),
            data.world.config.n_days,
            CALENDAR_NIGHTS,
            ctx.options.seed,
        ),
    )
    state.serving = result
    report_serving(ctx.blueprint, result, REQUIREMENTS.latency_budget_ms)
    return result


def step_online(ctx: RunContext, state: SimilarListingsState) -> OnlineResult | None:
    data = require(state.data, "the sessions (step 3)")
    if data.world is None:
        return None  # recorded as skipped by the data step
    models = require(state.models, "the models (step 4)").models
    evaluation = require(state.evaluation, "the offline evaluation (step 5)")
    arms = {
        "control": (evaluation.control, models[evaluation.control]),
        "treatment": (evaluation.chosen_model, models[evaluation.chosen_model]),
    }
    result = compute_online(data.world, arms, ctx.options.seed, progress=ctx.progress)
    state.online = result
    report_online(ctx.blueprint, result)
    return result


# ---- 7. monitoring -----------------------------------------------------------------------------
def step_monitoring(ctx: RunContext, state: SimilarListingsState) -> MonitoringResult | None:
    data = require(state.data, "the sessions (step 3)")
    if data.world is None:
        return None
    models_result = require(state.models, "the models (step 4)")
    evaluation = require(state.evaluation, "the offline evaluation (step 5)")
    today = models_result.models[evaluation.chosen_model]
    if not isinstance(today, SkipGramEmbeddings):
        return None
    curve = daily_retrain_curve(
        concat_sessions(data.train, data.test),
        data.listings,
        today.get_params(),
        data.world.config.n_days - 1,
        ctx.options.seed,
        days=RETRAIN_CURVE_DAYS[Scale(ctx.options.scale)],
        progress=ctx.progress,
    )
    yesterday, latest = curve.last_models
    result = replace(
        compute_monitoring(
            yesterday,
            latest,
            data.listings["region"].to_numpy(),
            curve.rows[-1]["trained_through_day"],
            curve.rows[-1]["retrain_seconds"],
            ctx.options.seed,
        ),
        curve=curve,
    )
    state.monitoring = result
    report_monitoring(ctx.blueprint, result)
    return result


# ---- summary -----------------------------------------------------------------------------------
def step_summary(ctx: RunContext, state: SimilarListingsState) -> None:
    report_summary(ctx.blueprint, state, ctx.skipped)


def steps(options: RunOptions) -> list[Step[SimilarListingsState]]:
    """The run, in the chapter's order."""
    return [
        requirements_step(INTRO, REQUIREMENTS, FRAMING),
        Step("data", "3. Data preparation", step_data),
        Step("eda", "3. Exploratory data analysis", step_eda),
        Step("models", "4. Model development", step_models),
        Step("evaluation", "5. Offline evaluation", step_evaluation),
        Step("serving", "6. Serving", step_serving),
        Step("efficiency", "6. Efficiency", step_efficiency),
        Step("tradeoffs", "6. Trade-offs: latency budget × candidates", step_tradeoffs),
        Step("online", "5b. Online A/B test", step_online),
        Step("canary", "5-6. Canary rollout", step_canary),
        Step("monitoring", "7. Monitoring", step_monitoring),
        Step("scale", "Scale", step_scale),
        Step("summary", "Summary", step_summary),
    ]


PIPELINE = Pipeline(TITLE, new_state, steps)

__all__ = [
    "HEADER",
    "PIPELINE",
    "TITLE",
    "SimilarListingsConfig",
    "SimilarListingsState",
    "headline_rows",
    "time",
]
