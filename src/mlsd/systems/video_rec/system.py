"""The video recommendation system, step by step in the chapter's order (book ch. 6).

1-2 requirements and framing → 3 data (the world's impression log, or MovieLens files) and
title embeddings → 4 the stages: two-tower + popular + co-watch candidates, the ranking models,
re-ranking → 5 offline evaluation of every stage next to the oracle, cold-start slices →
6 serving: ANN exact vs approximate, latency by stage, a large catalogue, batch precompute →
5 online: A/B test and interleaving in the world → batch staleness → 7 monitoring: drift of
inputs, embeddings and predictions and quality decay against the oracle on the days after, alerts
and the retrain trigger → summary.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from mlsd.canary import CanaryResult
from mlsd.eda import EdaResult, profile_frame, report_eda, sample_parquet
from mlsd.efficiency_table import EfficiencyTable, report_efficiency
from mlsd.requirements import requirements_step
from mlsd.runner import Pipeline, RunContext, RunOptions, RunRefusedError, Step, require
from mlsd.systems.video_rec import FRAMING, REQUIREMENTS
from mlsd.systems.video_rec.evaluation import (
    OfflineResult,
    SummaryResult,
    compute_offline,
    compute_summary,
    report_offline,
    report_summary,
)
from mlsd.systems.video_rec.evaluation_canary import compute_canary, report_video_rec_canary
from mlsd.systems.video_rec.evaluation_efficiency import (
    batch_vs_online,
    compute_budget_sweep,
    compute_efficiency,
)
from mlsd.systems.video_rec.evaluation_movielens import (
    SKIPPED,
    MovieLensResult,
    compute_movielens,
    report_movielens,
)
from mlsd.systems.video_rec.evaluation_online import OnlineResult, compute_online, report_online
from mlsd.systems.video_rec.evaluation_sources import (
    SourcesResult,
    compute_sources,
    report_sources,
)
from mlsd.systems.video_rec.features import Catalogue
from mlsd.systems.video_rec.model import ModelsResult, compute_models, report_models
from mlsd.systems.video_rec.monitoring import (
    Monitoring,
    compute_monitoring,
    quality,
    report_monitoring,
)
from mlsd.systems.video_rec.serving import Recommender, save_recommender
from mlsd.systems.video_rec.serving_batch import BatchResult, compute_staleness, report_staleness
from mlsd.systems.video_rec.serving_latency import ServingResult, compute_serving, report_serving
from mlsd.systems.video_rec.system_scale import step_scale
from mlsd.systems.video_rec.world_entities import CATEGORIES
from mlsd.systems.video_rec.world_log import DataResult, compute_data, report_data, write_data
from mlsd.tradeoffs import (
    BatchVsOnline,
    BudgetSweep,
    report_batch_vs_online,
    report_budget_sweep,
)
from mlsd.world import Scale

log = logging.getLogger(__name__)

TITLE = "Video Recommendation System"
TITLE_ENCODER = "minilm"  # all-MiniLM-L6-v2; "hashing" is the unit tests' stand-in
EVAL_USERS = {Scale.TINY: 150, Scale.SMALL: 400, Scale.MEDIUM: 600, Scale.LARGE: 600}
MONITOR_DAYS = {Scale.TINY: 3, Scale.SMALL: 5, Scale.MEDIUM: 5, Scale.LARGE: 5}
INTRO = (
    "A video platform recommends videos on the home page. The goal is engagement, measured "
    "as watch time; the catalogue and the user base are large and grow every day, so the "
    "design is multi-stage: cheap candidate generation narrows millions of videos to a few "
    "hundred, a heavier model ranks them, and re-ranking applies business rules."
)


@dataclass
class VideoRecState:
    """What the steps hand to each other. ``today`` is the fitted recommender moved to the
    world's current day (the evaluation and batch steps move the world on)."""

    data: DataResult | None = None
    models: ModelsResult | None = None
    today: Recommender | None = None
    offline: OfflineResult | None = None
    serving: ServingResult | None = None
    efficiency: EfficiencyTable | None = None
    tradeoffs: BudgetSweep | None = None
    batch_vs_online: BatchVsOnline | None = None
    online: OnlineResult | None = None
    canary: CanaryResult | None = None
    batch: BatchResult | None = None
    quality_baseline: dict[str, float] | None = None  # step 7's quality on the offline day
    monitoring: Monitoring | None = None
    movielens: MovieLensResult | None = None


def new_state(options: RunOptions) -> VideoRecState:
    return VideoRecState()


