"""The video recommendation system, step by step in the chapter's order (book ch. 6).

1-2 requirements and framing → 3 data (the world's impression log, or MovieLens files) and
title embeddings → 4 the stages: two-tower + popular + co-watch candidates, the ranking models,
re-ranking → 5 offline evaluation of every stage next to the oracle, cold-start slices →
6 serving: ANN exact vs approximate, latency by stage, a large catalogue, batch precompute →
5 online: A/B test and interleaving in the world → batch staleness → summary.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from mlsd import data as mdata
from mlsd.requirements import requirements_step
from mlsd.runner import RunContext, RunOptions, RunRefusedError, Step
from mlsd.systems.video_rec import FRAMING, REQUIREMENTS
from mlsd.systems.video_rec import steps_eval as se
from mlsd.systems.video_rec.build import FitConfig, fit_recommender
from mlsd.systems.video_rec.features import Catalogue
from mlsd.systems.video_rec.online_report import step_online
from mlsd.systems.video_rec.titles import make_encoder
from mlsd.systems.video_rec.world import VideoRecWorld
from mlsd.systems.video_rec.world_entities import CATEGORIES
from mlsd.world import Scale

log = logging.getLogger(__name__)

TITLE = "Video Recommendation System"


def steps(options: RunOptions) -> list[Step]:
    if options.scale == Scale.LARGE and not options.data:
        raise RunRefusedError(
            "video-rec --scale large is not supported here: its logging policy would score "
            "~6e11 (user, video) pairs per simulated day (about a CPU-day each on 2 cores). "
            "Use --scale small or medium; their serving step measures p99 on a 1M-video "
            "catalogue."
        )
    if options.data:
        return [
            requirements_step(INTRO, REQUIREMENTS, FRAMING),
            Step("movielens", "3-5. MovieLens benchmark protocol", se.step_movielens),
        ]
    return [
        requirements_step(INTRO, REQUIREMENTS, FRAMING),
        Step("data", "3. Data preparation", step_data),
        Step("models", "4. Model development", step_models),
        Step("evaluation", "5. Offline evaluation", se.step_offline),
        Step("serving", "6. Serving", se.step_serving),
        Step("online", "5. Online A/B test and interleaving", step_online),
        Step("batch", "6. Batch precompute: staleness", se.step_staleness),
        Step("summary", "Summary", se.step_summary),
    ]


INTRO = (
    "A video platform recommends videos on the home page. The goal is engagement, measured "
    "as watch time; the catalogue and the user base are large and grow every day, so the "
    "design is multi-stage: cheap candidate generation narrows millions of videos to a few "
    "hundred, a heavier model ranks them, and re-ranking applies business rules."
)


def step_data(ctx: RunContext) -> None:
    opts = ctx.options
    world = VideoRecWorld(opts.scale, opts.seed)
    chunks = []
    for day, chunk in enumerate(world.iter_log()):
        chunks.append(chunk)
        ctx.progress(f"day {day + 1}/{world.n_days}", day + 1, world.n_days)
    log_df = pd.concat(chunks, ignore_index=True)
    data_dir = ctx.artifacts_dir / "data"
    data_dir.mkdir(exist_ok=True)
    mdata.write_parquet(log_df, data_dir / "impressions.parquet")
    mdata.write_parquet(world.videos, data_dir / "videos.parquet")
    mdata.write_parquet(world.users, data_dir / "users.parquet")
    ctx.state.update(world=world, log=log_df)
    by_pos = log_df.groupby("position")["click"].mean()
    by_day = log_df.groupby("day").agg(
        imps=("click", "size"), ctr=("click", "mean"), users=("user_id", "nunique")
    )
    clicked = log_df[log_df["click"] == 1]
    shown = log_df["video_id"].nunique()
    ctx.metrics["data"] = {
        "source": "world",
        "rows": len(log_df),
        "ctr": float(log_df["click"].mean()),
        "days": world.n_days,
        "users": len(world.users),
        "videos": len(world.videos),
        "videos_shown": int(shown),
        "mean_watch_fraction": float(clicked["watch_frac"].mean()),
        "ctr_by_position": {int(str(p)): float(c) for p, c in by_pos.items()},
    }
    bp = ctx.blueprint
    bp.section("Data preparation")
    bp.text(
        f"The simulated platform logged **{len(log_df):,} impressions** over {world.n_days} days "
        f"for {len(world.users):,} users and {len(world.videos):,} videos "
        f"({world.config.new_videos_per_day} new videos and {world.config.new_users_per_day} new "
        f"users a day); CTR **{log_df['click'].mean():.2%}**, mean watch fraction after a click "
        f"{clicked['watch_frac'].mean():.2f}. The logging policy (trending + the user's category "
        f"history + freshness, with noise) showed only {shown:,} distinct videos: the logs carry "
        "its selection bias. Logs are Parquet in `artifacts/data/`."
    )
    bp.table(
        ["day", "impressions", "CTR", "active users"],
        [[str(d), int(r.imps), f"{r.ctr:.2%}", int(r.users)] for d, r in by_day.iterrows()],
    )
    bp.table(
        ["position", "CTR"],
        [[str(p), f"{c:.2%}"] for p, c in by_pos.items()],
        caption="Position bias: the same policy's videos are clicked less further down.",
    )


def step_models(ctx: RunContext) -> None:
    world: VideoRecWorld = ctx.state["world"]
    log_df: pd.DataFrame = ctx.state["log"]
    encoder = make_encoder(ctx.state.get("title_encoder", "minilm"))
    cat = Catalogue(
        world.videos.copy(), encoder.encode(world.videos["title"].tolist()), list(CATEGORIES)
    )
    cfg = FitConfig(seed=ctx.options.seed)
    rec, rep = fit_recommender(cat, world.users.copy(), log_df, cfg)
    ctx.state.update(rec=rec, encoder=encoder, fit_config=cfg)
    rinfo = rep.info["ranking"]
    ctx.metrics["models"] = {
        "title_encoder": {
            "name": encoder.name,
            "titles_encoded": encoder.encoded,
            "seconds": encoder.seconds,
        },
        "seconds": rep.seconds,
        "two_tower": {"pairs": rep.info["two_tower_pairs"], "losses": rep.info["two_tower_losses"]},
        "ranking": {k: v for k, v in rinfo.items() if k != "features"},
    }
    bp = ctx.blueprint
    bp.section("Model development")
    bp.text(
        f"**Title embeddings.** {encoder.encoded:,} distinct titles encoded once with "
        f"{encoder.name} in {encoder.seconds:.1f} s and cached (titles repeat). "
        f"**Two-tower.** {rep.info['two_tower_pairs']:,} (user, clicked video) pairs; in-batch "
        "negatives with the logQ correction; id dropout so that both towers work for new users "
        "and new videos. Loss by epoch: "
        + ", ".join(f"{x:.3f}" for x in rep.info["two_tower_losses"])
        + ". **Other sources.** Trending (decayed clicks) and co-watch (item-to-item counts). "
        f"**Ranking.** LightGBM P(click) on {rinfo['train_rows']:,} impressions and LightGBM "
        "minutes-given-click on the clicked ones; score = P(click) × E[minutes | click]. "
        f"{len(rinfo['features'])} features: " + ", ".join(f"`{f}`" for f in rinfo["features"])
    )
    bp.table(
        ["ranking model, validated on the last logged day", "value", "oracle / baseline"],
        [
            ["click ROC-AUC", rinfo["click_auc"], "—"],
            ["click NCE (lower is better)", rinfo["click_nce"], rinfo.get("click_nce_oracle")],
            [
                "watch minutes MAE (given a click)",
                rinfo.get("watch_mae_min"),
                rinfo.get("watch_mae_baseline_min"),
            ],
        ],
        caption="NCE of the world's true probabilities is the oracle; the watch-time baseline "
        "predicts the mean minutes of the training clicks.",
    )
    bp.table(
        ["stage", "seconds"],
        [[k, v] for k, v in rep.seconds.items()],
        caption="Training time per stage.",
    )


def extend_to_today(ctx: RunContext) -> None:
    """Move the world to the day after the log: new videos get content-tower embeddings."""
    from mlsd.systems.video_rec.candidates import AnnIndex

    world: VideoRecWorld = ctx.state["world"]
    rec = ctx.state["rec"]
    encoder = ctx.state["encoder"]
    world.advance_day()
    rec.cat = Catalogue(
        world.videos.copy(), encoder.encode(world.videos["title"].tolist()), list(CATEGORIES)
    )
    rec.users = world.users.copy()
    rec.index = AnnIndex(ctx.state["fit_config"].index_kind).build(
        rec.tower.video_embeddings(rec.cat), seed=ctx.options.seed
    )
    rec.day = world.day
    ctx.state["eval_rng"] = np.random.default_rng(ctx.options.seed + 1)
