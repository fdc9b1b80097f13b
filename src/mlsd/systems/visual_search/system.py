"""The visual-search system, step by step in the chapter's order (book ch. 2).

1-2 requirements and framing → 3 data (the world's product photos, or an image folder / IDX
files, split so no image is both trained on and scored) → 4 encoders side by side (raw pixels,
colour histograms, an untrained CNN, the contrastive CNN) → 5 offline evaluation (and the
embedding-size trade-off) → 6 the index (exact vs approximate, incremental adds,
near-duplicates) and serving (embedding vs search latency) → 5b online A/B test in the world →
7 monitoring (the days after training: drift of the uploads' image statistics, embeddings and
search scores, mAP against the ground truth, alerts and the retrain trigger) → summary. A file
run has neither an A/B test nor monitoring: there is no world to act in or to watch.

Each step reads the results of earlier steps from :class:`VisualSearchState`, computes its own
(a frozen result with ``metrics()``) in the module of its concept, stores it there, and writes
its part of the blueprint with that module's ``report_*``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from mlsd.canary import CanaryResult
from mlsd.eda import EdaResult, profile_frame, report_eda
from mlsd.efficiency_table import EfficiencyTable, report_efficiency
from mlsd.report import Blueprint
from mlsd.requirements import requirements_step
from mlsd.rng import rng
from mlsd.runner import (
    Pipeline,
    RunContext,
    RunOptions,
    Skipped,
    Step,
    StepResult,
    Summary,
    merge_metrics,
    require,
)
from mlsd.systems.visual_search import FRAMING, REQUIREMENTS
from mlsd.systems.visual_search.datasets_split import (
    DataResult,
    data_from_files,
    data_from_world,
    report_data,
)
from mlsd.systems.visual_search.evaluation import (
    K,
    OfflineResult,
    compute_offline_evaluation,
    report_offline_evaluation,
)
from mlsd.systems.visual_search.evaluation_canary import (
    compute_canary,
    report_visual_search_canary,
)
from mlsd.systems.visual_search.evaluation_efficiency import (
    compute_budget_sweep,
    compute_efficiency,
)
from mlsd.systems.visual_search.evaluation_online import OnlineResult, compute_online, report_online
from mlsd.systems.visual_search.evaluation_size import compute_size_tradeoff, report_size_tradeoff
from mlsd.systems.visual_search.model import CONTRASTIVE, CNNEncoder
from mlsd.systems.visual_search.model_training import ModelsResult, report_models, train_models
from mlsd.systems.visual_search.monitoring import (
    Monitoring,
    compute_monitoring,
    report_monitoring,
)
from mlsd.systems.visual_search.serving_index import IndexResult, compute_index, report_index
from mlsd.systems.visual_search.serving_latency import (
    LATENCY_REQUESTS,
    ServingResult,
    compute_serving,
    report_serving,
)
from mlsd.systems.visual_search.system_scale import step_scale
from mlsd.systems.visual_search.world import VisualSearchWorld, VisualWorldConfig
from mlsd.tradeoffs import BudgetSweep, report_budget_sweep

log = logging.getLogger(__name__)

TITLE = "Visual Search System"
# one thread: on a shared 2-core machine two threads were 5x slower per step
TRAIN_THREADS = {"tiny": 1, "small": 1, "medium": 2, "large": 2}
INTRO = (
    "A Pinterest-like platform lets users search with an image: upload a photo, get the "
    "catalogue images that look most like it, the same product first. The system has two "
    "halves: an encoder that turns images into embeddings, trained so photos of one product "
    "lie close together, and an index that finds nearest neighbours among millions of "
    "embeddings within the latency budget."
)


@dataclass
class VisualSearchState:
    """What the steps hand to each other, filled in step order."""

    data: DataResult | None = None
    models: ModelsResult | None = None
    evaluation: OfflineResult | None = None
    index: IndexResult | None = None
    serving: ServingResult | None = None
    efficiency: EfficiencyTable | None = None
    tradeoffs: BudgetSweep | None = None
    online: OnlineResult | None = None
    canary: CanaryResult | None = None
    monitoring: Monitoring | None = None


@dataclass(frozen=True)
class StepResults:
    """Several results of one step, their metrics merged."""

    parts: tuple[StepResult, ...]

    def metrics(self) -> Mapping[str, Any]:
        merged: dict[str, Any] = {}
        for part in self.parts:
            merge_metrics(merged, part.metrics())
        return merged


def new_state(options: RunOptions) -> VisualSearchState:
    return VisualSearchState()


def world_config(options: RunOptions) -> VisualWorldConfig:
    return VisualWorldConfig.for_scale(options.scale)


# ---- 3. data -----------------------------------------------------------------------------------
def step_data(ctx: RunContext, state: VisualSearchState) -> DataResult:
    opts = ctx.options
    if opts.data:
        size = world_config(opts).image_size
        result = data_from_files(opts.data, size, opts.seed, str(opts.scale))
        ctx.skip("online", "an A/B test needs simulated users to act in the world; files cannot")
        ctx.skip(
            "monitoring",
            "image files have no world to watch: no later days of uploads to compare with the "
            "training window and no ground truth for them",
        )
    else:
        world = VisualSearchWorld(opts.scale, opts.seed, world_config(opts))
        result = data_from_world(world, opts.seed, ctx.progress)
    state.data = result
    report_data(ctx.blueprint, result)
    return result


# ---- 4. models ---------------------------------------------------------------------------------
def step_eda(ctx: RunContext, state: VisualSearchState) -> EdaResult:
    """Step 3's look at the data the encoder learns from: pairs of training photos (every
    product's photos paired, and as many random pairs), labelled same product or not, with the
    raw colour and brightness differences of the two photos. How far those alone go says how
    much the encoder must learn beyond colour."""
    rs = require(state.data, "the retrieval set (step 3)").retrieval
    images = np.asarray(rs.train_images, dtype=np.float32)
    channels = images.reshape(len(images), -1, images.shape[-1]).mean(axis=1)  # (n, C)
    grey = images.reshape(len(images), -1).std(axis=1)
    groups = np.asarray(rs.train_groups)
    order = np.argsort(groups, kind="stable")
    same_a, same_b = order[:-1], order[1:]
    keep = groups[same_a] == groups[same_b]  # neighbours in group order: same-product pairs
    same_a, same_b = same_a[keep], same_b[keep]
    g = rng(ctx.options.seed, "visual-search/eda-pairs")
    rand_a = g.integers(0, len(images), size=len(same_a))
    rand_b = g.integers(0, len(images), size=len(same_a))
    a, b = np.concatenate([same_a, rand_a]), np.concatenate([same_b, rand_b])
    diff = np.abs(channels[a] - channels[b])
    frame = pd.DataFrame({f"colour_diff_{c}": diff[:, c] for c in range(diff.shape[1])}).assign(
        brightness_diff=np.abs(channels[a].mean(axis=1) - channels[b].mean(axis=1)),
        contrast_diff=np.abs(grey[a] - grey[b]),
        same_product=(groups[a] == groups[b]).astype(np.int8),
    )
    result = profile_frame(
        frame, "same_product", table="training photo pairs", seed=ctx.options.seed
    )
    report_eda(ctx.blueprint, result)
    return result


def step_models(ctx: RunContext, state: VisualSearchState) -> ModelsResult:
    result = train_models(
        require(state.data, "the retrieval set (step 3)"),
        world_config(ctx.options),
        seed=ctx.options.seed,
        scale=str(ctx.options.scale),
        threads=TRAIN_THREADS[str(ctx.options.scale)],
        progress=ctx.progress,
    )
    state.models = result
    report_models(ctx.blueprint, result)
    return result


# ---- 5. offline evaluation ---------------------------------------------------------------------
def step_evaluation(ctx: RunContext, state: VisualSearchState) -> StepResults:
    rs = require(state.data, "the retrieval set (step 3)").retrieval
    encoders = require(state.models, "the trained encoders (step 4)").encoders
    offline = compute_offline_evaluation(rs, encoders, ctx.progress, ctx.engine)
    size = compute_size_tradeoff(
        rs, encoders[CONTRASTIVE], offline.embeddings[CONTRASTIVE], ctx.options.seed
    )
    state.evaluation = offline
    report_offline_evaluation(ctx.blueprint, offline)
    report_size_tradeoff(ctx.blueprint, size)
    return StepResults((offline, size))


# ---- 6. index and serving ----------------------------------------------------------------------
def step_index(ctx: RunContext, state: VisualSearchState) -> IndexResult:
    rs = require(state.data, "the retrieval set (step 3)").retrieval
    encoders = require(state.models, "the trained encoders (step 4)").encoders
    evaluation = require(state.evaluation, "the offline evaluation (step 5)")
    name = evaluation.chosen_model
    result = compute_index(
        rs, name, encoders[name], evaluation.embeddings[name], ctx.options.seed, ctx.progress
    )
    state.index = result
    report_index(ctx.blueprint, result)
    return result


def step_serving(ctx: RunContext, state: VisualSearchState) -> ServingResult:
    data = require(state.data, "the retrieval set (step 3)")
    encoders = require(state.models, "the trained encoders (step 4)").encoders
    evaluation = require(state.evaluation, "the offline evaluation (step 5)")
    chosen = require(state.index, "the index comparison (step 6a)").chosen
    name = evaluation.chosen_model
    result = compute_serving(
        ctx.artifacts_dir,
        data.retrieval,
        name,
        encoders[name],
        evaluation.embeddings[name][0],
        chosen,
        image_size=data.image_size,
        class_names=data.class_names,
        threads=ctx.settings.torch_threads,
        requests=LATENCY_REQUESTS[str(ctx.options.scale)],
        seed=ctx.options.seed,
    )
    state.serving = result
    report_serving(ctx.blueprint, result)
    return result


# ---- 5b. online --------------------------------------------------------------------------------
def step_efficiency(ctx: RunContext, state: VisualSearchState) -> EfficiencyTable:
    rs = require(state.data, "the retrieval set (step 3)").retrieval
    encoders = require(state.models, "the trained encoders (step 4)").encoders
    served = require(state.evaluation, "the offline evaluation (step 5)").chosen_model
    teacher = encoders[CONTRASTIVE]
    if not isinstance(teacher, CNNEncoder):
        raise TypeError(f"efficiency: {CONTRASTIVE} is not a CNN encoder")
    result = compute_efficiency(
        rs,
        teacher,
        served,
        encoders[served],
        scale=str(ctx.options.scale),
        seed=ctx.options.seed,
        torch_thread_count=ctx.settings.torch_threads,
    )
    state.efficiency = result
    report_efficiency(ctx.blueprint, result)
    return result


def step_tradeoffs(ctx: RunContext, state: VisualSearchState) -> BudgetSweep:
    evaluation = require(state.evaluation, "the offline evaluation (step 5)")
    result = compute_budget_sweep(
        require(state.data, "the retrieval set (step 3)").retrieval,
        require(state.models, "the trained encoders (step 4)").encoders,
        evaluation.embeddings,
        scale=str(ctx.options.scale),
        seed=ctx.options.seed,
        torch_thread_count=ctx.settings.torch_threads,
    )
    state.tradeoffs = result
    report_budget_sweep(ctx.blueprint, result)
    return result


def step_online(ctx: RunContext, state: VisualSearchState) -> OnlineResult | None:
    data = require(state.data, "the retrieval set (step 3)")
    if data.world is None:
        return None  # recorded as skipped by the data step
    encoders = require(state.models, "the trained encoders (step 4)").encoders
    evaluation = require(state.evaluation, "the offline evaluation (step 5)")
    arms = {
        arm: (name, encoders[name], evaluation.embeddings[name][0])
        for arm, name in (
            ("control", evaluation.best_baseline),
            ("treatment", evaluation.chosen_model),
        )
    }
    result = compute_online(data.world, data.retrieval, arms, ctx.options.seed, ctx.progress)
    state.online = result
    report_online(ctx.blueprint, result)
    return result


# ---- 5-6. canary rollout (after the A/B test, with the same control) ---------------------------
def step_canary(ctx: RunContext, state: VisualSearchState) -> CanaryResult | None:
    data = require(state.data, "the retrieval set (step 3)")
    if data.world is None:
        ctx.skip("canary", "a canary rollout needs users in a world; files have none")
        return None
    require(state.online, "the A/B test (the canary follows it)")
    encoders = require(state.models, "the trained encoders (step 4)").encoders
    evaluation = require(state.evaluation, "the offline evaluation (step 5)")
    arms = {
        arm: (name, encoders[name], evaluation.embeddings[name][0])
        for arm, name in (
            ("control", evaluation.best_baseline),
            ("treatment", evaluation.chosen_model),
        )
    }
    result = compute_canary(data.world, data.retrieval, arms, ctx.options.seed)
    state.canary = result
    report_visual_search_canary(ctx.blueprint, result, data.world.config.n_sessions)
    return result


# ---- 7. monitoring ------------------------------------------------------------------------------
def step_monitoring(ctx: RunContext, state: VisualSearchState) -> Monitoring | None:
    data = require(state.data, "the retrieval set (step 3)")
    if data.world is None:
        return None  # recorded as skipped by the data step
    encoders = require(state.models, "the trained encoders (step 4)").encoders
    evaluation = require(state.evaluation, "the offline evaluation (step 5)")
    name = evaluation.chosen_model
    result = compute_monitoring(
        data.world, data.retrieval, name, encoders[name], evaluation.embeddings[name][0]
    )
    state.monitoring = result
    report_monitoring(ctx.blueprint, result)
    return result


# ---- summary -----------------------------------------------------------------------------------
def step_summary(ctx: RunContext, state: VisualSearchState) -> None:
    report_summary(ctx.blueprint, state, ctx.skipped)


def report_summary(bp: Blueprint, state: VisualSearchState, skipped: list[Skipped]) -> None:
    """The run's findings in a few bullets, from the results in ``state``."""
    evaluation = require(state.evaluation, "the offline evaluation (step 5)")
    index = require(state.index, "the index comparison (step 6a)")
    serving = require(state.serving, "the serving measurement (step 6b)")
    scores, base = evaluation.scores, evaluation.best_baseline
    c_map, b_map = scores[CONTRASTIVE]["map"], scores[base]["map"]
    untrained = scores.get("untrained_cnn", {}).get("map", float("nan"))
    verdict = "beats every baseline" if c_map > b_map else "does NOT beat the best baseline"
    lat = serving.latency_ms
    lines = [
        f"- The contrastive encoder {verdict}: mAP@{K} {c_map:.3f} vs {b_map:.3f} ({base}); "
        f"untrained CNN {untrained:.3f}; the oracle {evaluation.oracle['map']:.3f}.",
        f"- Served: {serving.model} over {index.chosen.label}; p99 "
        f"{lat['total']['p99']:.2f} ms (embedding {lat['decode_embed']['p99']:.2f} ms, search "
        f"{lat['search']['p99']:.2f} ms) against a {REQUIREMENTS.latency_budget_ms:g} ms "
        "budget.",
    ]
    ann = [r for r in index.compared if r.kind != "flat"]
    if ann:
        best = max(ann, key=lambda r: r.recall)
        lines.append(
            f"- Approximate search: {best.label} keeps recall@{K} {best.recall:.3f} of exact."
        )
    if state.online is not None:
        ab = state.online.ab
        lines.append(f"- A/B test: **{ab.decision}**: {ab.reason}")
    if state.monitoring is not None:
        mon = state.monitoring
        last = mon.daily.iloc[-1]
        lines.append(
            f"- Monitoring: {len(mon.alerts)} alerts over {len(mon.daily)} days (mAP@{K} "
            f"{mon.baseline['map']:.3f} on day 0, {last['map']:.3f} on day {int(last['day'])}); "
            f"{mon.reason}."
        )
    Summary.of(lines, skipped).report(bp)


def steps(options: RunOptions) -> list[Step[VisualSearchState]]:
    """The run, in the chapter's order."""
    return [
        requirements_step(INTRO, REQUIREMENTS, FRAMING),
        Step("data", "3. Data preparation", step_data),
        Step("eda", "3. Exploratory data analysis", step_eda),
        Step("models", "4. Model development", step_models),
        Step("evaluation", "5. Offline evaluation", step_evaluation),
        Step("index", "6. Indexing", step_index),
        Step("serving", "6. Serving", step_serving),
        Step("efficiency", "6. Efficiency: distillation, pruning, int8, ONNX", step_efficiency),
        Step("tradeoffs", "6. Trade-offs: latency budget × candidates", step_tradeoffs),
        Step("online", "5. Online A/B test", step_online),
        Step("canary", "5-6. Canary rollout", step_canary),
        Step("monitoring", "7. Monitoring", step_monitoring),
        Step("scale", "Scale", step_scale),
        Step("summary", "Summary", step_summary),
    ]


PIPELINE = Pipeline(TITLE, new_state, steps)

__all__ = ["PIPELINE", "TITLE", "VisualSearchState"]