def steps(options: RunOptions) -> list[Step[VideoRecState]]:
    if options.scale == Scale.LARGE and not options.data:
        raise RunRefusedError(
            "video-rec --scale large is not supported here: its logging policy would score "
            "~6e11 (user, video) pairs per simulated day (about a CPU-day each on 2 cores). "
            "Use --scale small or medium; their serving step measures p99 on a 1M-video "
            "catalogue."
        )
    if options.data:
        return [
            requirements_step(INTRO, REQUIREMENTS, FRAMING),
            Step("movielens", "3-5. MovieLens benchmark protocol", step_movielens),
        ]
    return [
        requirements_step(INTRO, REQUIREMENTS, FRAMING),
        Step("data", "3. Data preparation", step_data),
        Step("eda", "3. Exploratory data analysis", step_eda),
        Step("models", "4. Model development", step_models),
        Step("evaluation", "5. Offline evaluation", step_offline),
        Step("sources", "5. Candidate sources: collaborative learners", step_sources),
        Step("serving", "6. Serving", step_serving),
        Step("efficiency", "6. Efficiency: distillation, pruning, int8, ONNX", step_efficiency),
        Step("tradeoffs", "6. Trade-offs: latency budget × candidates", step_tradeoffs),
        Step("online", "5. Online A/B test and interleaving", step_online),
        Step("canary", "5-6. Canary rollout", step_canary),
        Step("batch", "6. Batch precompute: staleness", step_staleness),
        Step("batch_vs_online", "6. Trade-offs: batch vs online prediction", step_batch_vs_online),
        Step("monitoring", "7. Monitoring", step_monitoring),
        Step("scale", "Scale", step_scale),
        Step("summary", "Summary", step_summary),
    ]


def step_data(ctx: RunContext, state: VideoRecState) -> DataResult:
    result = compute_data(ctx.options.scale, ctx.options.seed, ctx.progress)
    write_data(ctx.artifacts_dir, result)
    state.data = result
    report_data(ctx.blueprint, result)
    return result


def step_eda(ctx: RunContext, state: VideoRecState) -> EdaResult:
    """Step 3's look at the data before the models: impressions joined with the users' and the
    videos' attributes, profiled and checked for leaks."""
    data = require(state.data, "the world's log")
    frame, total = sample_parquet(
        "SELECT i.* EXCLUDE (impression_id), u.age_bucket, u.country, u.language, u.signup_day, "
        "v.category, v.duration_min, v.upload_day FROM i JOIN u USING (user_id) "
        "JOIN v USING (video_id) ORDER BY i.impression_id",
        ctx.options.seed,
        i=data.log,
        u=data.world.users,
        v=data.world.videos,
    )
    result = profile_frame(
        frame,
        "click",
        table="impressions ⋈ users ⋈ videos",
        seed=ctx.options.seed,
        rows_total=total,
        ground_truth=("p_true",),
        skip_leakage=("session_id",),
    )
    report_eda(
        ctx.blueprint,
        result,
        note="`watch_min` and `watch_frac` are outcomes logged with the click (the ranking "
        "model's second target), so the check is expected to flag them: they are labels, never "
        "features.",
    )
    return result


def step_models(ctx: RunContext, state: VideoRecState) -> ModelsResult:
    data = require(state.data, "the world's log")
    result = compute_models(data.world, data.log, ctx.options.seed, TITLE_ENCODER)
    state.models = result
    report_models(ctx.blueprint, result)
    return result


def advance_day(state: VideoRecState, seed: int) -> Recommender:
    """Move the world to its next day; the fitted models serve today's catalogue and users
    (new videos get content-tower embeddings in a rebuilt index)."""
    world = require(state.data, "the world").world
    models = require(state.models, "the fitted recommender")
    world.advance_day()
    titles = models.encoder.encode(world.videos["title"].tolist())
    cat = Catalogue(world.videos.copy(), titles, list(CATEGORIES))
    state.today = models.rec.moved_to(cat, world.users.copy(), world.day, seed)
    return state.today


def step_offline(ctx: RunContext, state: VideoRecState) -> OfflineResult:
    rec = advance_day(state, ctx.options.seed)  # evaluated on the day after the log
    world = require(state.data, "the world").world
    n_users, seed = EVAL_USERS[ctx.options.scale], ctx.options.seed
    result = compute_offline(rec, world, n_users, seed)
    state.offline = result
    # monitoring's quality measure today: the baseline later days are compared with
    state.quality_baseline = {"day": float(world.day), **quality(rec, world, n_users, seed)}
    report_offline(ctx.blueprint, result)
    return result


def step_sources(ctx: RunContext, state: VideoRecState) -> SourcesResult:
    """EASE, ALS, Mult-VAE, LightGCN as candidate sources, on the offline step's day and truth."""
    data = require(state.data, "the world's log")
    fitted = require(state.models, "the fitted recommender").rec
    result = compute_sources(
        require(state.today, "today's recommender"),
        data.world,
        data.log,
        len(fitted.cat.videos),
        EVAL_USERS[ctx.options.scale],
        ctx.options.seed,
    )
    report_sources(ctx.blueprint, result)
    return result


def step_serving(ctx: RunContext, state: VideoRecState) -> ServingResult:
    rec = require(state.today, "today's recommender")
    result = compute_serving(rec, ctx.options.scale, ctx.options.seed)
    save_recommender(ctx.artifacts_dir, rec, {"k_default": 20})
    state.serving = result
    report_serving(ctx.blueprint, result, REQUIREMENTS.latency_budget_ms)
    return result


