"""The analyses every system runs beside its chapter's steps, for harmful-content: the
exploratory data analysis, the efficiency table, the latency-budget sweep and the canary rollout
(the framework parts: :mod:`mlsd.eda`, :mod:`mlsd.efficiency_table`, :mod:`mlsd.tradeoffs`,
:mod:`mlsd.canary`). Each is a step of :mod:`.system`'s pipeline."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from mlsd.canary import CanaryResult
from mlsd.eda import EdaResult, profile_frame, report_eda
from mlsd.efficiency_table import EfficiencyTable, report_efficiency
from mlsd.runner import RunContext, require
from mlsd.systems.harmful_content.evaluation_canary import compute_canary, report_harmful_canary
from mlsd.systems.harmful_content.evaluation_efficiency import (
    compute_budget_sweep,
    compute_efficiency,
    has_early_fusion,
)
from mlsd.systems.harmful_content.model import (
    BASELINE,
    SERVABLE,
)
from mlsd.tradeoffs import BudgetSweep, report_budget_sweep

if TYPE_CHECKING:
    from mlsd.systems.harmful_content.system import HarmState


def step_eda(ctx: RunContext, state: HarmState) -> EdaResult:
    """Step 3's look at the training posts before the models: the text's length, the image, the
    author and engagement columns, labelled harmful (any harmful class) or not."""
    from mlsd.systems.harmful_content.features import META_COLUMNS

    prep = require(state.prepared, "the prepared posts (step 3, data)")
    rows = prep.train
    inputs = prep.inputs.take(rows)
    harmful_cols = [i for i in range(len(prep.classes)) if i != prep.benign]
    texts = pd.Series(inputs.texts)
    frame = pd.DataFrame(inputs.meta, columns=list(META_COLUMNS)[: inputs.meta.shape[1]]).assign(
        text_chars=texts.str.len().to_numpy(),
        text_words=np.array([len(t.split()) for t in inputs.texts]),
        has_image=inputs.has_image.astype(np.int8),
        harmful=prep.Y[rows][:, harmful_cols].max(axis=1).astype(np.int8),
    )
    result = profile_frame(frame, "harmful", table="training posts", seed=ctx.options.seed)
    report_eda(ctx.blueprint, result)
    ctx.blueprint.section("Model development")  # the models step opens no section of its own
    return result


def step_efficiency(ctx: RunContext, state: HarmState) -> EfficiencyTable | None:
    p = require(state.prepared, "the prepared posts (step 3)")
    lineup = require(state.models, "the trained models (step 4)").lineup
    if not has_early_fusion(lineup):
        ctx.skip(
            "efficiency",
            "the line-up has no early-fusion network to compress (a labelled text file trains "
            "text models only)",
        )
        return None
    result = compute_efficiency(
        lineup,
        require(state.reps, "the representations (step 4)"),
        p.Y[p.val],
        p.Y[p.test],
        p.classes,
        require(state.serving, "the served model (step 6)").model,
        scale=str(ctx.options.scale),
        seed=ctx.options.seed,
        torch_thread_count=ctx.settings.torch_threads,
    )
    state.efficiency = result
    report_efficiency(ctx.blueprint, result)
    return result


def step_tradeoffs(ctx: RunContext, state: HarmState) -> BudgetSweep | None:
    p = require(state.prepared, "the prepared posts (step 3)")
    lineup = require(state.models, "the trained models (step 4)").lineup
    if not any(n in lineup.models for n in SERVABLE):
        ctx.skip(
            "tradeoffs",
            "the sweep times the fused models, and a labelled text file trains text models only",
        )
        return None
    result = compute_budget_sweep(
        lineup,
        require(state.reps, "the representations (step 4)"),
        p.Y[p.val],
        p.classes,
        scale=str(ctx.options.scale),
        seed=ctx.options.seed,
        torch_thread_count=ctx.settings.torch_threads,
    )
    state.tradeoffs = result
    report_budget_sweep(ctx.blueprint, result)
    return result


def step_canary(ctx: RunContext, state: HarmState) -> CanaryResult | None:
    """After the A/B test: the served model's enforcement rolled out in stages."""
    if state.world is None:
        ctx.skip("canary", "a canary rollout needs authors in a world; a labelled file has none")
        return None
    require(state.online, "the A/B test (the canary follows it)")
    p = require(state.prepared, "the prepared posts (step 3)")
    ev = require(state.offline, "the offline evaluation (step 5)")
    scores = require(state.scores, "the scores (step 5)")
    result = compute_canary(
        state.world,
        p.test,
        scores["test"],
        (p.Y[p.val], scores["val"]),
        ev.chosen,
        BASELINE,
        ev.thresholds,
        ctx.options.seed,
    )
    state.canary = result
    report_harmful_canary(ctx.blueprint, result)
    return result
