"""The ad-click system, step by step in the chapter's order.

1-2 requirements and framing → 3 data (the world's impression log, or Criteo/libFM files) and
features (point-in-time, hashed crosses, negative downsampling) → 6 models side by side →
5 offline evaluation next to the oracle, continual learning → 6 serving (the latency budget picks
the model) → 5 online A/B test in the world, between the scorers the serving step built →
7 monitoring (drift, alerts, retrain trigger) → the summary.

Each step reads what earlier steps left in :class:`AdClickState` (through
:func:`~mlsd.runner.require`, so a mis-ordered pipeline fails naming what is missing), computes its
result in the module of its concept, stores it, writes its part of the blueprint, and returns it
for ``metrics.json``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from mlsd.canary import CanaryResult
from mlsd.eda import EdaResult, profile_frame, report_eda, sample_parquet
from mlsd.efficiency_table import EfficiencyTable, report_efficiency
from mlsd.requirements import requirements_step
from mlsd.runner import Pipeline, RunContext, RunOptions, Skipped, Step, Summary, require
from mlsd.scale import ScalePlan
from mlsd.systems.ad_click import FRAMING, REQUIREMENTS
from mlsd.systems.ad_click.datasets import (
    FILE_SKIPS,
    FileData,
    read_files,
    report_files,
)
from mlsd.systems.ad_click.evaluation import OfflineEvaluation, compute_offline, report_offline
from mlsd.systems.ad_click.evaluation_canary import (
    compute_canary,
    plan_for,
    report_ad_click_canary,
)
from mlsd.systems.ad_click.evaluation_continual import (
    ContinualLearning,
    compute_continual,
    report_continual,
)
from mlsd.systems.ad_click.evaluation_efficiency import compute_budget_sweep, compute_efficiency
from mlsd.systems.ad_click.evaluation_online import (
    AB_REQUESTS,
    OnlineTest,
    compute_online,
    report_online,
)
from mlsd.systems.ad_click.features_split import (
    TrainingData,
    compute_file_features,
    compute_world_features,
    report_features,
)
from mlsd.systems.ad_click.model import TrainedModels
from mlsd.systems.ad_click.model_tuning import report_models, train_tuned, tuning_budget
from mlsd.systems.ad_click.monitoring import Monitoring, compute_monitoring, report_monitoring
from mlsd.systems.ad_click.serving import (
    MODEL_FILE,
    save_model_artifacts,
    save_serving_artifacts,
)
from mlsd.systems.ad_click.serving_latency import (
    MARGIN,
    N_CANDIDATES,
    ServingChoice,
    compute_serving,
    report_serving,
)
from mlsd.systems.ad_click.system_scale import compute_scale
from mlsd.systems.ad_click.world import AdClickWorld
from mlsd.systems.ad_click.world_log import WorldLog, report_world_log, write_world_log
from mlsd.tradeoffs import BudgetSweep, report_budget_sweep

log = logging.getLogger(__name__)

TITLE = "Ad Click Prediction on Social Platforms"
INTRO = (
    "A social platform shows ads in its feed and is paid per click. For each feed request "
    "the system scores the candidate ads and ranks them by expected value, "
    "P(click) × bid. The requirements below drive every later decision: the latency budget "
    "picks the served model, the freshness requirement motivates continual learning."
)


@dataclass
class AdClickState:
    """What the steps hand to each other; a field is None until its step has run. Exactly one
    of ``world_log`` (the simulated world) and ``files`` (``--data``) is set by the data step."""

    world_log: WorldLog | None = None
    files: FileData | None = None
    features: TrainingData | None = None
    models: TrainedModels | None = None
    offline: OfflineEvaluation | None = None
    continual: ContinualLearning | None = None
    serving: ServingChoice | None = None
    efficiency: EfficiencyTable | None = None
    tradeoffs: BudgetSweep | None = None
    online: OnlineTest | None = None
    canary: CanaryResult | None = None
    monitoring: Monitoring | None = None

    @property
    def world(self) -> AdClickWorld | None:
        return None if self.world_log is None else self.world_log.world


def new_state(options: RunOptions) -> AdClickState:
    return AdClickState()


# ---- 3. data and features ------------------------------------------------------------------
def step_data(ctx: RunContext, state: AdClickState) -> WorldLog | FileData:
    opts = ctx.options
    if opts.data:
        files = read_files(opts.data, opts.test_data)
        state.files = files
        for step, why in FILE_SKIPS:
            ctx.skip(step, why)
        report_files(ctx.blueprint, files)
        return files
    world = AdClickWorld(opts.scale, opts.seed)
    world_log = write_world_log(world, ctx.artifacts_dir / "data", ctx.progress, ctx.engine)
    state.world_log = world_log
    report_world_log(ctx.blueprint, world_log)
    return world_log


def step_eda(ctx: RunContext, state: AdClickState) -> EdaResult:
    """Step 3's look at the data before features: the impression log joined with the users' and
    the ads' attributes (a file: its columns as read), profiled and checked for leaks."""
    seed = ctx.options.seed
    if state.files is not None:
        loaded = state.files.loaded
        frame, total, table = loaded.X.assign(click=loaded.y), loaded.n_rows, loaded.source
    else:
        world_log = require(state.world_log, "the world's log (step 3, data)")
        frame, total = sample_parquet(
            "SELECT i.* EXCLUDE (campaign_id), u.age_bucket, u.gender, u.country, u.signup_day, "
            "a.category, a.format, a.bid, a.created_day FROM i JOIN u USING (user_id) "
            "JOIN a USING (ad_id) ORDER BY i.impression_id",
            seed,
            i=world_log.log_path,
            u=world_log.log_path.with_name("users.parquet"),
            a=world_log.log_path.with_name("ads.parquet"),
        )
        table = "impressions ⋈ users ⋈ ads"
    result = profile_frame(
        frame,
        "click",
        table=table,
        seed=seed,
        rows_total=total,
        ground_truth=("p_true",),
        skip_leakage=("impression_id", "ts", "request_id"),
    )
    report_eda(ctx.blueprint, result)
    return result


