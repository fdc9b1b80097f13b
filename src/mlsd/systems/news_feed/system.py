"""The personalized news feed, step by step in the chapter's order.

1-2 requirements and framing → 3 data (the network's log) and features (point-in-time groups) →
4 models side by side → 5 offline evaluation per head and of the feed, next to the oracle →
6 serving (the model chosen on the validation days, artifacts, per-stage latency) → 5 online
A/B test and the weights experiment in the world → 7 monitoring → the summary. With
``--data mind:DIR``: the news-recommendation benchmark's click head instead.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np

from mlsd.canary import CanaryResult
from mlsd.efficiency_table import EfficiencyTable
from mlsd.requirements import requirements_step
from mlsd.runner import Pipeline, RunContext, RunOptions, RunRefusedError, Step, Summary, require
from mlsd.systems.news_feed import FRAMING, REQUIREMENTS
from mlsd.systems.news_feed.evaluation import (
    EvalSet,
    OfflineEvaluation,
    build_eval_set,
    compute_offline,
    report_offline,
)
from mlsd.systems.news_feed.evaluation_online import OnlineTest, compute_online, report_online
from mlsd.systems.news_feed.features import (
    FEATURE_GROUPS,
    SOURCE,
    Platform,
    TrainingData,
    impression_features,
    labels,
)
from mlsd.systems.news_feed.model import MODELS, SINGLE, TrainedModels, report_models, train_models
from mlsd.systems.news_feed.monitoring import Monitoring, compute_monitoring, report_monitoring
from mlsd.systems.news_feed.serving_latency import ServingChoice, compute_serving, report_serving
from mlsd.systems.news_feed.serving_rerank import RerankConfig
from mlsd.systems.news_feed.system_analyses import (
    step_canary,
    step_eda,
    step_efficiency,
    step_tradeoffs,
)
from mlsd.systems.news_feed.system_scale import step_scale
from mlsd.systems.news_feed.world import Log, NewsFeedWorld
from mlsd.systems.news_feed.world_config import DEFAULT_WEIGHTS, HEADS
from mlsd.tradeoffs import BudgetSweep
from mlsd.world import Scale

log = logging.getLogger(__name__)

TITLE = "Personalized News Feed"
INTRO = (
    "A social network ranks each user's feed: the unseen posts of friends, followed pages and "
    "groups. A multi-task network (a shared bottom, one head per reaction: click, like, "
    "comment, share, hide, block, and dwell time) predicts every reaction of a (user, post) "
    "pair; the feed is ordered by a weighted engagement score, then re-ranked for diversity and"
    " freshness. It is compared with independent per-reaction models and a single 'any "
    "engagement' classifier, offline next to the world's oracle and online in an A/B test; and "
    "engagement is measured against the users' own satisfaction survey, which it does not "
    "always follow."
)
TREES = {Scale.TINY: 40, Scale.SMALL: 300}
EPOCHS = {Scale.TINY: 4, Scale.SMALL: 8}
LATENCY_REQUESTS = {Scale.TINY: 50, Scale.SMALL: 200}
RERANK = RerankConfig()


@dataclass
class NewsFeedState:
    world: NewsFeedWorld | None = None
    log: Log | None = None
    platform: Platform | None = None
    features: TrainingData | None = None
    models: TrainedModels | None = None
    offline: OfflineEvaluation | None = None
    serving: ServingChoice | None = None
    efficiency: EfficiencyTable | None = None
    tradeoffs: BudgetSweep | None = None
    online: OnlineTest | None = None
    canary: CanaryResult | None = None
    monitoring: Monitoring | None = None


def new_state(options: RunOptions) -> NewsFeedState:
    return NewsFeedState()


# ---- 3. data and features --------------------------------------------------------------------
@dataclass(frozen=True)
class DataResult:
    users: int
    pages: int
    groups: int
    posts: int
    friendships: int
    follows: int
    days: int
    sessions: int
    impressions: int
    candidates_per_session: float
    rates: dict[str, float]
    surveys: int
    mean_survey: float

    def metrics(self) -> dict[str, Any]:
        return {"data": {"source": "world", **self.__dict__}}


def step_data(ctx: RunContext, state: NewsFeedState) -> DataResult:
    world = NewsFeedWorld(ctx.options.scale, ctx.options.seed)
    lg = world.log(ctx.progress)
    state.world, state.log = world, lg
    state.platform = Platform(**world.platform_tables())
    imp, sess = lg.impressions, lg.sessions
    cfg = world.config
    result = DataResult(
        users=cfg.n_users,
        pages=cfg.n_pages,
        groups=cfg.n_groups,
        posts=int((world.posts["created_ts"] < cfg.n_days * 86400).sum()),
        friendships=len(world.friends),
        follows=len(world.follows),
        days=cfg.n_days,
        sessions=len(sess),
        impressions=len(imp),
        candidates_per_session=float(sess["candidates"].mean()),
        rates={h: float(imp[h].mean()) for h in HEADS},
        surveys=int(sess["survey"].notna().sum()),
        mean_survey=float(sess["survey"].mean()),
    )
    bp = ctx.blueprint
    bp.section("Data preparation")
    bp.text(
        f"A network of {result.users:,} users, {result.pages} pages and {result.groups} groups, "
        f"with {result.friendships:,} friendships and {result.follows:,} page follows and group "
        "memberships; "
        f"{result.posts:,} posts over {result.days} logged days. {result.sessions:,} feed visits "
        f"retrieved {result.candidates_per_session:.1f} candidates on average (unseen posts of "
        f"friends, followed pages and groups from the last {cfg.lookback_h} hours) and were shown "
        f"the top {cfg.list_len} by the logging policy (newest first, with noise): "
        f"{result.impressions:,} impressions. {result.surveys:,} visits answered the "
        f"satisfaction survey (mean {result.mean_survey:.2f} of 5)."
    )
    bp.table(
        ["reaction", "rate per impression"],
        [[h, v] for h, v in result.rates.items()],
        caption="Reactions in the log (dwell: mean seconds)",
    )
    return result


def step_features(ctx: RunContext, state: NewsFeedState) -> TrainingData:
    world = require(state.world, "the world (step 3, data)")
    lg = require(state.log, "the log (step 3, data)")
    platform = require(state.platform, "the platform tables (step 3, data)")
    imp = lg.impressions
    X = impression_features(platform, imp)
    cfg = world.config
    result = TrainingData(
        X=X,
        Y=labels(imp),
        day=imp["day"].to_numpy(np.int64),
        session=imp["session_id"].to_numpy(np.int64),
        user=imp["user_id"].to_numpy(np.int64),
        new_user=X["d_user_days"].to_numpy() < 7,
        train_days=cfg.train_days,
        valid_days=cfg.validation_days,
        test_days=cfg.eval_days,
    )
    state.features = result
    bp = ctx.blueprint
    bp.section("Feature engineering")
    bp.text(
        "Each logged impression gets the features of its (user, post) pair from the reactions "
        "logged strictly before the start of its day (point-in-time); the platform never sees "
        "the world's hidden interests, closeness, quality or clickbait. Groups:"
    )
    bp.table(
        ["group", "features", "source"],
        [[g, ", ".join(c), SOURCE[g]] for g, c in FEATURE_GROUPS.items()],
    )
    bp.text(
        f"Day 0 is the warm-up (no history yet, every count empty): it feeds later days' "
        f"counts but is not trained on. Training days {list(result.train_days)}, validation "
        f"days {list(result.valid_days)} (choices are made there), test days "
        f"{list(result.test_days)}; {len(result.Y):,} rows."
    )
    return result


# ---- 4. models -------------------------------------------------------------------------------
def step_models(ctx: RunContext, state: NewsFeedState) -> TrainedModels:
    data = require(state.features, "the feature frame (step 3, features)")
    train = data.rows(data.train_days)
    scale = Scale(ctx.options.scale)
    result = train_models(
        data.X[train].reset_index(drop=True),
        data.Y[train],
        ctx.options.seed,
        TREES[scale],
        EPOCHS[scale],
    )
    state.models = result
    ctx.blueprint.section("Model development")
    report_models(ctx.blueprint, result, DEFAULT_WEIGHTS)
    return result


# ---- 5. offline evaluation -----------------------------------------------------------------------
def _eval_set(
    state: NewsFeedState, days: tuple[int, ...], n: int, seed: int, purpose: str
) -> EvalSet:
    world = require(state.world, "the world (step 3, data)")
    return build_eval_set(
        world,
        require(state.platform, "the platform"),
        require(state.log, "the log"),
        days,
        n,
        seed,
        purpose,
    )


def step_offline(ctx: RunContext, state: NewsFeedState) -> OfflineEvaluation:
    world = require(state.world, "the world (step 3, data)")
    lg = require(state.log, "the log (step 3, data)")
    data = require(state.features, "the feature frame (step 3, features)")
    models = require(state.models, "the trained models (step 4)")
    seed, n = ctx.options.seed, world.config.eval_sessions
    test_ev = _eval_set(state, data.test_days, n, seed, "eval-test")
    valid_ev = _eval_set(state, data.valid_days, n // 2, seed, "eval-valid")
    test = data.rows(data.test_days)
    imp = lg.impressions[test].reset_index(drop=True)
    result = compute_offline(
        models.models,
        world,
        data.X[test].reset_index(drop=True),
        data.Y[test],
        imp,
        test_ev,
        valid_ev,
        lg,
        ctx.engine,  # --engine ray: one model's batch scoring per Ray task
    )
    state.offline = result
    ctx.blueprint.section("Offline evaluation")
    report_offline(ctx.blueprint, result)
    return result


# ---- 6. serving ------------------------------------------------------------------------------
def step_serving(ctx: RunContext, state: NewsFeedState) -> ServingChoice:
    world = require(state.world, "the world (step 3, data)")
    lg = require(state.log, "the log (step 3, data)")
    models = require(state.models, "the trained models (step 4)")
    offline = require(state.offline, "the offline evaluation (step 5)")
    chosen = offline.chosen
    v = offline.validation.ndcg[chosen]["ndcg@10_expected"]
    because = f"the best nDCG@10 (expected engagement gains) on the validation days ({v:.4f})"
    n = LATENCY_REQUESTS.get(Scale(ctx.options.scale), 100)
    result = compute_serving(
        world,
        lg,
        models.models[chosen],
        chosen,
        because,
        DEFAULT_WEIGHTS,
        RERANK,
        ctx.artifacts_dir,
        n,
        REQUIREMENTS.latency_budget_ms,
        ctx.options.seed,
    )
    state.serving = result
    report_serving(ctx.blueprint, result, n)
    return result


# ---- 5. online A/B test --------------------------------------------------------------------------
def step_online(ctx: RunContext, state: NewsFeedState) -> OnlineTest:
    world = require(state.world, "the world (step 3, data)")
    lg = require(state.log, "the log (step 3, data)")
    platform = require(state.platform, "the platform tables (step 3, data)")
    models = require(state.models, "the trained models (step 4)").models
    result = compute_online(
        world,
        platform,
        lg,
        (SINGLE, models[SINGLE]),
        ("multi_task", models["multi_task"]),
        RERANK,
        ctx.progress,
    )
    state.online = result
    ctx.blueprint.section("Online evaluation: A/B test")
    report_online(ctx.blueprint, result)
    return result


# ---- 7. monitoring -----------------------------------------------------------------------------
def step_monitoring(ctx: RunContext, state: NewsFeedState) -> Monitoring:
    data = require(state.features, "the feature frame (step 3, features)")
    models = require(state.models, "the trained models (step 4)")
    chosen = require(state.serving, "the served model (step 6)").chosen
    result = compute_monitoring(data.X, data.Y, data.day, models.models[chosen], data.train_days)
    state.monitoring = result
    ctx.blueprint.section("Monitoring")
    report_monitoring(ctx.blueprint, result)
    return result


# ---- summary ------------------------------------------------------------------------------------
def step_summary(ctx: RunContext, state: NewsFeedState) -> Summary:
    offline = require(state.offline, "the offline evaluation (step 5)")
    serving = require(state.serving, "the served model (step 6)")
    t = offline.test.ndcg
    lines = [
        "- nDCG@10 of the feed (drawn / expected engagement gains), test days: "
        + "; ".join(
            f"{n} {t[n]['ndcg@10']:.4f} / {t[n]['ndcg@10_expected']:.4f}"
            for n in (*MODELS, "oracle")
        )
        + ".",
        f"- Served model: **{serving.chosen}** ({serving.because}); total latency p99 "
        f"{serving.latency_ms['total']['p99']:.1f} ms against {serving.budget_ms:.0f} ms.",
    ]
    d = offline.disagreement
    lines.append(
        "- Engagement vs satisfaction: rank correlation over candidates "
        f"{d['candidates_spearman_engagement_vs_value']:.3f}; the engagement oracle's top 10 "
        f"averages satisfaction {offline.test.feed['oracle']['satisfaction']:.3f} against "
        f"{offline.test.feed['satisfaction oracle']['satisfaction']:.3f} for the satisfaction "
        "oracle."
    )
    if state.online is not None:
        ab = state.online.ab
        lines.append(
            f"- A/B test ({ab.arms['treatment']['policy']} vs {ab.arms['control']['policy']}): "
            f"**{ab.decision}**: {ab.reason}"
        )
    if state.monitoring is not None:
        lines.append(
            f"- Monitoring: {len(state.monitoring.alerts)} alerts; {state.monitoring.reason}."
        )
    result = Summary.of(lines, ctx.skipped)
    result.report(ctx.blueprint)
    return result


def step_mind(ctx: RunContext, state: NewsFeedState) -> Any:
    from mlsd.systems.news_feed.datasets import read_mind
    from mlsd.systems.news_feed.evaluation_mind import compute_mind, report_mind

    files = read_mind(ctx.options.data or "", ctx.options.test_data)
    result = compute_mind(files, ctx.options.seed, TREES[Scale.SMALL])
    for step, why in MIND_SKIPS:
        ctx.skip(step, why)
    ctx.blueprint.section("The news-recommendation benchmark's files")
    report_mind(ctx.blueprint, result)
    return result


MIND_SKIPS = (
    ("multi_task", "the benchmark logs clicks only: one head (click) is trained and evaluated"),
    ("serving", "the served feed needs the world's social graph (friends, pages, posts)"),
    ("online", "a file cannot answer an A/B test"),
    ("monitoring", "a file has no days to monitor"),
)


def steps(options: RunOptions) -> list[Step[NewsFeedState]]:
    if options.data:
        return [
            requirements_step(INTRO, REQUIREMENTS, FRAMING),
            Step("mind", "3-5. The benchmark's files", step_mind),
        ]
    if options.test_data:
        raise RunRefusedError("news-feed --test-data: needs --data mind:DIR (the training folder)")
    if Scale(options.scale) not in TREES:
        raise RunRefusedError(
            f"news-feed --scale {options.scale} is not supported yet: its world keeps every "
            "impression in memory and rebuilds the reaction counts per day; use --scale tiny or "
            "small"
        )
    return [
        requirements_step(INTRO, REQUIREMENTS, FRAMING),
        Step("data", "3. Data preparation", step_data),
        Step("eda", "3. Exploratory data analysis", step_eda),
        Step("features", "3. Feature engineering", step_features),
        Step("models", "4. Model development", step_models),
        Step("evaluation", "5. Offline evaluation", step_offline),
        Step("serving", "6. Serving", step_serving),
        Step("efficiency", "6. Efficiency: distillation, pruning, int8, ONNX", step_efficiency),
        Step("tradeoffs", "6. Trade-offs: latency budget × candidates", step_tradeoffs),
        Step("online", "5. Online A/B test", step_online),
        Step("canary", "5-6. Canary rollout", step_canary),
        Step("monitoring", "7. Monitoring", step_monitoring),
        Step("scale", "Scale", step_scale),
        Step("summary", "Summary", step_summary),
    ]


PIPELINE: Pipeline[NewsFeedState] = Pipeline(TITLE, new_state, steps)
