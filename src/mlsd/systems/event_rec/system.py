"""The event-recommendation system, step by step in the chapter's order.

1-2 requirements and framing → 3 data (the city's log) and features (point-in-time groups) →
4 models side by side → 5 offline evaluation on later days next to the oracle, with event
filtering's recall cost and the feature-group ablation → 6 serving (the best model, artifacts,
per-stage latency) → 5 online A/B test in the world → 7 monitoring → the summary.
"""

from __future__ import annotations

import functools
import logging
import resource
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np

from mlsd.canary import CanaryResult
from mlsd.efficiency_table import EfficiencyTable
from mlsd.requirements import requirements_step
from mlsd.runner import Pipeline, RunContext, RunOptions, RunRefusedError, Step, Summary, require
from mlsd.systems.event_rec import FRAMING, REQUIREMENTS
from mlsd.systems.event_rec.datasets import read_challenge
from mlsd.systems.event_rec.datasets_features import challenge_features
from mlsd.systems.event_rec.evaluation import (
    EvalSet,
    OfflineEvaluation,
    build_eval_set,
    compute_ablation,
    compute_offline,
    report_offline,
)
from mlsd.systems.event_rec.evaluation_challenge import (
    ChallengeResult,
    compute_challenge,
    report_challenge,
)
from mlsd.systems.event_rec.evaluation_continual import (
    ContinualLearning,
    compute_continual,
    report_continual,
)
from mlsd.systems.event_rec.evaluation_online import OnlineTest, compute_online, report_online
from mlsd.systems.event_rec.features import (
    FEATURE_GROUPS,
    SOURCE,
    Platform,
    TrainingData,
    daily_states,
    impression_features,
    rows_of,
)
from mlsd.systems.event_rec.features_text import embed_descriptions
from mlsd.systems.event_rec.model import BASELINE
from mlsd.systems.event_rec.model_selection import (
    TrainedModels,
    best_lightgbm,
    report_models,
    select_models,
)
from mlsd.systems.event_rec.monitoring import Monitoring, compute_monitoring, report_monitoring
from mlsd.systems.event_rec.serving_latency import ServingChoice, compute_serving, report_serving
from mlsd.systems.event_rec.system_analyses import (
    step_canary,
    step_eda,
    step_efficiency,
    step_tradeoffs,
)
from mlsd.systems.event_rec.system_scale import step_scale
from mlsd.systems.event_rec.system_summary import summary_lines
from mlsd.systems.event_rec.world import EventRecWorld, Log
from mlsd.tradeoffs import BudgetSweep
from mlsd.world import Scale

log = logging.getLogger(__name__)
T = TypeVar("T")
StepFn = Callable[[RunContext, "EventRecState"], T]

TITLE = "Event Recommendation System"
INTRO = (
    "A platform recommends local events. Every event is new and lives a few days, so the "
    "ranker cannot learn event ids: it ranks on location, time, social and interest features, "
    "computed point-in-time. Event filtering narrows the city to nearby, upcoming events first; "
    "its recall cost is measured. Pointwise and listwise learning to rank are compared with a "
    "popular-nearby heuristic, offline next to the oracle and online in an A/B test."
)
TREES = {Scale.TINY: 40, Scale.SMALL: 400, Scale.MEDIUM: 300}  # the most trees tried
# all-MiniLM-L6-v2 for the demo; the tiny world (tests) uses the hashing stand-in (no model load)
TEXT_ENCODER = {Scale.TINY: "hashing", Scale.SMALL: "minilm", Scale.MEDIUM: "minilm"}
LATENCY_REQUESTS = {Scale.TINY: 50, Scale.SMALL: 300, Scale.MEDIUM: 300}


@dataclass
class EventRecState:
    world: EventRecWorld | None = None
    log: Log | None = None
    platform: Platform | None = None
    features: TrainingData | None = None
    models: TrainedModels | None = None
    val_set: EvalSet | None = None
    eval_set: EvalSet | None = None
    offline: OfflineEvaluation | None = None
    continual: ContinualLearning | None = None
    serving: ServingChoice | None = None
    efficiency: EfficiencyTable | None = None
    tradeoffs: BudgetSweep | None = None
    online: OnlineTest | None = None
    canary: CanaryResult | None = None
    monitoring: Monitoring | None = None


