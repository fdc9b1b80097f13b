"""The analyses every system runs beside its chapter's steps, for similar-listings: the
exploratory data analysis, the efficiency table, the latency-budget sweep and the canary rollout
(the framework parts: :mod:`mlsd.eda`, :mod:`mlsd.efficiency_table`, :mod:`mlsd.tradeoffs`,
:mod:`mlsd.canary`). Each is a step of :mod:`.system`'s pipeline."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from mlsd.canary import CanaryResult
from mlsd.eda import EdaResult, profile_frame, report_eda, sample_parquet
from mlsd.efficiency_table import EfficiencyNotApplicable
from mlsd.runner import (
    RunContext,
    require,
)
from mlsd.systems.similar_listings import REQUIREMENTS
from mlsd.systems.similar_listings.evaluation_canary import (
    compute_canary,
    report_similar_listings_canary,
)
from mlsd.systems.similar_listings.evaluation_tradeoffs import compute_budget_sweep
from mlsd.tradeoffs import BudgetSweep, report_budget_sweep

if TYPE_CHECKING:
    from mlsd.systems.similar_listings.system import SimilarListingsState


def step_eda(ctx: RunContext, state: SimilarListingsState) -> EdaResult:
    """Step 3's look at the data before the models: one row per training click (its session's
    day, its rank in the session, the listing's attributes), labelled by whether the session
    booked that listing: the signal the chapter adds as global context."""
    data = require(state.data, "the sessions (step 3, data)")
    train = data.train
    lengths = np.diff(train.offsets)
    session = np.repeat(np.arange(len(train)), lengths)
    clicks = pd.DataFrame(
        {
            "session": session,
            "day": train.day[session],
            "rank_in_session": np.arange(train.n_clicks) - train.offsets[session],
            "session_clicks": lengths[session],
            "row": train.items,  # the listing's row in the listings table (not the file's id)
            "booked": (train.booked[session] == train.items).astype(np.int8),
        }
    )
    frame, total = sample_parquet(
        "SELECT c.* EXCLUDE (row), l.* EXCLUDE (row) FROM c JOIN l USING (row) "
        "ORDER BY c.session, c.rank_in_session",
        ctx.options.seed,
        c=clicks,
        l=data.listings.reset_index(drop=True).assign(row=np.arange(len(data.listings))),
    )
    result = profile_frame(
        frame,
        "booked",
        table="training clicks ⋈ listings",
        seed=ctx.options.seed,
        rows_total=total,
        skip_leakage=("session",),
    )
    report_eda(ctx.blueprint, result)
    return result


# ---- 5b. online --------------------------------------------------------------------------------
def step_efficiency(ctx: RunContext, state: SimilarListingsState) -> EfficiencyNotApplicable:
    """Why the efficiency table does not apply here, from the serving step's measurements."""
    serving = require(state.serving, "the served index (step 6)")
    p99 = {stage: float(lat["p99"]) for stage, lat in serving.latency_ms.items()}
    result = EfficiencyNotApplicable(
        f"the served model (**{serving.model}**) is a table of listing embeddings, not a "
        "network: a request looks the viewed listing's vector up and searches its region's "
        f"{serving.index_kind} index (p99 by stage, ms: "
        + ", ".join(f"{k} {v:.3f}" for k, v in p99.items())
        + f"; budget {REQUIREMENTS.latency_budget_ms:g} ms). There is no forward pass to "
        "distil, prune or export; the cheaper-serving lever is the index (its comparison is "
        "in the serving section), and vector quantisation (IVF-PQ) is where int8-like savings "
        "come from.",
        {"served": serving.model, "p99_ms": p99, "index_kind": serving.index_kind},
    )
    result.report(ctx.blueprint)
    return result


def step_tradeoffs(ctx: RunContext, state: SimilarListingsState) -> BudgetSweep | None:
    """The served-model choice re-made per latency budget and k (issue #18): popularity,
    co-occurrence, content and the served skip-gram (exact and HNSW) on the query path, by
    their validation figures."""
    data = require(state.data, "the sessions (step 3)")
    models = require(state.models, "the models (step 4)").models
    serving = require(state.serving, "the served index (step 6)")
    result = compute_budget_sweep(
        models,
        serving.model,
        data.train,
        data.listings,
        data.split_day,
        world=data.world is not None,
        scale=str(ctx.options.scale),
        seed=ctx.options.seed,
    )
    if result is None:
        ctx.skip("tradeoffs", "the validation days hold no case: no model has a validation figure")
        return None
    state.tradeoffs = result
    report_budget_sweep(ctx.blueprint, result)
    return result


# ---- 5-6. canary rollout (after the A/B test, with the same control) ---------------------------
def step_canary(ctx: RunContext, state: SimilarListingsState) -> CanaryResult | None:
    data = require(state.data, "the sessions (step 3)")
    if data.world is None:
        ctx.skip("canary", "a canary rollout needs users in a world; session files have none")
        return None
    require(state.online, "the A/B test (the canary follows it)")
    models = require(state.models, "the models (step 4)").models
    evaluation = require(state.evaluation, "the offline evaluation (step 5)")
    arms = {
        "control": (evaluation.control, models[evaluation.control]),
        "treatment": (evaluation.chosen_model, models[evaluation.chosen_model]),
    }
    result = compute_canary(data.world, arms, ctx.options.seed)
    state.canary = result
    report_similar_listings_canary(ctx.blueprint, result, data.world.config.online_sessions)
    return result
