"""The video-search system, step by step in the chapter's order.

1-2 requirements and framing → 3 data (the platform's logs under its old text search) and
features (documents, embeddings) → 4 models (BM25, semantic, the dual encoder, the learned
fusion) → 5 offline evaluation on the test days next to the oracle, with slices → 6 serving
(the ranker chosen on the validation days, artifacts, per-stage latency) → 5 online A/B test
and interleaving in the world → 7 monitoring → the summary. ``--data beir:DIR`` runs the
text half on a real collection instead.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from mlsd.canary import CanaryResult
from mlsd.efficiency_table import EfficiencyTable
from mlsd.requirements import requirements_step
from mlsd.runner import Pipeline, RunContext, RunOptions, RunRefusedError, Step, Summary, require
from mlsd.systems.video_search import FRAMING, REQUIREMENTS
from mlsd.systems.video_search.evaluation import (
    OfflineEvaluation,
    compute_offline,
    report_offline,
)
from mlsd.systems.video_search.evaluation_beir import BeirResult, compute_beir, report_beir
from mlsd.systems.video_search.evaluation_online import OnlineTest, compute_online, report_online
from mlsd.systems.video_search.features import documents
from mlsd.systems.video_search.model import TextSearch
from mlsd.systems.video_search.model_fit import FitConfig, Fitted, fit_models
from mlsd.systems.video_search.monitoring import Monitoring, compute_monitoring, report_monitoring
from mlsd.systems.video_search.serving import METHODS
from mlsd.systems.video_search.serving_latency import ServingChoice, compute_serving, report_serving
from mlsd.systems.video_search.system_analyses import (
    step_canary,
    step_eda,
    step_efficiency,
    step_tradeoffs,
)
from mlsd.systems.video_search.system_scale import step_scale
from mlsd.systems.video_search.world import Log, VideoSearchWorld
from mlsd.systems.video_search.world_sharded import sharded_frames, sharded_log
from mlsd.text import CachedEncoder, make_encoder
from mlsd.tradeoffs import BudgetSweep
from mlsd.world import Scale

log = logging.getLogger(__name__)

TITLE = "YouTube Video Search"
INTRO = (
    "Users search a growing video catalogue by text. Text search (BM25 over titles, "
    "descriptions and tags, and semantic retrieval with sentence embeddings) misses the many "
    "videos whose text is poor, so a text-video dual encoder searches their frames; the two "
    "halves' candidates are fused by reciprocal ranks and by a learned ranker, then re-ranked "
    "(safety, duplicates). Everything is measured against the world's graded relevance."
)
FIT = {
    Scale.TINY: FitConfig(dual_epochs=4, trees=40, rated_queries=200, depth=30),
    Scale.SMALL: FitConfig(dual_epochs=6, trees=300, rated_queries=1500, depth=50),
}
# all-MiniLM-L6-v2 for the demo; the tiny world (tests) uses the hashing stand-in
TEXT_ENCODER = {Scale.TINY: "hashing", Scale.SMALL: "minilm"}
ONLINE_SEARCHES = {Scale.TINY: 600, Scale.SMALL: 6000}
LATENCY_REQUESTS = {Scale.TINY: 40, Scale.SMALL: 300}


@dataclass
class VideoSearchState:
    world: VideoSearchWorld | None = None
    catalogue: pd.DataFrame | None = None
    frames: np.ndarray | None = None
    log: Log | None = None
    encoder: CachedEncoder | None = None
    fitted: Fitted | None = None
    offline: OfflineEvaluation | None = None
    validation: dict[str, float] | None = None
    serving: ServingChoice | None = None
    efficiency: EfficiencyTable | None = None
    tradeoffs: BudgetSweep | None = None
    online: OnlineTest | None = None
    canary: CanaryResult | None = None
    monitoring: Monitoring | None = None


def new_state(options: RunOptions) -> VideoSearchState:
    return VideoSearchState()


def _scale(options: RunOptions) -> Scale:
    return Scale(options.scale)


# ---- 3. data ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class DataResult:
    videos: int
    days: int
    searches: int
    clicks: int
    ctr_at_10: float
    poor_text_share: float
    typo_share: float
    train_days: tuple[int, ...]
    val_days: tuple[int, ...]
    test_days: tuple[int, ...]

    def metrics(self) -> dict[str, Any]:
        return {"data": {"source": "world", **self.__dict__}}


def step_data(ctx: RunContext, state: VideoSearchState) -> DataResult:
    world = VideoSearchWorld(ctx.options.scale, ctx.options.seed)
    cfg = world.config
    v = world.videos
    catalogue = v[v["upload_day"] < cfg.n_days].reset_index(drop=True)
    policy_index = TextSearch().fit(documents(catalogue))
    upload = catalogue["upload_day"].to_numpy()

    def policy(texts: list[str], day: int, k: int) -> np.ndarray:  # the old text search
        out = np.full((len(texts), k), -1, np.int64)
        for i, t in enumerate(texts):
            rows, _ = policy_index.search(t, 4 * k)
            rows = rows[upload[rows] <= day][:k]
            out[i, : len(rows)] = rows
        return out

    lg = sharded_log(world, policy, range(cfg.n_days), ctx.engine)  # a day per shard
    state.world, state.catalogue, state.log = world, catalogue, lg
    state.frames = sharded_frames(world, catalogue["video_id"].to_numpy(), ctx.engine)
    state.encoder = make_encoder(TEXT_ENCODER[_scale(ctx.options)])
    imp = lg.impressions
    shown = imp[imp["video_id"] >= 0]
    tr = cfg.train_days
    result = DataResult(
        videos=len(catalogue),
        days=cfg.n_days,
        searches=len(lg.searches),
        clicks=int(imp["click"].sum()),
        ctr_at_10=float(shown["click"].mean()),
        poor_text_share=float((catalogue["text_quality"] != "good").mean()),
        typo_share=float(lg.searches["typo"].mean()),
        train_days=tuple(range(tr)),
        val_days=tuple(range(tr, tr + cfg.val_days)),
        test_days=tuple(range(tr + cfg.val_days, cfg.n_days)),
    )
    bp = ctx.blueprint
    bp.section("Data preparation")
    bp.text(
        f"A catalogue of {result.videos:,} videos over {cfg.n_topics} topics ({cfg.n_videos:,} "
        f"on day 0, {cfg.new_videos_per_day} uploaded a day), each with a title, description "
        f"and tags from its latent concepts (synonyms, misspellings; "
        f"{result.poor_text_share:.0%} with generic or misleading text) and {cfg.frames} "
        f"frames of {cfg.frame_size}x{cfg.frame_size} pixels rendered from the same content. "
        f"Over {result.days} days, {result.searches:,} searches ({result.typo_share:.0%} with "
        f"a typo) were ranked by the platform's old BM25 search; users clicked "
        f"{result.clicks:,} results (CTR {result.ctr_at_10:.2%} of the shown results), with "
        f"position bias. Days: training {list(result.train_days)}, validation "
        f"{list(result.val_days)}, test {list(result.test_days)}."
    )
    return result


def step_models(ctx: RunContext, state: VideoSearchState) -> Fitted:
    world = require(state.world, "the world (step 3, data)")
    lg = require(state.log, "the logs (step 3, data)")
    catalogue = require(state.catalogue, "the catalogue (step 3, data)")
    frames = require(state.frames, "the frames (step 3, data)")
    encoder = require(state.encoder, "the text encoder (step 3, data)")
    cfg = world.config
    s = lg.searches
    train = s[s["day"] < cfg.train_days]
    imp = lg.impressions
    clicked = imp[imp["click"] & imp["search_id"].isin(train["search_id"])]
    clicks = clicked.merge(train[["search_id", "text"]], on="search_id")
    clicks = clicks.rename(columns={"video_id": "row"})[["text", "row"]]
    result = fit_models(
        world,
        catalogue,
        frames,
        clicks,
        train,
        encoder,
        FIT[_scale(ctx.options)],
        ctx.options.seed,
        ctx.engine,  # --engine ray: the catalogue embedding as Ray tasks
    )
    state.fitted = result
    bp = ctx.blueprint
    bp.section("Model development")
    bp.text(
        f"**Text search**: BM25 (bm25s, Lucene's variant, k1 1.2, b 0.75) over normalised "
        f"tokens (NFKC, lower case, stop words, a light stemmer) of the title (twice), tags and "
        f"description. **Semantic text**: {encoder.name} sentence embeddings of the same "
        f"documents, exact inner-product search. **Visual**: a dual encoder (query tower: an "
        f"MLP on the query's sentence embedding; video tower: a CNN per frame, mean over the "
        f"frames) trained with in-batch InfoNCE on {result.train_pairs:,} (query, clicked "
        f"video) pairs of the training days; final epoch loss {result.dual_loss[-1]:.3f}. "
        f"**Learned fusion**: LightGBM LambdaRank on the union of the three top lists, "
        f"trained on raters' grades of {result.rated_rows:,} candidates of "
        f"{result.rated_queries:,} training-day queries (each seeing only videos uploaded by "
        "its day). Its features' share of the split gain:"
    )
    top = sorted(result.importances.items(), key=lambda kv: -kv[1])
    bp.table(["feature", "gain share"], [[k, round(v, 4)] for k, v in top])
    return result


# ---- 5. offline evaluation -------------------------------------------------------------------
def _judged(
    world: VideoSearchWorld, catalogue: pd.DataFrame, days: tuple[int, ...], n: int, purpose: str
) -> tuple[pd.DataFrame, list[dict[int, int]]]:
    per_day = max(1, 2 * n // max(len(days), 1))
    q = pd.concat([world.queries(d, per_day, purpose) for d in days], ignore_index=True)
    q = q.drop_duplicates("text").head(n).reset_index(drop=True)
    upload = catalogue["upload_day"].to_numpy()
    rows = np.arange(len(catalogue))
    grades = []
    for intent, day in zip(q["intent_id"], q["day"], strict=True):
        g = world.grades(int(intent), rows)
        keep = np.flatnonzero((g > 0) & (upload <= day))
        grades.append(dict(zip(keep.tolist(), g[keep].tolist(), strict=True)))
    return q, grades


def step_offline(ctx: RunContext, state: VideoSearchState) -> OfflineEvaluation:
    world = require(state.world, "the world (step 3, data)")
    catalogue = require(state.catalogue, "the catalogue (step 3, data)")
    fitted = require(state.fitted, "the models (step 4)")
    cfg = world.config
    s = fitted.searcher
    tr = cfg.train_days
    val_days = tuple(range(tr, tr + cfg.val_days))
    vq, vg = _judged(world, catalogue, val_days, cfg.eval_queries, "validation")
    vr = s.rank_many(vq["text"].tolist(), vq["day"].to_numpy(), METHODS[:-1], max_day=True)
    state.validation = {
        m: compute_offline(
            {m: r}, vg, {}, set(), np.full(len(catalogue), -1), np.zeros(len(catalogue), bool)
        ).scores[m]["ndcg@10"]
        for m, r in vr.items()
    }
    test_days = tuple(range(tr + cfg.val_days, cfg.n_days))
    q, grades = _judged(world, catalogue, test_days, cfg.eval_queries, "test")
    ranks = s.rank_many(q["text"].tolist(), q["day"].to_numpy(), METHODS, max_day=True)
    poor = set(np.flatnonzero(catalogue["text_quality"].to_numpy() != "good").tolist())
    result = compute_offline(
        ranks,
        grades,
        {"tail": q["tail"].to_numpy(), "typo": q["typo"].to_numpy()},
        poor,
        catalogue["duplicate_of"].to_numpy(),
        catalogue["unsafe"].to_numpy(),
    )
    state.offline = result
    ctx.blueprint.section("Offline evaluation")
    report_offline(ctx.blueprint, result)
    return result


# ---- 6. serving ------------------------------------------------------------------------------
def step_serving(ctx: RunContext, state: VideoSearchState) -> ServingChoice:
    world = require(state.world, "the world (step 3, data)")
    fitted = require(state.fitted, "the models (step 4)")
    validation = require(state.validation, "the validation scores (step 5)")
    n = LATENCY_REQUESTS.get(_scale(ctx.options), 100)
    result = compute_serving(
        fitted.searcher,
        validation,
        world,
        ctx.artifacts_dir,
        TEXT_ENCODER[_scale(ctx.options)],
        n,
        ctx.options.seed,
        REQUIREMENTS.latency_budget_ms,
    )
    state.serving = result
    report_serving(ctx.blueprint, result)
    return result


# ---- 5. online -------------------------------------------------------------------------------
def step_online(ctx: RunContext, state: VideoSearchState) -> OnlineTest:
    world = require(state.world, "the world (step 3, data)")
    fitted = require(state.fitted, "the models (step 4)")
    serving = require(state.serving, "the served ranker (step 6)")
    n = ONLINE_SEARCHES.get(_scale(ctx.options), 2000)
    result = compute_online(world, fitted.searcher, serving.chosen, n, ctx.options.seed)
    state.online = result
    ctx.blueprint.section("Online evaluation: A/B test and interleaving")
    report_online(ctx.blueprint, result)
    return result


# ---- 7. monitoring ---------------------------------------------------------------------------
def step_monitoring(ctx: RunContext, state: VideoSearchState) -> Monitoring:
    world = require(state.world, "the world (step 3, data)")
    lg = require(state.log, "the logs (step 3, data)")
    fitted = require(state.fitted, "the models (step 4)")
    result = compute_monitoring(world, lg, fitted.searcher)
    state.monitoring = result
    ctx.blueprint.section("Monitoring")
    report_monitoring(ctx.blueprint, result)
    return result


# ---- summary ---------------------------------------------------------------------------------
def step_summary(ctx: RunContext, state: VideoSearchState) -> Summary:
    offline = require(state.offline, "the offline evaluation (step 5)")
    sc = offline.scores
    lines = [
        "- nDCG@10 / MAP@100 on the test queries: "
        + "; ".join(f"{m} {v['ndcg@10']:.4f} / {v['map@100']:.4f}" for m, v in sc.items()),
    ]
    poor = offline.slices["poor_text"]
    lines.append(
        "- Poor-text videos (recall@100): "
        + "; ".join(
            f"{m} {poor[m]['recall@100']:.3f}"
            for m in ("bm25", "semantic", "visual", "final")
            if m in poor
        )
    )
    if state.serving is not None:
        sv = state.serving
        lines.append(
            f"- Served ranker: **{sv.chosen}** + re-ranking, {sv.because}; p99 "
            f"{sv.latency_ms['total']['p99']:.1f} ms in-process on {sv.catalogue:,} videos."
        )
    if state.online is not None:
        o = state.online
        lines.append(f"- A/B test: **{o.ab.decision}**: {o.ab.reason}")
        lines.append(
            f"- Searches to a significant decision: A/B {o.searches_needed.get('ab_ctr')}, "
            f"interleaving {o.searches_needed.get('interleaving')} (sign test), "
            f"{o.searches_needed.get('interleaving_credit')} (paired click credit)."
        )
    if state.monitoring is not None:
        lines.append(
            f"- Monitoring: {len(state.monitoring.alerts)} alerts; {state.monitoring.reason}."
        )
    result = Summary.of(lines, ctx.skipped)
    result.report(ctx.blueprint)
    return result


# ---- a real collection -----------------------------------------------------------------------
def step_beir(ctx: RunContext, state: VideoSearchState) -> BeirResult:
    encoder = make_encoder(TEXT_ENCODER.get(_scale(ctx.options), "minilm"))
    result = compute_beir(ctx.options.data or "", encoder, ctx.options.seed, FIT[Scale.SMALL].trees)
    ctx.skip("visual", "a text collection has no frames: the visual half cannot run")
    for step, why in BEIR_SKIPS:
        ctx.skip(step, why)
    ctx.blueprint.section("The collection's files")
    report_beir(ctx.blueprint, result)
    return result


BEIR_SKIPS = (
    ("serving", "the served searcher needs the world's catalogue with frames"),
    ("online", "a file cannot answer an A/B test"),
    ("monitoring", "a file has no days to monitor"),
)


def steps(options: RunOptions) -> list[Step[VideoSearchState]]:
    if options.test_data:
        raise RunRefusedError("video-search --test-data: the beir layout holds its own qrels")
    if options.data:
        return [
            requirements_step(INTRO, REQUIREMENTS, FRAMING),
            Step("beir", "3-5. The collection's files", step_beir),
        ]
    if Scale(options.scale) not in FIT:
        raise RunRefusedError(
            f"video-search --scale {options.scale} is not supported yet: the catalogue's frames "
            "are rendered and embedded in memory and BM25 is rebuilt on every ingest; use "
            "--scale tiny or small"
        )
    return [
        requirements_step(INTRO, REQUIREMENTS, FRAMING),
        Step("data", "3. Data preparation", step_data),
        Step("eda", "3. Exploratory data analysis", step_eda),
        Step("models", "4. Model development", step_models),
        Step("evaluation", "5. Offline evaluation", step_offline),
        Step("serving", "6. Serving", step_serving),
        Step("efficiency", "6. Efficiency: distillation, pruning, int8, ONNX", step_efficiency),
        Step("tradeoffs", "6. Trade-offs: latency budget × candidates", step_tradeoffs),
        Step("online", "5. Online A/B test and interleaving", step_online),
        Step("canary", "5-6. Canary rollout", step_canary),
        Step("monitoring", "7. Monitoring", step_monitoring),
        Step("scale", "Scale", step_scale),
        Step("summary", "Summary", step_summary),
    ]


PIPELINE: Pipeline[VideoSearchState] = Pipeline(TITLE, new_state, steps)
