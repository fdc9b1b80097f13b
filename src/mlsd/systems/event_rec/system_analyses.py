"""The analyses every system runs beside its chapter's steps, for event-rec: the
exploratory data analysis, the efficiency table, the latency-budget sweep and the canary rollout
(the framework parts: :mod:`mlsd.eda`, :mod:`mlsd.efficiency_table`, :mod:`mlsd.tradeoffs`,
:mod:`mlsd.canary`). Each is a step of :mod:`.system`'s pipeline."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mlsd.canary import CanaryResult
from mlsd.eda import EdaResult, profile_frame, report_eda, sample_parquet
from mlsd.efficiency_table import EfficiencyTable, report_efficiency
from mlsd.runner import RunContext, require
from mlsd.systems.event_rec.evaluation_canary import compute_canary, report_event_rec_canary
from mlsd.systems.event_rec.evaluation_efficiency import compute_budget_sweep, compute_efficiency
from mlsd.systems.event_rec.model import BASELINE
from mlsd.tradeoffs import BudgetSweep, report_budget_sweep

if TYPE_CHECKING:
    from mlsd.systems.event_rec.system import EventRecState


def step_eda(ctx: RunContext, state: EventRecState) -> EdaResult:
    """Step 3's look at the data before features: impressions joined with the users' and the
    events' attributes, profiled and checked for leaks."""
    world = require(state.world, "the world (step 3, data)")
    lg = require(state.log, "the log (step 3, data)")
    frame, total = sample_parquet(
        "SELECT i.*, u.hood_id, u.age, u.has_car, e.category, e.price, e.capacity, "
        "e.duration_h, e.start_ts - i.ts AS starts_in_s FROM i JOIN u USING (user_id) "
        "JOIN e USING (event_id) ORDER BY i.ts",
        ctx.options.seed,
        i=lg.impressions,
        u=world.users,
        e=world.events.drop(columns=["tag", "description"]),
    )
    result = profile_frame(
        frame,
        "register",
        table="impressions ⋈ users ⋈ events",
        seed=ctx.options.seed,
        rows_total=total,
        ground_truth=("p_true",),
        skip_leakage=("ts", "session_id"),
    )
    report_eda(
        ctx.blueprint,
        result,
        note="`click` and `bookmark` are logged with the same impression as the registration, "
        "so they may be flagged: the features use them only as counts from before the "
        "impression.",
    )
    return result


# ---- 6. efficiency and the latency trade-off table -------------------------------------------
def step_efficiency(ctx: RunContext, state: EventRecState) -> EfficiencyTable:
    result = compute_efficiency(
        require(state.models, "the trained models (step 4)"),
        require(state.serving, "the served model (step 6)").chosen,
        require(state.features, "the feature frame (step 3, features)"),
        require(state.val_set, "the labelled validation candidates (step 4)"),
        require(state.eval_set, "the labelled test candidates (step 5)"),
        scale=str(ctx.options.scale),
        seed=ctx.options.seed,
        torch_thread_count=ctx.settings.torch_threads,
    )
    state.efficiency = result
    report_efficiency(ctx.blueprint, result)
    return result


def step_tradeoffs(ctx: RunContext, state: EventRecState) -> BudgetSweep:
    result = compute_budget_sweep(
        require(state.models, "the trained models (step 4)"),
        require(state.val_set, "the labelled validation candidates (step 4)"),
        scale=str(ctx.options.scale),
        seed=ctx.options.seed,
        torch_thread_count=ctx.settings.torch_threads,
    )
    state.tradeoffs = result
    report_budget_sweep(ctx.blueprint, result)
    return result


# ---- 5-6. canary rollout (after the A/B test, with the same control) ---------------------------
def step_canary(ctx: RunContext, state: EventRecState) -> CanaryResult:
    world = require(state.world, "the world (step 3, data)")
    lg = require(state.log, "the log (step 3, data)")
    platform = require(state.platform, "the platform tables (step 3, data)")
    models = require(state.models, "the trained models (step 4)")
    chosen = require(state.serving, "the served model (step 6)").chosen
    require(state.online, "the A/B test (the canary follows it)")
    result = compute_canary(
        world,
        platform,
        lg,
        (BASELINE, models.models[BASELINE]),
        (chosen, models.models[chosen]),
        ctx.options.seed,
    )
    state.canary = result
    report_event_rec_canary(ctx.blueprint, result, world)
    return result
