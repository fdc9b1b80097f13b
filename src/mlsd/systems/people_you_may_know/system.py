"""The people-you-may-know system, step by step in the chapter's order.

1-2 requirements and framing → 3 data (the growing world, or an edge list) and features (the
time split, candidate generation and its recall, point-in-time pair features) → 4 models side
by side (graph heuristics, logistic regression, LightGBM, GraphSAGE) → 5 offline evaluation by
time next to the oracle → 6 serving (the daily batch job into the artifacts, batch against
online computation for new users) → 5 online A/B test in the world → 7 monitoring → the summary.
An edge list without timestamps replaces the time split by the standard random hold-out and
skips the A/B test and monitoring (recorded as skipped).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import pandas as pd

from mlsd.canary import CanaryResult
from mlsd.eda import EdaResult, profile_frame, report_eda
from mlsd.efficiency_table import EfficiencyNotApplicable
from mlsd.requirements import requirements_step
from mlsd.runner import Pipeline, RunContext, RunOptions, Skipped, Step, Summary, require
from mlsd.systems.people_you_may_know import FRAMING, REQUIREMENTS
from mlsd.systems.people_you_may_know.datasets import (
    FILE_SKIPS,
    GraphData,
    read_files,
    report_data,
    world_graph,
)
from mlsd.systems.people_you_may_know.evaluation import (
    OfflineEvaluation,
    compute_offline,
    report_offline,
)
from mlsd.systems.people_you_may_know.evaluation_canary import compute_canary, report_pymk_canary
from mlsd.systems.people_you_may_know.evaluation_online import (
    OnlineTest,
    compute_online,
    report_online,
)
from mlsd.systems.people_you_may_know.evaluation_tradeoffs import compute_budget_sweep, online_rules
from mlsd.systems.people_you_may_know.features import Snapshot
from mlsd.systems.people_you_may_know.features_split import (
    SplitData,
    compute_holdout,
    compute_split,
    report_split,
)
from mlsd.systems.people_you_may_know.model import (
    BASELINE,
    TrainedModels,
    report_models,
    train_models,
)
from mlsd.systems.people_you_may_know.monitoring import (
    Monitoring,
    compute_monitoring,
    report_monitoring,
)
from mlsd.systems.people_you_may_know.serving import (
    LISTS_FILE,
    TOP_K,
    BatchOutput,
    batch_job,
    load_lists,
    save_serving_artifacts,
)
from mlsd.systems.people_you_may_know.serving_latency import (
    ServingReport,
    compute_serving,
    report_serving,
)
from mlsd.systems.people_you_may_know.system_scale import step_scale
from mlsd.systems.people_you_may_know.world import PymkWorld
from mlsd.tradeoffs import BudgetSweep, report_budget_sweep

log = logging.getLogger(__name__)

TITLE = "People You May Know"
INTRO = (
    "A social network suggests people each user may know. The graph grows every day: new users "
    "join with no friends, friendships form among friends of friends, classmates, colleagues "
    "and neighbours. The system cuts the all-pairs problem down with candidate generation, "
    "ranks the candidates with a pairwise model trained on a time split, precomputes every "
    "user's list in a daily batch job, and is judged online by friend requests accepted."
)


@dataclass
class PymkState:
    data: GraphData | None = None
    split: SplitData | None = None
    models: TrainedModels | None = None
    offline: OfflineEvaluation | None = None
    batch: BatchOutput | None = None
    serving: ServingReport | None = None
    tradeoffs: BudgetSweep | None = None
    online: OnlineTest | None = None
    canary: CanaryResult | None = None
    monitoring: Monitoring | None = None


def new_state(options: RunOptions) -> PymkState:
    return PymkState()


def step_data(ctx: RunContext, state: PymkState) -> GraphData:
    opts = ctx.options
    if opts.data:
        data = read_files(opts.data, opts.seed)
        for step, why in FILE_SKIPS:
            ctx.skip(step, why)
    else:
        data = world_graph(PymkWorld(opts.scale, opts.seed))  # the simulation runs here
    state.data = data
    report_data(ctx.blueprint, data)
    return data


def step_features(ctx: RunContext, state: PymkState) -> SplitData:
    data = require(state.data, "the graph (step 3, data)")
    if data.world is None and not data.timestamps:
        result = compute_holdout(data, ctx.options.seed)
    else:
        result = compute_split(data, ctx.options.seed, str(ctx.options.scale))
    state.split = result
    report_split(ctx.blueprint, result)
    return result


def step_eda(ctx: RunContext, state: PymkState) -> EdaResult:
    """Step 3's look at the table the models learn from: the training candidate pairs (friends
    of friends of the query users) with their features, labelled by a new friendship in the
    window. Profiled after the feature step, which is what builds the pairs."""
    split = require(state.split, "the training pairs (step 3, features)")
    train = split.train
    frame = train.X.assign(
        fof=train.pairs["fof"].to_numpy(),
        new_friendship=pd.Series(train.y, index=train.X.index).astype("int8"),
    )
    result = profile_frame(
        frame, "new_friendship", table="training candidate pairs", seed=ctx.options.seed
    )
    report_eda(
        ctx.blueprint,
        result,
        note="Graph features (common friends, Adamic-Adar) are strong by design: a flag here "
        "asks whether a feature was computed after the snapshot, which the time split rules out.",
    )
    return result


def step_models(ctx: RunContext, state: PymkState) -> TrainedModels:
    split = require(state.split, "the training pairs (step 3, features)")
    result = train_models(
        split.train.X,
        split.train.y,
        ctx.options.seed,
        (split.train.snap, split.train.pairs["u"].to_numpy(), split.train.pairs["v"].to_numpy()),
    )
    state.models = result
    report_models(ctx.blueprint, result)
    return result


def step_offline(ctx: RunContext, state: PymkState) -> OfflineEvaluation:
    split = require(state.split, "the test pairs (step 3, features)")
    models = require(state.models, "the trained models (step 4)")
    result = compute_offline(split, models)
    state.offline = result
    report_offline(ctx.blueprint, result)
    return result


def step_serving(ctx: RunContext, state: PymkState) -> ServingReport:
    data = require(state.data, "the graph (step 3, data)")
    models = require(state.models, "the trained models (step 4)")
    chosen = require(state.offline, "the offline evaluation (step 5)").chosen
    seed = ctx.options.seed
    snap = Snapshot.at(data.users, data.edges, data.n_days)
    model = models.models[chosen]
    batch = batch_job(snap, model, models.models[BASELINE], seed, engine=ctx.engine)
    state.batch = batch
    info = {"model": chosen, "as_of_day": data.n_days, "top_k": TOP_K, "source": data.source}
    save_serving_artifacts(
        ctx.artifacts_dir, batch.lists, data.users, data.edges, model, info, data.node_ids
    )
    served = load_lists(ctx.artifacts_dir)  # what the server will load
    size = (ctx.artifacts_dir / LISTS_FILE).stat().st_size
    result = compute_serving(
        snap, served, model, chosen, batch.seconds, batch.pairs, size, data.edges, seed
    )
    state.serving = result
    report_serving(ctx.blueprint, result)
    return result


def step_efficiency(ctx: RunContext, state: PymkState) -> EfficiencyNotApplicable:
    """Why the efficiency table does not apply here, from the serving step's measurements."""
    serving = require(state.serving, "the serving trade-off (step 6)")
    lookup_p99 = float(serving.batch["lookup_ms"]["p99"])
    online_p99 = float(serving.online["latency_ms"]["p99"])
    budget = REQUIREMENTS.latency_budget_ms
    result = EfficiencyNotApplicable(
        f"the served model (**{serving.chosen}**) never runs inside a request. The daily "
        f"batch job scores every user's candidates ({serving.batch['seconds']:.1f} s here) and "
        f"a request reads one precomputed list (p99 {lookup_p99:.3f} ms against the "
        f"{budget:g} ms budget). Distillation, pruning, int8 or ONNX would shorten the batch "
        "job, not any request, so the latency rule has nothing to re-decide. Computing the "
        f"list online instead (candidates, pair features, the model) takes {online_p99:.1f} ms "
        "p99 here, the serving section's batch-vs-online table. (GraphSAGE, the deep model "
        "of the line-up, embeds the graph inside that same batch job.)",
        {
            "served": serving.chosen,
            "lookup_p99_ms": lookup_p99,
            "online_p99_ms": online_p99,
            "batch_seconds": float(serving.batch["seconds"]),
            "budget_ms": budget,
        },
    )
    result.report(ctx.blueprint)
    return result