def new_state(options: RunOptions) -> EventRecState:
    return EventRecState()


# ---- 3. data and features --------------------------------------------------------------------
@dataclass(frozen=True)
class DataResult:
    users: int
    events: int
    days: int
    sessions: int
    impressions: int
    registrations: int
    invites: int
    register_rate: float
    click_rate: float

    def metrics(self) -> dict[str, Any]:
        return {"data": {"source": "world", **self.__dict__}}


def step_data(ctx: RunContext, state: EventRecState) -> DataResult:
    world = EventRecWorld(ctx.options.scale, ctx.options.seed)
    lg = world.log(ctx.progress)
    state.world, state.log = world, lg
    users = world.users.drop(columns=[])
    events = world.events.drop(columns=["tag"])  # the tag is the world's: only its words show
    text = embed_descriptions(
        events["description"].tolist(), TEXT_ENCODER[Scale(ctx.options.scale)]
    )
    state.platform = Platform(users, events, world.hoods, text)
    imp = lg.impressions
    result = DataResult(
        users=len(world.users),
        events=len(world.events),
        days=world.config.n_days,
        sessions=len(lg.sessions),
        impressions=len(imp),
        registrations=len(lg.registrations),
        invites=len(lg.invites),
        register_rate=float(imp["register"].mean()),
        click_rate=float(imp["click"].mean()),
    )
    bp = ctx.blueprint
    bp.section("Data preparation")
    bp.text(
        f"A city of {result.users:,} users in {world.config.grid**2} neighbourhoods, with "
        f"{len(world.friends):,} friendships and {len(world.follows):,} host follows; "
        f"{result.events:,} events over {world.config.total_days} days, each open for "
        "registration from its creation to its start (6 hours to 9 days). Over "
        f"{result.days} logged days, {result.sessions:,} sessions saw {result.impressions:,} "
        f"events ranked by the logging policy: click rate {result.click_rate:.2%}, "
        f"registration rate {result.register_rate:.2%} (the label), {result.registrations:,} "
        f"registrations and {result.invites:,} invitations. Event descriptions are embedded "
        f"once, at creation, with {text.encoder} (for the description-similarity feature)."
    )
    return result


def step_features(ctx: RunContext, state: EventRecState) -> TrainingData:
    world = require(state.world, "the world (step 3, data)")
    lg = require(state.log, "the log (step 3, data)")
    platform = require(state.platform, "the platform tables (step 3, data)")
    cfg = world.config
    days = list(range(cfg.n_days))
    states = daily_states(
        platform, lg, days, cfg.n_hosts, world.friends, world.follows, cfg.n_slots
    )
    imp = lg.impressions
    X = impression_features(platform, states, imp)
    reg = imp["register"].to_numpy(np.int64)
    seen = (imp["click"].to_numpy() > 0) | (imp["bookmark"].to_numpy() > 0)
    result = TrainingData(
        X=X,
        y=reg,
        grade=np.where(reg > 0, 2, seen.astype(np.int64)),
        session=imp["session_id"].to_numpy(np.int64),
        day=imp["day"].to_numpy(np.int64),
        p_true=imp["p_true"].to_numpy(np.float64),
        train_days=cfg.train_days,
        val_days=cfg.validation_days,
        test_days=cfg.testing_days,
    )
    state.features = result
    bp = ctx.blueprint
    bp.section("Feature engineering")
    bp.text(
        "Each logged impression gets the features of its (user, event) pair from the "
        "platform's records strictly before the start of its day (point-in-time: a registration "
        "made later that day is not yet counted). No feature is an event id. Groups, and where "
        "each comes from in production:"
    )
    bp.table(
        ["group", "features", "source"],
        [[g, ", ".join(c), SOURCE[g]] for g, c in FEATURE_GROUPS.items()],
    )
    bp.text(
        f"Split by time: training days {list(result.train_days)} (fit), validation days "
        f"{list(result.val_days)} (every choice), test days {list(result.test_days)} (reported "
        "once). "
        f"{len(result.y):,} rows, positive rate {result.y.mean():.2%}."
    )
    return result


# ---- 4. models -------------------------------------------------------------------------------
def _trees(options: RunOptions) -> int:
    return TREES.get(Scale(options.scale), 200)