def step_efficiency(ctx: RunContext, state: VideoRecState) -> EfficiencyTable:
    result = compute_efficiency(
        require(state.today, "today's recommender"),
        require(state.data, "the world").world,
        scale=str(ctx.options.scale),
        seed=ctx.options.seed,
        torch_thread_count=ctx.settings.torch_threads,
    )
    state.efficiency = result
    report_efficiency(ctx.blueprint, result)
    return result


def step_tradeoffs(ctx: RunContext, state: VideoRecState) -> BudgetSweep:
    offline = require(state.offline, "the offline evaluation (step 5)")
    result = compute_budget_sweep(
        require(state.today, "today's recommender"),
        require(state.data, "the world").world,
        {mode: float(figures["ndcg@10"]) for mode, figures in offline.stages.items()},
        scale=str(ctx.options.scale),
        seed=ctx.options.seed,
        torch_thread_count=ctx.settings.torch_threads,
    )
    state.tradeoffs = result
    report_budget_sweep(ctx.blueprint, result)
    return result


def step_batch_vs_online(ctx: RunContext, state: VideoRecState) -> BatchVsOnline:
    serving = require(state.serving, "the serving latency (step 6)")
    result = batch_vs_online(
        require(state.batch, "the batch precompute (step 6)"),
        float(serving.request_latency_ms["total"]["mean"]),
    )
    state.batch_vs_online = result
    ctx.blueprint.section("Trade-offs: batch vs online prediction")
    ctx.blueprint.text(
        "The chapter's choice between precomputing every user's feed (a lookup at request "
        "time, stale until the next run) and computing it per request (fresh, the full "
        "pipeline's latency), from this run's measurements; compute per day at the chapter's "
        "scale is predictions per day × the measured milliseconds per prediction."
    )
    report_batch_vs_online(ctx.blueprint, result)
    return result


def step_online(ctx: RunContext, state: VideoRecState) -> OnlineResult:
    rec = require(state.today, "today's recommender")
    world = require(state.data, "the world").world
    result = compute_online(rec, world, ctx.options.seed)
    state.online = result
    report_online(ctx.blueprint, result)
    return result


def step_canary(ctx: RunContext, state: VideoRecState) -> CanaryResult:
    rec = require(state.today, "today's recommender")
    world = require(state.data, "the world").world
    require(state.online, "the A/B test (the canary follows it)")
    result = compute_canary(rec, world, ctx.options.seed)
    state.canary = result
    report_video_rec_canary(ctx.blueprint, result)
    return result


def step_staleness(ctx: RunContext, state: VideoRecState) -> BatchResult:
    rec = require(state.today, "today's recommender")
    world = require(state.data, "the world").world
    online_p99 = require(state.serving, "the serving latency").request_latency_ms["total"]["p99"]
    seed = ctx.options.seed
    result = compute_staleness(
        world,
        rec,
        lambda: advance_day(state, seed),
        EVAL_USERS[ctx.options.scale],
        seed,
        online_p99,
        ctx.engine,  # --engine ray: the batch job's user blocks as Ray tasks
    )
    state.batch = result
    report_staleness(ctx.blueprint, result)
    return result


def step_monitoring(ctx: RunContext, state: VideoRecState) -> Monitoring:
    data = require(state.data, "the world's log")
    fitted = require(state.models, "the fitted recommender").rec
    baseline = require(state.quality_baseline, "the quality baseline (offline evaluation)")
    seed = ctx.options.seed
    result = compute_monitoring(
        fitted,
        data.log,
        data.world,
        lambda: advance_day(state, seed),
        baseline,
        MONITOR_DAYS[ctx.options.scale],
        EVAL_USERS[ctx.options.scale],
        seed,
    )
    state.monitoring = result
    report_monitoring(ctx.blueprint, result)
    return result


def step_summary(ctx: RunContext, state: VideoRecState) -> SummaryResult:
    offline = require(state.offline, "the offline evaluation")
    large = require(state.serving, "the serving measurements").large
    decision = require(state.online, "the online test").ab.decision
    result = compute_summary(
        offline, large["videos"], large["latency_ms"]["total"]["p99"], decision
    )
    report_summary(ctx.blueprint, result)
    if state.monitoring is not None:
        mon = state.monitoring
        last = mon.daily.iloc[-1]
        ctx.blueprint.text(
            f"- Monitoring: {len(mon.alerts)} alerts over {len(mon.daily)} days (oracle share "
            f"{mon.baseline['oracle_share']:.3f} on day {int(mon.baseline['day'])}, "
            f"{last['oracle_share']:.3f} on day {int(last['day'])}); {mon.reason}."
        )
    return result


def step_movielens(ctx: RunContext, state: VideoRecState) -> MovieLensResult:
    result = compute_movielens(ctx.options.data or "", TITLE_ENCODER, ctx.options.seed)
    state.movielens = result
    for step, why in SKIPPED:
        ctx.skip(step, why)
    report_movielens(ctx.blueprint, result)
    return result


PIPELINE: Pipeline[VideoRecState] = Pipeline(TITLE, new_state, steps)