def step_tradeoffs(ctx: RunContext, state: PymkState) -> BudgetSweep:
    """The online path's model re-chosen per latency budget and candidate count, next to the
    precomputed-list lookup."""
    data = require(state.data, "the graph (step 3, data)")
    models = require(state.models, "the trained models (step 4)")
    batch = require(state.batch, "the batch lists (step 6, serving)")
    result = compute_budget_sweep(
        Snapshot.at(data.users, data.edges, data.n_days),
        models.models,
        require(state.offline, "the offline evaluation (step 5)"),
        batch.lists,
        scale=str(ctx.options.scale),
        seed=ctx.options.seed,
        torch_thread_count=ctx.settings.torch_threads,
    )
    state.tradeoffs = result
    report_budget_sweep(ctx.blueprint, result)
    ctx.blueprint.text(
        "A known user's list is a lookup, so it meets every budget; a new user has no list and "
        "a list that must be fresh is computed. Without the lookup, the online path's rule:\n"
        + "\n".join(f"- {r}" for r in online_rules(result))
    )
    return result


def step_online(ctx: RunContext, state: PymkState) -> OnlineTest | None:
    data = require(state.data, "the graph (step 3, data)")
    if data.world is None:  # recorded as skipped by the data step
        return None
    batch = require(state.batch, "the batch lists (step 6, serving)")
    chosen = require(state.offline, "the offline evaluation (step 5)").chosen
    snap = Snapshot.at(data.users, data.edges, data.n_days)
    treatment = pd.DataFrame(
        {
            "u": batch.lists["user_id"].to_numpy(),
            "v": batch.lists["candidate_id"].to_numpy(),
            "rank": batch.lists["rank"].to_numpy(),
        }
    )
    result = compute_online(
        data.world,
        snap,
        treatment,
        batch.control,
        chosen,
        BASELINE,
        str(ctx.options.scale),
        ctx.options.seed,
    )
    state.online = result
    report_online(ctx.blueprint, result)
    return result