def step_models(ctx: RunContext, state: EventRecState) -> TrainedModels:
    world = require(state.world, "the world (step 3, data)")
    lg = require(state.log, "the log (step 3, data)")
    platform = require(state.platform, "the platform tables (step 3, data)")
    data = require(state.features, "the feature frame (step 3, features)")
    val_ev = build_eval_set(
        world, platform, lg, list(data.val_days), ctx.options.seed, purpose="validation"
    )
    state.val_set = val_ev
    with ctx.engine.data_parallel():  # --engine ray: LightGBM and the MLP data-parallel
        result = select_models(data, val_ev, ctx.options.seed, _trees(ctx.options), ctx.progress)
    state.models = result
    ctx.blueprint.section("Model development")
    report_models(ctx.blueprint, result)
    return result


# ---- 5. offline evaluation -----------------------------------------------------------------------
def step_offline(ctx: RunContext, state: EventRecState) -> OfflineEvaluation:
    world = require(state.world, "the world (step 3, data)")
    lg = require(state.log, "the log (step 3, data)")
    platform = require(state.platform, "the platform tables (step 3, data)")
    data = require(state.features, "the feature frame (step 3, features)")
    models = require(state.models, "the trained models (step 4)")
    val_ev = require(state.val_set, "the labelled validation candidates (step 4)")
    ev = build_eval_set(world, platform, lg, list(data.test_days), ctx.options.seed)
    state.eval_set = ev
    family = best_lightgbm(models)
    with ctx.engine.data_parallel():  # the ablation's refits, as in step 4
        ablation = compute_ablation(
            rows_of(data, data.train_days),
            val_ev,
            family,
            models.params[family],
            ctx.options.seed,
            ctx.progress,
        )
    result = compute_offline(models.models, models.chosen, ev, ablation, family, ctx.engine)
    state.offline = result
    ctx.blueprint.section("Offline evaluation")
    report_offline(ctx.blueprint, result)
    return result


def step_continual(ctx: RunContext, state: EventRecState) -> ContinualLearning:
    data = require(state.features, "the feature frame (step 3, features)")
    ev = require(state.eval_set, "the labelled test candidates (step 5, evaluation)")
    models = require(state.models, "the trained models (step 4)")
    offline = require(state.offline, "the offline evaluation (step 5)")
    name = offline.best
    result = compute_continual(
        data, ev, models.models[name], name, models.params[name], ctx.options.seed, ctx.progress
    )
    state.continual = result
    ctx.blueprint.section("Continual learning")
    report_continual(ctx.blueprint, result)
    return result


# ---- 6. serving ------------------------------------------------------------------------------
def step_serving(ctx: RunContext, state: EventRecState) -> ServingChoice:
    world = require(state.world, "the world (step 3, data)")
    lg = require(state.log, "the log (step 3, data)")
    models = require(state.models, "the trained models (step 4)")
    offline = require(state.offline, "the offline evaluation (step 5)")
    platform = require(state.platform, "the platform tables (step 3, data)")
    n = LATENCY_REQUESTS.get(Scale(ctx.options.scale), 100)
    result = compute_serving(
        world, lg, models, offline, platform, ctx.artifacts_dir, n, ctx.options.seed
    )
    state.serving = result
    report_serving(ctx.blueprint, result, world.config.n_days, n)
    return result


# ---- 5. online A/B test --------------------------------------------------------------------------
def step_online(ctx: RunContext, state: EventRecState) -> OnlineTest:
    world = require(state.world, "the world (step 3, data)")
    lg = require(state.log, "the log (step 3, data)")
    platform = require(state.platform, "the platform tables (step 3, data)")
    models = require(state.models, "the trained models (step 4)")
    chosen = require(state.serving, "the served model (step 6)").chosen
    result = compute_online(
        world,
        platform,
        lg,
        (BASELINE, models.models[BASELINE]),
        (chosen, models.models[chosen]),
        ctx.options.seed,
        ctx.progress,
    )
    state.online = result
    ctx.blueprint.section("Online evaluation: A/B test and interleaving")
    report_online(ctx.blueprint, result)
    return result


