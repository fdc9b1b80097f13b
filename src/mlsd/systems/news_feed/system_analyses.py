"""The analyses every system runs beside its chapter's steps, for news-feed: the
exploratory data analysis, the efficiency table, the latency-budget sweep and the canary rollout
(the framework parts: :mod:`mlsd.eda`, :mod:`mlsd.efficiency_table`, :mod:`mlsd.tradeoffs`,
:mod:`mlsd.canary`). Each is a step of :mod:`.system`'s pipeline."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mlsd.canary import CanaryResult
from mlsd.eda import EdaResult, profile_frame, report_eda, sample_parquet
from mlsd.efficiency_table import EfficiencyTable, report_efficiency
from mlsd.runner import RunContext, require
from mlsd.systems.news_feed.evaluation import (
    EvalSet,
)
from mlsd.systems.news_feed.evaluation_canary import compute_canary, report_news_feed_canary
from mlsd.systems.news_feed.evaluation_efficiency import compute_budget_sweep, compute_efficiency
from mlsd.systems.news_feed.model import MODELS, SINGLE
from mlsd.tradeoffs import BudgetSweep, report_budget_sweep

if TYPE_CHECKING:
    from mlsd.systems.news_feed.system import NewsFeedState


def step_eda(ctx: RunContext, state: NewsFeedState) -> EdaResult:
    """Step 3's look at the data before features: impressions joined with the users' and the
    posts' attributes, labelled by a click; the other reactions are outcomes of the same
    impression, and the world's true score and value its ground truth."""
    lg = require(state.log, "the log (step 3, data)")
    platform = require(state.platform, "the platform tables (step 3, data)")
    frame, total = sample_parquet(
        "SELECT i.*, u.age_bucket, u.country, u.signup_day, p.topic, p.media, "
        "i.ts - p.created_ts AS post_age_s FROM i JOIN u USING (user_id) "
        "JOIN p USING (post_id) ORDER BY i.ts",
        ctx.options.seed,
        i=lg.impressions,
        u=platform.users,
        p=platform.posts.drop(columns=["hashtag", "author_id"]),
    )
    result = profile_frame(
        frame,
        "click",
        table="impressions ⋈ users ⋈ posts",
        seed=ctx.options.seed,
        rows_total=total,
        ground_truth=("true_score", "true_value"),
        skip_leakage=("ts", "session_id"),
    )
    report_eda(
        ctx.blueprint,
        result,
        note="`like`, `comment`, `share`, `hide`, `block` and `dwell` are the other outcomes of "
        "the same impression (the multi-task model's other heads): they may score high here "
        "(dwell most of all) and are labels, never features.",
    )
    return result


# ---- 6. efficiency and the latency trade-off table -------------------------------------------
def _valid_ev(ctx: RunContext, state: NewsFeedState) -> EvalSet:
    """The offline step's validation sessions, drawn again (the same named stream)."""
    from mlsd.systems.news_feed.system import _eval_set  # defined beside the chapter's steps

    data = require(state.features, "the feature frame (step 3, features)")
    n = require(state.world, "the world (step 3, data)").config.eval_sessions
    return _eval_set(state, data.valid_days, n // 2, ctx.options.seed, "eval-valid")


def step_efficiency(ctx: RunContext, state: NewsFeedState) -> EfficiencyTable:
    from mlsd.systems.news_feed.system import _eval_set  # defined beside the chapter's steps

    data = require(state.features, "the feature frame (step 3, features)")
    n = require(state.world, "the world (step 3, data)").config.eval_sessions
    train = data.rows(data.train_days)
    result = compute_efficiency(
        require(state.models, "the trained models (step 4)"),
        require(state.serving, "the served model (step 6)").chosen,
        data.X[train].reset_index(drop=True),
        _valid_ev(ctx, state),
        _eval_set(state, data.test_days, n, ctx.options.seed, "eval-test"),
        scale=str(ctx.options.scale),
        seed=ctx.options.seed,
        torch_thread_count=ctx.settings.torch_threads,
    )
    state.efficiency = result
    report_efficiency(ctx.blueprint, result)
    return result


def step_tradeoffs(ctx: RunContext, state: NewsFeedState) -> BudgetSweep:
    offline = require(state.offline, "the offline evaluation (step 5)")
    result = compute_budget_sweep(
        require(state.models, "the trained models (step 4)"),
        {n: offline.validation.ndcg[n]["ndcg@10_expected"] for n in MODELS},
        _valid_ev(ctx, state),
        scale=str(ctx.options.scale),
        seed=ctx.options.seed,
        torch_thread_count=ctx.settings.torch_threads,
    )
    state.tradeoffs = result
    report_budget_sweep(ctx.blueprint, result)
    return result


# ---- 5-6. canary rollout (after the A/B test, with the same control) ---------------------------
def step_canary(ctx: RunContext, state: NewsFeedState) -> CanaryResult:
    from mlsd.systems.news_feed.system import RERANK  # defined beside the chapter's steps

    world = require(state.world, "the world (step 3, data)")
    lg = require(state.log, "the log (step 3, data)")
    platform = require(state.platform, "the platform tables (step 3, data)")
    models = require(state.models, "the trained models (step 4)").models
    require(state.online, "the A/B test (the canary follows it)")
    result = compute_canary(
        world,
        platform,
        lg,
        (SINGLE, models[SINGLE]),
        ("multi_task", models["multi_task"]),
        RERANK,
        ctx.options.seed,
    )
    state.canary = result
    report_news_feed_canary(ctx.blueprint, result, world)
    return result