def step_canary(ctx: RunContext, state: PymkState) -> CanaryResult | None:
    """After the A/B test: the served lists rolled out in stages against the same control."""
    data = require(state.data, "the graph (step 3, data)")
    if data.world is None:
        ctx.skip("canary", "a canary rollout needs users in a world; an edge list has none")
        return None
    require(state.online, "the A/B test (the canary follows it)")
    batch = require(state.batch, "the batch lists (step 6, serving)")
    chosen = require(state.offline, "the offline evaluation (step 5)").chosen
    snap = Snapshot.at(data.users, data.edges, data.n_days)
    treatment = pd.DataFrame(
        {
            "u": batch.lists["user_id"].to_numpy(),
            "v": batch.lists["candidate_id"].to_numpy(),
            "rank": batch.lists["rank"].to_numpy(),
        }
    )
    result = compute_canary(
        data.world,
        snap,
        treatment,
        batch.control,
        chosen,
        BASELINE,
        str(ctx.options.scale),
        ctx.options.seed,
    )
    state.canary = result
    report_pymk_canary(ctx.blueprint, result)
    return result


def step_monitoring(ctx: RunContext, state: PymkState) -> Monitoring | None:
    data = require(state.data, "the graph (step 3, data)")
    split = require(state.split, "the time split (step 3, features)")
    if split.protocol != "time":
        ctx.skip("monitoring", "an edge list without timestamps has no days to drift over")
        return None
    models = require(state.models, "the trained models (step 4)")
    chosen = require(state.offline, "the offline evaluation (step 5)").chosen
    result = compute_monitoring(data, split.t_train, models.models[chosen], ctx.options.seed)
    state.monitoring = result
    report_monitoring(ctx.blueprint, result)
    return result