def step_features(ctx: RunContext, state: AdClickState) -> TrainingData:
    seed = ctx.options.seed
    if state.files is not None:
        result = compute_file_features(state.files, seed)
    else:
        world_log = require(state.world_log, "the world's log (step 3, data)")
        result = compute_world_features(world_log, seed, ctx.progress, ctx.engine)
    state.features = result
    report_features(ctx.blueprint, result)
    return result


# ---- 4. models -----------------------------------------------------------------------------
def step_models(ctx: RunContext, state: AdClickState) -> TrainedModels:
    data = require(state.features, "the feature frame (step 3, features)")
    train, val = data.split["train"], data.split["validation"]
    X_train = data.X.iloc[train].reset_index(drop=True)
    X_val = data.X.iloc[val].reset_index(drop=True)
    budget = tuning_budget(str(ctx.options.scale), ctx.settings.tune_budget_s)
    with ctx.engine.data_parallel():  # --engine ray: the PyTorch models on Ray Train
        result = train_tuned(
            (X_train, data.y[train]), (X_val, data.y[val]), ctx.options.seed, budget, ctx.progress
        )
    state.models = result
    report_models(ctx.blueprint, result)
    return result


# ---- 5. offline evaluation and continual learning -------------------------------------------
def step_offline(ctx: RunContext, state: AdClickState) -> OfflineEvaluation:
    models = require(state.models, "the trained models (step 4)")
    data = require(state.features, "the feature frame (step 3, features)")
    result = compute_offline(models, data)
    state.offline = result
    report_offline(ctx.blueprint, result)
    return result


def step_continual(ctx: RunContext, state: AdClickState) -> ContinualLearning | None:
    data = require(state.features, "the feature frame (step 3, features)")
    if data.days is None:  # a file has no days (recorded as skipped by the data step)
        return None
    result = compute_continual(data, ctx.options.seed, ctx.progress)
    state.continual = result
    report_continual(ctx.blueprint, result)
    return result