# ---- 7. monitoring -----------------------------------------------------------------------------
def step_monitoring(ctx: RunContext, state: EventRecState) -> Monitoring:
    data = require(state.features, "the feature frame (step 3, features)")
    models = require(state.models, "the trained models (step 4)")
    chosen = require(state.serving, "the served model (step 6)").chosen
    result = compute_monitoring(data.X, data.y, data.day, models.models[chosen], data.train_days)
    state.monitoring = result
    ctx.blueprint.section("Monitoring")
    report_monitoring(ctx.blueprint, result)
    return result


# ---- summary ------------------------------------------------------------------------------------
def step_summary(ctx: RunContext, state: EventRecState) -> Summary:
    offline = require(state.offline, "the offline evaluation (step 5)")
    serving = require(state.serving, "the served model (step 6)")
    lines = summary_lines(offline, serving, state.continual, state.online, state.monitoring)
    if state.canary is not None:
        lines.append(f"- Canary rollout: **{state.canary.outcome}**: {state.canary.reason}.")
    result = Summary.of(lines, ctx.skipped)
    result.report(ctx.blueprint)
    return result


def step_challenge(ctx: RunContext, state: EventRecState) -> ChallengeResult:
    files = read_challenge(ctx.options.data or "")
    data = challenge_features(files)
    # the most trees tried (validation picks the count): fewer for small files
    trees = int(min(TREES[Scale.SMALL], max(40, len(data.y) // 20)))
    result = compute_challenge(files, data, ctx.options.seed, trees)
    for step, why in CHALLENGE_SKIPS:
        ctx.skip(step, why)
    ctx.blueprint.section("The event-recommendation challenge's files")
    report_challenge(ctx.blueprint, result)
    return result


CHALLENGE_SKIPS = (
    ("serving", "the served ranker needs the world's city (homes, friends, open events)"),
    ("online", "a file cannot answer an A/B test"),
    ("continual_learning", "the challenge's rows cover too few days to retrain daily"),
    ("monitoring", "a file has no days to monitor"),
)


def steps(options: RunOptions) -> list[Step[EventRecState]]:
    if options.test_data:
        raise RunRefusedError(
            "event-rec --test-data: the eventrec layout splits train.csv by time itself"
        )
    if options.data:
        return [
            requirements_step(INTRO, REQUIREMENTS, FRAMING),
            Step("challenge", "3-5. The challenge's files", step_challenge),
        ]
    if Scale(options.scale) not in TREES:
        raise RunRefusedError(
            f"event-rec --scale {options.scale} is not supported yet: each simulated day scores "
            "every open event for every session (users × open events pairs in memory), so the "
            "large world (1M users) needs the day's sessions streamed in chunks; use --scale "
            "tiny, small or medium"
        )
    return [
        requirements_step(INTRO, REQUIREMENTS, FRAMING),
        Step("data", "3. Data preparation", _with_rss(step_data)),
        Step("eda", "3. Exploratory data analysis", _with_rss(step_eda)),
        Step("features", "3. Feature engineering", _with_rss(step_features)),
        Step("models", "4. Model development", _with_rss(step_models)),
        Step("evaluation", "5. Offline evaluation", _with_rss(step_offline)),
        Step("continual_learning", "5. Continual learning", _with_rss(step_continual)),
        Step("serving", "6. Serving", _with_rss(step_serving)),
        Step("efficiency", "6. Efficiency: distillation, pruning, int8, ONNX", step_efficiency),
        Step("tradeoffs", "6. Trade-offs: latency budget × candidates", step_tradeoffs),
        Step("online", "5. Online A/B test and interleaving", _with_rss(step_online)),
        Step("canary", "5-6. Canary rollout", _with_rss(step_canary)),
        Step("monitoring", "7. Monitoring", _with_rss(step_monitoring)),
        Step("scale", "Scale", step_scale),
        Step("summary", "Summary", step_summary),
    ]


def _with_rss(fn: StepFn[T]) -> StepFn[T]:
    """The step, logging the process's peak resident memory after it (where memory goes)."""

    @functools.wraps(fn)
    def run(ctx: RunContext, state: EventRecState) -> T:
        out = fn(ctx, state)
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        log.info("event-rec: peak RSS after %s: %.0f MB", fn.__name__, peak_mb)
        return out

    return run


PIPELINE: Pipeline[EventRecState] = Pipeline(TITLE, new_state, steps)
