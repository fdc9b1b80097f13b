"""The harmful-content system, step by step in the chapter's order.

1-2 requirements and framing -> 3 data (the simulated platform, or a labelled text CSV) and
features (MiniLM text embeddings, images, author and engagement) -> 4 the line-up (keyword rule,
TF-IDF, one model per modality, late fusion, early fusion single- and multi-task) -> 5 offline
evaluation next to the oracle, per-class thresholds on validation, what each label source is
worth -> 6 serving -> 5 the enforcement loop as an A/B test in the world -> 7 monitoring (new
harm vocabulary) -> the summary. A text file runs the text models only; the steps that need the
world are recorded as skipped with the reason.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from mlsd.canary import CanaryResult
from mlsd.efficiency_table import EfficiencyTable
from mlsd.requirements import requirements_step
from mlsd.runner import Pipeline, RunContext, RunOptions, Step, Summary, require
from mlsd.systems.harmful_content import CLASSES, FRAMING, REQUIREMENTS
from mlsd.systems.harmful_content.datasets import read_text_file
from mlsd.systems.harmful_content.evaluation import (
    OfflineEvaluation,
    compute_offline,
    report_offline,
)
from mlsd.systems.harmful_content.evaluation_files import (
    FileEvaluation,
    compute_file_eval,
    report_file_eval,
)
from mlsd.systems.harmful_content.evaluation_labels import (
    LabelSources,
    compare_label_sources,
    report_label_sources,
)
from mlsd.systems.harmful_content.evaluation_online import OnlineTest, compute_online, report_online
from mlsd.systems.harmful_content.features import Prepared, report_data
from mlsd.systems.harmful_content.features_prepare import prepare_file, prepare_world
from mlsd.systems.harmful_content.model import (
    BASELINE,
    EARLY,
    LEX_MODEL,
    MODALITY,
    MODELS,
    SERVABLE,
    TEXT_ONLY,
    Reps,
    TrainedModels,
    cross_fitted_lex,
    lexical_logits,
    make_reps,
    report_models,
    text_branch,
    train_lineup,
)
from mlsd.systems.harmful_content.model_image import ImageCNN
from mlsd.systems.harmful_content.model_text import TfidfLogistic
from mlsd.systems.harmful_content.monitoring import (
    Monitoring,
    compute_monitoring,
    report_monitoring,
)
from mlsd.systems.harmful_content.serving_latency import (
    ServingReport,
    compute_serving,
    report_serving,
)
from mlsd.systems.harmful_content.system_analyses import (
    step_canary,
    step_eda,
    step_efficiency,
    step_tradeoffs,
)
from mlsd.systems.harmful_content.system_scale import step_scale
from mlsd.systems.harmful_content.system_summary import compute_summary
from mlsd.systems.harmful_content.world import HarmWorld
from mlsd.systems.harmful_content.world_config import EXPLICIT
from mlsd.text import make_encoder
from mlsd.tradeoffs import BudgetSweep
from mlsd.world import Scale

log = logging.getLogger(__name__)

TITLE = "Harmful Content Detection"
INTRO = (
    "A social platform must find posts that break its policies (hate, violence, sexual "
    "content, spam and scams, self-harm) among all new posts, before many people see them. "
    "Harm is rare, can sit in the text, the image or only in their combination, and hides "
    "behind misspellings and code words. The system fuses text, image, author and early "
    "engagement into one multi-task network with a head per class, removes what it is sure "
    "of, sends what it is unsure of to human reviewers, demotes the rest of the doubtful, and "
    "is judged online by how many views harmful posts still get."
)
FILE_SKIPS = (
    ("online", "a static file has no platform to run the enforcement loop in"),
    ("monitoring", "a static file has no days over which vocabulary could drift"),
    ("oracle", "a file has no true harm probabilities"),
    ("image and author models", "the file holds text only"),
)


@dataclass(frozen=True)
class WorldEvaluation:
    """Step 5 in the world: the line-up next to the oracle, and what each label source is worth."""

    offline: OfflineEvaluation
    labels: LabelSources

    def metrics(self) -> dict[str, Any]:
        return {**self.offline.metrics(), **self.labels.metrics()}


@dataclass
class HarmState:
    world: HarmWorld | None = None
    prepared: Prepared | None = None
    models: TrainedModels | None = None
    reps: dict[str, Reps] | None = None
    scores: dict[str, dict[str, np.ndarray]] | None = None
    offline: OfflineEvaluation | None = None
    files: FileEvaluation | None = None
    labels: LabelSources | None = None
    serving: ServingReport | None = None
    efficiency: EfficiencyTable | None = None
    tradeoffs: BudgetSweep | None = None
    online: OnlineTest | None = None
    canary: CanaryResult | None = None
    monitoring: Monitoring | None = None


def new_state(options: RunOptions) -> HarmState:
    return HarmState()


def encoder_kind(scale: Scale) -> str:
    """The tiny world (tests) uses the hashing stand-in; every other scale MiniLM."""
    return "hashing" if scale == Scale.TINY else "minilm"


def step_data(ctx: RunContext, state: HarmState) -> Prepared:
    opts = ctx.options
    if opts.scale == Scale.LARGE and not opts.data:
        from mlsd.runner import RunRefusedError

        raise RunRefusedError(
            "harmful-content does not build the large world yet (it keeps every post's image "
            "in memory); use --scale medium"
        )
    enc = make_encoder(encoder_kind(opts.scale))
    if opts.data:
        f = read_text_file(opts.data, opts.seed, opts.test_data)
        for step, why in FILE_SKIPS:
            ctx.skip(step, why)
        prepared = prepare_file(f, enc)
    else:
        state.world = HarmWorld(opts.scale, opts.seed)
        prepared = prepare_world(state.world, enc, ctx.progress)
    state.prepared = prepared
    report_data(ctx.blueprint, prepared, state.world)
    return prepared


def step_models(ctx: RunContext, state: HarmState) -> TrainedModels:
    p = require(state.prepared, "the prepared posts (step 3)")
    seed = ctx.options.seed
    threads = 1  # two threads on a shared 2-core machine thrash (16 s vs 1 s per fit)
    tiny = ctx.options.scale == Scale.TINY
    epochs = 8 if tiny else 20  # early stopping on a held-out tenth decides
    cnn = None
    cnn_seconds = 0.0
    if state.world is not None:
        rows = p.train[p.inputs.has_image[p.train]]
        t0 = time.perf_counter()
        ctx.progress("fitting image_cnn", 0, 1)
        cnn = ImageCNN(epochs=2 if tiny else 6, random_state=seed, num_threads=threads).fit(
            p.inputs.images[rows], p.Y[rows]
        )
        cnn_seconds = time.perf_counter() - t0
        names: tuple[str, ...] = MODELS
        blocklist: tuple[tuple[str, ...], ...] | None = tuple(tuple(EXPLICIT[c]) for c in CLASSES)
    else:
        names = TEXT_ONLY
        blocklist = None
    n_c = p.Y.shape[1]
    ctx.progress("fitting tfidf_lr and the text branch (and its cross-fitted logits)", 0, 1)
    train_texts = [p.inputs.texts[int(i)] for i in p.train]
    t0 = time.perf_counter()
    tfidf = TfidfLogistic().fit(train_texts, p.Y[p.train])
    tfidf_seconds = time.perf_counter() - t0
    t0 = time.perf_counter()
    lex_model = text_branch().fit(train_texts, p.Y[p.train])
    lex_seconds = time.perf_counter() - t0
    reps = {}
    for part in ("train", "val", "test", "drift"):
        idx = getattr(p, part)
        sub = p.inputs.take(idx)
        lex = (
            cross_fitted_lex(sub.texts, p.Y[idx], seed)
            if part == "train"
            else lexical_logits(lex_model, sub.texts)
        )
        reps[part] = make_reps(
            sub.texts, sub.text_emb, sub.images, sub.has_image, sub.meta, cnn, n_c, lex, ctx.engine
        )
    state.reps = reps
    result = train_lineup(
        reps["train"],
        p.Y[p.train],
        cnn,
        seed,
        blocklist,
        names,
        threads,
        cnn_seconds,
        ctx.progress,
        epochs,
        tfidf,
        lex_model,
    )
    result.train_seconds["tfidf_lr"] = tfidf_seconds
    result.train_seconds[LEX_MODEL] = lex_seconds
    state.models = result
    report_models(ctx.blueprint, result)
    return result


def _scores(state: HarmState) -> dict[str, dict[str, np.ndarray]]:
    models = require(state.models, "the trained models (step 4)")
    reps = require(state.reps, "the representations (step 4)")
    out: dict[str, dict[str, np.ndarray]] = {}
    for part in ("val", "test"):
        out[part] = {n: models.lineup.score(n, reps[part]) for n in models.lineup.models}
    return out


def step_evaluation(ctx: RunContext, state: HarmState) -> WorldEvaluation | FileEvaluation:
    p = require(state.prepared, "the prepared posts (step 3)")
    scores = _scores(state)
    state.scores = scores
    Yv, Yt = p.Y[p.val], p.Y[p.test]
    if state.world is None:
        f = compute_file_eval(p, scores)
        state.files = f
        report_file_eval(ctx.blueprint, f)
        return f
    world = state.world
    posts = world.posts.iloc[p.test]
    slices = {
        "obfuscated text": posts["obfuscated"].to_numpy(bool),
        "new accounts (< 30 days)": posts["account_age_days"].to_numpy() < 30,
        "memes (harm only in text + image)": (posts["channel"] == "meme").to_numpy(),
        "counter-speech (benign, quotes harm)": (posts["kind"] == "counter").to_numpy(),
    }
    ev = compute_offline(
        CLASSES,
        (Yv, scores["val"]),
        (Yt, scores["test"]),
        world.oracle(p.test),
        SERVABLE,
        BASELINE,
        slices,
    )
    state.offline = ev
    report_offline(
        ctx.blueprint,
        ev,
        {
            "Late vs early fusion (and each modality alone)": (
                *MODALITY,
                "late_fusion",
                "early_multi_task",
            ),
            "Multi-task vs one model per class; class imbalance": EARLY,
        },
    )
    epochs = 3 if ctx.options.scale == Scale.TINY else 12
    labels = compare_label_sources(world, p, require(state.reps, "reps"), ctx.options.seed, epochs)
    state.labels = labels
    report_label_sources(ctx.blueprint, labels)
    return WorldEvaluation(ev, labels)


def step_serving(ctx: RunContext, state: HarmState) -> ServingReport:
    p = require(state.prepared, "the prepared posts (step 3)")
    models = require(state.models, "the trained models (step 4)")
    scores = require(state.scores, "the scores (step 5)")
    if state.offline is not None:
        chosen, th = state.offline.chosen, state.offline.thresholds
    else:
        f = require(state.files, "the file evaluation (step 5)")
        chosen, th = f.chosen, f.thresholds
    result = compute_serving(
        ctx.artifacts_dir,
        p,
        models.lineup,
        chosen,
        th,
        state.world,
        scores["test"][chosen],
        ctx.settings.torch_threads,
        30 if ctx.options.scale == Scale.TINY else 200,
    )
    state.serving = result
    report_serving(ctx.blueprint, result)
    return result


def step_online(ctx: RunContext, state: HarmState) -> OnlineTest | None:
    if state.world is None:
        return None
    p = require(state.prepared, "the prepared posts (step 3)")
    ev = require(state.offline, "the offline evaluation (step 5)")
    scores = require(state.scores, "the scores (step 5)")
    lineup = require(state.models, "the trained models (step 4)").lineup
    drift = require(state.reps, "the representations (step 4)")["drift"]
    Yv = p.Y[p.val]
    # the experiment runs on live traffic after launch: the test days and the days after them
    # (when new vocabulary spreads, for both arms alike), for enough days to decide
    live = {
        n: np.concatenate([scores["test"][n], lineup.score(n, drift)])
        for n in (BASELINE, ev.chosen)
    }
    result = compute_online(
        state.world,
        np.concatenate([p.test, p.drift]),
        live,
        (Yv, scores["val"]),
        ev.chosen,
        BASELINE,
        ev.thresholds,
        ctx.options.seed,
    )
    state.online = result
    report_online(ctx.blueprint, result)
    return result


def step_monitoring(ctx: RunContext, state: HarmState) -> Monitoring | None:
    if state.world is None:
        return None
    p = require(state.prepared, "the prepared posts (step 3)")
    models = require(state.models, "the trained models (step 4)")
    ev = require(state.offline, "the offline evaluation (step 5)")
    reps = require(state.reps, "the representations (step 4)")
    result = compute_monitoring(state.world, p, models.lineup, ev.chosen, reps, ev.thresholds)
    state.monitoring = result
    report_monitoring(ctx.blueprint, result)
    return result


def step_summary(ctx: RunContext, state: HarmState) -> Summary:
    result = compute_summary(state, ctx.skipped)
    result.report(ctx.blueprint)
    return result


def steps(options: RunOptions) -> list[Step[HarmState]]:
    return [
        requirements_step(INTRO, REQUIREMENTS, FRAMING),
        Step("data", "3. Data preparation and features", step_data),
        Step("eda", "3. Exploratory data analysis", step_eda),
        Step("models", "4. Model development", step_models),
        Step("evaluation", "5. Offline evaluation", step_evaluation),
        Step("serving", "6. Serving", step_serving),
        Step("efficiency", "6. Efficiency: distillation, pruning, int8, ONNX", step_efficiency),
        Step("tradeoffs", "6. Trade-offs: latency budget × posts per call", step_tradeoffs),
        Step("online", "5. Online A/B test: the enforcement loop", step_online),
        Step("canary", "5-6. Canary rollout", step_canary),
        Step("monitoring", "7. Monitoring", step_monitoring),
        Step("scale", "Scale", step_scale),
        Step("summary", "Summary", step_summary),
    ]


PIPELINE: Pipeline[HarmState] = Pipeline(TITLE, new_state, steps)