# ---- 6. serving ----------------------------------------------------------------------------
def step_serving(ctx: RunContext, state: AdClickState) -> ServingChoice:
    models = require(state.models, "the trained models (step 4)")
    offline = require(state.offline, "the offline evaluation (step 5)")
    data = require(state.features, "the feature frame (step 3, features)")
    result = compute_serving(
        models,
        offline,
        data,
        state.world,
        scale=str(ctx.options.scale),
        seed=ctx.options.seed,
        torch_thread_count=ctx.settings.torch_threads,
        progress=ctx.progress,
    )
    state.serving = result
    served = models.models[result.chosen]
    if data.tables is not None:
        save_serving_artifacts(ctx.artifacts_dir, served, result.chosen, data.tables)
    else:
        save_model_artifacts(ctx.artifacts_dir, served)
        ctx.skip(
            "serving_api",
            "the HTTP scorer looks users and ads up in the online store; "
            f"a feature file has no entities (the model is saved as artifacts/{MODEL_FILE}/)",
        )
    report_serving(ctx.blueprint, result, offline)
    return result


# ---- 6. efficiency and the latency trade-off table ------------------------------------------
def step_efficiency(ctx: RunContext, state: AdClickState) -> EfficiencyTable:
    result = compute_efficiency(
        require(state.models, "the trained models (step 4)"),
        require(state.offline, "the offline evaluation (step 5)"),
        require(state.serving, "the served model (step 6, serving)"),
        require(state.features, "the feature frame (step 3, features)"),
        state.world,
        scale=str(ctx.options.scale),
        seed=ctx.options.seed,
        torch_thread_count=ctx.settings.torch_threads,
    )
    state.efficiency = result
    report_efficiency(ctx.blueprint, result)
    return result


def step_tradeoffs(ctx: RunContext, state: AdClickState) -> BudgetSweep:
    result = compute_budget_sweep(
        require(state.models, "the trained models (step 4)"),
        require(state.offline, "the offline evaluation (step 5)"),
        require(state.features, "the feature frame (step 3, features)"),
        state.world,
        scale=str(ctx.options.scale),
        seed=ctx.options.seed,
        torch_thread_count=ctx.settings.torch_threads,
    )
    state.tradeoffs = result
    report_budget_sweep(ctx.blueprint, result)
    return result


# ---- 5. online A/B test (needs the serving step's scorers) ---------------------------------
def step_online(ctx: RunContext, state: AdClickState) -> OnlineTest | None:
    world = state.world
    if world is None:  # a file cannot answer an A/B test (recorded as skipped by the data step)
        return None
    serving = require(state.serving, "the served scorers (step 6, serving)")
    models = require(state.models, "the trained models (step 4)")
    result = compute_online(
        world,
        control=serving.scorers[models.baseline],
        treatment=serving.scorers[serving.chosen],
        n_requests=AB_REQUESTS[str(ctx.options.scale)],
        seed=ctx.options.seed,
        progress=ctx.progress,
    )
    state.online = result
    report_online(ctx.blueprint, result)
    return result


# ---- 5-6. canary rollout (after the A/B test, with the same control) ---------------------
def step_canary(ctx: RunContext, state: AdClickState) -> CanaryResult | None:
    world = state.world
    if world is None:
        ctx.skip("canary", "a canary rollout needs traffic in a world; a static file has none")
        return None
    serving = require(state.serving, "the served scorers (step 6, serving)")
    models = require(state.models, "the trained models (step 4)")
    chosen = serving.chosen
    bound = (
        serving.budget_ms
        if serving.meets_budget(chosen)
        else serving.latency_ms[chosen]["p99_max"] * (1 + MARGIN)
    )
    scale = str(ctx.options.scale)
    result = compute_canary(
        world,
        serving.scorers[models.baseline],
        serving.scorers[chosen],
        scale=scale,
        seed=ctx.options.seed,
        plan=plan_for(len(world.users), bound),
    )
    state.canary = result
    report_ad_click_canary(ctx.blueprint, result, scale)
    return result