def compute_summary(state: PymkState, skipped: list[Skipped]) -> Summary:
    data = require(state.data, "the graph (step 3, data)")
    split = require(state.split, "the time split (step 3, features)")
    offline = require(state.offline, "the offline evaluation (step 5)")
    serving = require(state.serving, "the serving report (step 6)")
    cand = split.metrics()["candidates"]
    m, base = offline.scores[offline.chosen], offline.scores[BASELINE]
    aa = offline.scores["adamic_adar"]
    lines = [
        f"- Data: {len(data.users):,} users, {len(data.edges):,} friendships ({data.source}).",
        f"- Candidates: recall {cand['recall']:.1%} of next-period friendships at "
        f"{cand['pairs_per_user']:.0f} pairs per user "
        f"({cand['share_of_all_pairs']:.2%} of all pairs).",
        f"- Served **{offline.chosen}**: recall@10 {m['recall@10']:.3f}, mAP@10 {m['map@10']:.3f} "
        f"vs common neighbours {base['recall@10']:.3f} / {base['map@10']:.3f} and Adamic–Adar "
        f"{aa['recall@10']:.3f} / {aa['map@10']:.3f}"
        + (
            f"; oracle {offline.oracle['recall@10']:.3f} / {offline.oracle['map@10']:.3f}."
            if offline.oracle
            else "."
        ),
        *(
            f"- {name} − Adamic–Adar, same test users: recall@10 {c['diff']:+.4f} "
            f"(95% CI [{c['ci_low']:+.4f}, {c['ci_high']:+.4f}], paired over {c['n_control']:,})."
            for name, c in (
                (n, offline.versus[n]["recall@10"])
                for n in ("lightgbm", "graphsage")
                if n in offline.versus
            )
        ),
        f"- Batch job: {serving.batch['users']:,} users in {serving.batch['seconds']:.1f} s; "
        f"lookup p99 {serving.batch['lookup_ms']['p99']:.3f} ms vs online computation p99 "
        f"{serving.online['latency_ms']['p99']:.1f} ms.",
    ]
    if state.online is not None:
        lines.append(f"- A/B test: **{state.online.ab.decision}**: {state.online.ab.reason}")
    if state.monitoring is not None:
        mon = state.monitoring
        lines.append(
            f"- Monitoring: {len(mon.alerts)} alerts; retrain "
            f"{'triggered' if mon.retrain else 'not triggered'}."
        )
    return Summary.of(lines, skipped)


def step_summary(ctx: RunContext, state: PymkState) -> Summary:
    result = compute_summary(state, ctx.skipped)
    result.report(ctx.blueprint)
    return result


def steps(options: RunOptions) -> list[Step[PymkState]]:
    return [
        requirements_step(INTRO, REQUIREMENTS, FRAMING),
        Step("data", "3. Data preparation", step_data),
        Step("features", "3. Feature engineering", step_features),
        Step("eda", "3. Exploratory data analysis", step_eda),
        Step("models", "4. Model development", step_models),
        Step("evaluation", "5. Offline evaluation", step_offline),
        Step("serving", "6. Serving", step_serving),
        Step("efficiency", "6. Efficiency", step_efficiency),
        Step("tradeoffs", "6. Trade-offs: latency budget × candidates", step_tradeoffs),
        Step("online", "5. Online A/B test", step_online),
        Step("canary", "5-6. Canary rollout", step_canary),
        Step("monitoring", "7. Monitoring", step_monitoring),
        Step("scale", "Scale", step_scale),
        Step("summary", "Summary", step_summary),
    ]


PIPELINE: Pipeline[PymkState] = Pipeline(TITLE, new_state, steps)
