"""The analyses every system runs beside its chapter's steps, for video-search: the
exploratory data analysis, the efficiency table, the latency-budget sweep and the canary rollout
(the framework parts: :mod:`mlsd.eda`, :mod:`mlsd.efficiency_table`, :mod:`mlsd.tradeoffs`,
:mod:`mlsd.canary`). Each is a step of :mod:`.system`'s pipeline."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mlsd.canary import CanaryResult
from mlsd.eda import EdaResult, profile_frame, report_eda, sample_parquet
from mlsd.efficiency_table import EfficiencyTable, report_efficiency
from mlsd.runner import RunContext, require
from mlsd.systems.video_search.evaluation_canary import (
    compute_canary,
    report_video_search_canary,
)
from mlsd.systems.video_search.evaluation_efficiency import compute_budget_sweep, compute_efficiency
from mlsd.tradeoffs import BudgetSweep, report_budget_sweep

if TYPE_CHECKING:
    from mlsd.systems.video_search.system import VideoSearchState


# ---- 4. models -------------------------------------------------------------------------------
EDA_VIDEO_COLUMNS = "video_id duration_s popularity upload_day text_quality title description"


def step_eda(ctx: RunContext, state: VideoSearchState) -> EdaResult:
    """Step 3's look at the data before the models: the shown results joined with their search
    (day, typo, tail query) and the video's logged attributes, labelled by a click."""
    lg = require(state.log, "the search log (step 3, data)")
    catalogue = require(state.catalogue, "the catalogue (step 3, data)")
    frame, total = sample_parquet(
        "SELECT i.search_id, i.position, i.video_id, i.watch_s, CAST(i.click AS TINYINT) AS "
        "click, s.day, s.typo, s.tail, c.duration_s, c.popularity, c.upload_day, "
        "c.text_quality, length(c.title) AS title_chars, length(c.description) AS "
        "description_chars FROM i JOIN s USING (search_id) JOIN c USING (video_id) "
        "WHERE i.video_id >= 0 ORDER BY i.search_id, i.position",
        ctx.options.seed,
        i=lg.impressions,
        s=lg.searches.drop(columns=["text"]),
        c=catalogue[EDA_VIDEO_COLUMNS.split()],
    )
    result = profile_frame(
        frame,
        "click",
        table="shown results ⋈ searches ⋈ videos",
        seed=ctx.options.seed,
        rows_total=total,
        skip_leakage=("search_id",),
    )
    report_eda(
        ctx.blueprint,
        result,
        note="`watch_s` is the outcome logged after the click, so the check is expected to "
        "flag it: it is a label, never a feature.",
    )
    return result


def step_efficiency(ctx: RunContext, state: VideoSearchState) -> EfficiencyTable:
    from mlsd.systems.video_search.system import (  # defined beside the chapter's steps
        _judged,
        _scale,
    )

    world = require(state.world, "the world (step 3, data)")
    catalogue = require(state.catalogue, "the catalogue (step 3, data)")
    searches = require(state.log, "the logs (step 3, data)").searches
    cfg = world.config
    tr = cfg.train_days
    judged = {}
    for purpose, days in (
        ("validation", tuple(range(tr, tr + cfg.val_days))),
        ("test", tuple(range(tr + cfg.val_days, cfg.n_days))),
    ):
        q, grades = _judged(world, catalogue, days, cfg.eval_queries, purpose)
        judged[purpose] = (q["text"].tolist(), q["day"].to_numpy(), grades)
    texts = searches.loc[searches["day"] < tr, "text"].drop_duplicates().head(5000).tolist()
    result = compute_efficiency(
        require(state.fitted, "the models (step 4)").searcher,
        require(state.serving, "the served ranker (step 6)").chosen,
        texts,
        judged["validation"],
        judged["test"],
        scale=str(_scale(ctx.options)),
        seed=ctx.options.seed,
        torch_thread_count=ctx.settings.torch_threads,
    )
    state.efficiency = result
    report_efficiency(ctx.blueprint, result)
    return result


def step_tradeoffs(ctx: RunContext, state: VideoSearchState) -> BudgetSweep:
    from mlsd.systems.video_search.system import _scale  # defined beside the chapter's steps

    searches = require(state.log, "the logs (step 3, data)").searches
    world = require(state.world, "the world (step 3, data)")
    tr = world.config.train_days
    queries = searches.loc[searches["day"] >= tr, "text"].drop_duplicates().head(50).tolist()
    result = compute_budget_sweep(
        require(state.fitted, "the models (step 4)").searcher,
        require(state.validation, "the validation scores (step 5)"),
        queries,
        scale=str(_scale(ctx.options)),
        torch_thread_count=ctx.settings.torch_threads,
    )
    state.tradeoffs = result
    report_budget_sweep(ctx.blueprint, result)
    return result


# ---- 5-6. canary rollout (after the A/B test, with the same control) -------------------------
def step_canary(ctx: RunContext, state: VideoSearchState) -> CanaryResult:
    from mlsd.systems.video_search.system import (  # defined beside the chapter's steps
        ONLINE_SEARCHES,
        _scale,
    )

    world = require(state.world, "the world (step 3, data)")
    fitted = require(state.fitted, "the models (step 4)")
    serving = require(state.serving, "the served ranker (step 6)")
    require(state.online, "the A/B test (the canary follows it)")
    n = ONLINE_SEARCHES.get(_scale(ctx.options), 2000)
    result = compute_canary(world, fitted.searcher, serving.chosen, n, ctx.options.seed)
    state.canary = result
    report_video_search_canary(ctx.blueprint, result, n)
    return result