# ---- 7. monitoring -------------------------------------------------------------------------
def step_monitoring(ctx: RunContext, state: AdClickState) -> Monitoring:
    data = require(state.features, "the feature frame (step 3, features)")
    models = require(state.models, "the trained models (step 4)")
    offline = require(state.offline, "the offline evaluation (step 5)")
    chosen = require(state.serving, "the served model (step 6, serving)").chosen
    result = compute_monitoring(
        data, models.models[chosen], offline.validation_nce(chosen), ctx.options.seed
    )
    state.monitoring = result
    report_monitoring(ctx.blueprint, result)
    return result


# ---- scale: the plan at 100M users from this run's measured throughput -----------------------
def step_scale(ctx: RunContext, state: AdClickState) -> ScalePlan | None:
    if state.world_log is None or state.features is None:  # a file run: no days to shard
        return None
    result = compute_scale(state.world_log, state.features, ctx.engine)
    result.report(ctx.blueprint)
    return result


# ---- summary -------------------------------------------------------------------------------
def compute_summary(state: AdClickState, skipped: list[Skipped]) -> Summary:
    data = state.world_log or require(state.files, "the data (step 3)")
    source = data.metrics()["data"]
    models = require(state.models, "the trained models (step 4)")
    offline = require(state.offline, "the offline evaluation (step 5)")
    serving = require(state.serving, "the served model (step 6, serving)")
    chosen = serving.chosen
    m, oracle = offline.scores[chosen], offline.oracle
    lines = [
        f"- Data: {source['rows']:,} rows, positive rate {source['positive_rate']:.2%} "
        f"({source['source']}).",
        f"- Served model: **{chosen}**, {serving.because}.",
        f"- Test NCE {m['nce']:.4f} vs baseline {offline.scores[models.baseline]['nce']:.4f}"
        + (
            f" and oracle {oracle['nce']:.4f}; share of the achievable gain "
            f"**{m['share_of_achievable_gain']:.0%}**."
            if oracle
            else "."
        ),
        f"- Calibration (observed/expected) {m['calibration']:.3f} on the test days, "
        f"{m['validation_calibration']:.3f} on the day after training"
        + (
            f"; {m['calibration_before_correction']:.3f} before the downsampling correction."
            if m.get("calibration_before_correction") is not None
            else "."
        ),
        f"- Latency p99 {serving.latency_ms[chosen]['p99']:.2f} ms for {N_CANDIDATES} candidates "
        f"(budget {serving.budget_ms:g} ms).",
    ]
    if state.online is not None:
        lines.append(f"- A/B test: **{state.online.ab.decision}**: {state.online.ab.reason}")
    if state.canary is not None:
        lines.append(f"- Canary rollout: **{state.canary.outcome}**: {state.canary.reason}.")
    if state.monitoring is not None:
        mon = state.monitoring
        lines.append(
            f"- Monitoring: {len(mon.alerts)} alerts; retrain "
            f"{'triggered' if mon.retrain else 'not triggered'}."
        )
    return Summary.of(lines, skipped)


def step_summary(ctx: RunContext, state: AdClickState) -> Summary:
    result = compute_summary(state, ctx.skipped)
    result.report(ctx.blueprint)
    return result


def steps(options: RunOptions) -> list[Step[AdClickState]]:
    """The run, in the chapter's order (the A/B test after serving, whose scorers it uses)."""
    return [
        requirements_step(INTRO, REQUIREMENTS, FRAMING),
        Step("data", "3. Data preparation", step_data),
        Step("eda", "3. Exploratory data analysis", step_eda),
        Step("features", "3. Feature engineering", step_features),
        Step("models", "4. Model development", step_models),
        Step("evaluation", "5. Offline evaluation", step_offline),
        Step("continual_learning", "5. Continual learning", step_continual),
        Step("serving", "6. Serving", step_serving),
        Step("efficiency", "6. Efficiency: distillation, pruning, int8, ONNX", step_efficiency),
        Step("tradeoffs", "6. Trade-offs: latency budget × candidates", step_tradeoffs),
        Step("online", "5. Online A/B test", step_online),
        Step("canary", "5-6. Canary rollout", step_canary),
        Step("monitoring", "7. Monitoring", step_monitoring),
        Step("scale", "Scale", step_scale),
        Step("summary", "Summary", step_summary),
    ]


PIPELINE: Pipeline[AdClickState] = Pipeline(TITLE, new_state, steps)
