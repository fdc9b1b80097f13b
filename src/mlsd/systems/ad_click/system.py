"""The ad-click system, step by step in the chapter's order.

1-2 requirements and framing → 3 data (the world's impression log, or Criteo/libFM files) and
features (point-in-time, hashed crosses, negative downsampling) → 4 models side by side →
5 offline evaluation next to the oracle, continual learning → 6 serving (latency budget picks the
model) → 5b online A/B test in the world → 7 monitoring (drift, alerts, retrain trigger).
Each step writes its part of the blueprint and of ``metrics.json``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd

from mlsd import data as mdata
from mlsd.requirements import requirements_step
from mlsd.runner import RunContext, RunOptions, Step
from mlsd.systems.ad_click import FRAMING, REQUIREMENTS
from mlsd.systems.ad_click import deployment as dep
from mlsd.systems.ad_click import evaluation as ev
from mlsd.systems.ad_click.datasets import LoadedData, read_dataset
from mlsd.systems.ad_click.model import NEGATIVE_RATE, candidate_models
from mlsd.systems.ad_click.streaming import LogSummary, StreamingFeatures, iter_days, sample_rows
from mlsd.systems.ad_click.world import AdClickWorld

log = logging.getLogger(__name__)

TITLE = "Ad Click Prediction on Social Platforms"
BASELINE = "historical_ctr"
# Training rows kept in memory (a uniform sample of the training days; large only samples).
TRAIN_ROWS_CAP = 3_000_000


def steps(options: RunOptions) -> list[Step]:
    """The run, in the chapter's order."""
    return [
        requirements_step(INTRO, REQUIREMENTS, FRAMING),
        Step("data", "3. Data preparation", step_data),
        Step("features", "3. Feature engineering", step_features),
        Step("models", "4. Model development", step_models),
        Step("evaluation", "5. Offline evaluation", ev.step_offline_evaluation),
        Step("continual_learning", "5. Continual learning", ev.step_continual_learning),
        Step("serving", "6. Serving", dep.step_serving),
        Step("online", "5. Online A/B test", ev.step_online),
        Step("monitoring", "7. Monitoring", dep.step_monitoring),
        Step("summary", "Summary", dep.step_summary),
    ]


# ---- 1-2. requirements and framing ---------------------------------------------------------
INTRO = (
    "A social platform shows ads in its feed and is paid per click. For each feed request "
    "the system scores the candidate ads and ranks them by expected value, "
    "P(click) × bid. The requirements below drive every later decision: the latency budget "
    "picks the served model, the freshness requirement motivates continual learning."
)


# ---- 3. data ---------------------------------------------------------------------------------
def step_data(ctx: RunContext) -> None:
    if ctx.options.data:
        _data_from_files(ctx)
    else:
        _data_from_world(ctx)


def _data_from_world(ctx: RunContext) -> None:
    """Generate the log one day at a time, writing it to Parquet and summarising it on the way:
    memory stays bounded by one day at every scale."""
    opts = ctx.options
    world = AdClickWorld(opts.scale, opts.seed)
    data_dir = ctx.artifacts_dir / "data"
    data_dir.mkdir(exist_ok=True)
    summary = LogSummary()

    def days() -> Iterator[pd.DataFrame]:
        for day, chunk in enumerate(world.iter_log()):
            summary.add(chunk)
            ctx.progress(f"day {day + 1}/{world.n_days}", day + 1, world.n_days)
            yield chunk

    log_path = mdata.write_parquet(days(), data_dir / "impressions.parquet")
    mdata.write_parquet(world.users, data_dir / "users.parquet")
    mdata.write_parquet(world.ads, data_dir / "ads.parquet")
    ctx.state.update(world=world, log_path=log_path, rows_per_day=summary.rows_per_day())

    by_pos = summary.by_position()
    ctx.metrics["data"] = {
        "source": "world",
        "rows": summary.rows,
        "positive_rate": summary.positive_rate,
        "days": int(world.n_days),
        "users": len(world.users),
        "ads": len(world.ads),
        "ctr_by_position": {p: ctr for p, _, ctr in by_pos},
    }
    bp = ctx.blueprint
    bp.section("Data preparation")
    bp.text(
        f"The simulated platform logged **{summary.rows:,} impressions** over {world.n_days} days "
        f"for {len(world.users):,} users and {len(world.ads):,} ads; overall CTR "
        f"**{summary.positive_rate:.2%}**. The log is Parquet "
        "(`artifacts/data/impressions.parquet`), written and summarised one day at a time so "
        "memory stays bounded at any scale. It was produced by a "
        "logging policy (noisy relevance × bid), so it carries selection and position bias. "
        "The world knows each impression's true click probability, which gives the oracle."
    )
    bp.table(
        ["day", "impressions", "CTR", "active users", "ads shown", "ads seen first this day"],
        [
            [r["day"], r["impressions"], f"{r['ctr']:.2%}", r["users"], r["ads"], r["first_seen"]]
            for r in summary.days
        ],
        caption="Daily volume: new ads arrive every day (cold start); interests drift.",
    )
    bp.table(
        ["position", "impressions", "CTR"],
        [[p, n, f"{ctr:.2%}"] for p, n, ctr in by_pos],
        caption="Position bias: the same policy's ads are clicked less further down the feed.",
    )


def _data_from_files(ctx: RunContext) -> None:
    opts = ctx.options
    assert opts.data is not None
    loaded = read_dataset(opts.data)
    test = read_dataset(opts.test_data) if opts.test_data else None
    ctx.state.update(loaded=loaded, loaded_test=test)
    ctx.metrics["data"] = {
        "source": "file",
        "format": loaded.fmt,
        "path": loaded.source,
        "rows": loaded.n_rows,
        "positive_rate": loaded.positive_rate,
        "test_file": None
        if test is None
        else {"path": test.source, "rows": test.n_rows, "positive_rate": test.positive_rate},
    }
    for step, why in (
        ("continual_learning", "the file has no timestamps, so there are no days to replay"),
        ("online", "an A/B test needs a world to act in; a static file cannot answer it"),
        ("oracle", "the true click probabilities are known only in the simulated world"),
    ):
        ctx.skip(step, why)
    bp = ctx.blueprint
    bp.section("Data preparation")
    bp.text(
        f"Read **{loaded.n_rows:,} rows** from `{loaded.source}` ({loaded.fmt} layout); "
        f"positive rate **{loaded.positive_rate:.2%}**."
        + (f" Explicit test file `{test.source}` with {test.n_rows:,} rows." if test else "")
    )


# ---- 3. features and the split ---------------------------------------------------------------
def step_features(ctx: RunContext) -> None:
    t0 = time.perf_counter()
    if "loaded" in ctx.state:
        X, y, split, split_kind = _file_split(ctx)
    else:
        X, y = _streamed_features(ctx)
        split, split_kind = _time_split(ctx.state["meta"]["day"].to_numpy()), "time"
    seconds = time.perf_counter() - t0
    idx_train = split["train"]
    kept = mdata.downsample_negatives(y[idx_train], NEGATIVE_RATE, ctx.options.seed)
    ctx.state.update(X=X, y=y, split=split)

    rows = []
    for name, idx in split.items():
        rows.append([name, len(idx), float(y[idx].mean()) if len(idx) else float("nan")])
    dense = [c for c in X.columns if c.startswith("d_")]
    cats = [c for c in X.columns if c.startswith("c_")]
    ctx.metrics["features"] = {
        "dense": dense,
        "categorical": cats,
        "seconds": round(seconds, 3),
        "split": split_kind,
        "rows": {name: len(idx) for name, idx in split.items()},
        "negative_downsampling": {
            "rate": NEGATIVE_RATE,
            "train_rows_before": len(idx_train),
            "train_rows_after": len(kept),
            "positive_rate_after": float(y[idx_train][kept].mean()),
        },
    }
    if "sampling" in ctx.state:
        ctx.metrics["features"]["training_sample"] = ctx.state["sampling"]
    bp = ctx.blueprint
    bp.section("Feature engineering")
    if split_kind == "time":
        bp.text(
            "Every count and CTR feature of an impression at time t is computed from events "
            "strictly before t (counts carried from earlier days plus the same day's earlier "
            "events; tests prove it, and that it equals DuckDB window functions over the whole "
            "log), so no feature leaks the label or the future. The online store holds the same "
            "raw statistics as of the end of the log, and one function turns raw statistics into "
            "features in both paths, so training and serving cannot skew."
        )
    bp.text(
        f"{len(dense)} dense features (log counts, smoothed CTRs, fatigue, ad age, bid) and "
        f"{len(cats)} hashed categorical ones, crosses included: "
        + ", ".join(f"`{c}`" for c in cats)
        + "."
    )
    bp.table(
        ["split", "rows", "positive rate"],
        rows,
        caption=(
            "Split by time: the model never trains on the days it is tested on."
            if split_kind == "time"
            else f"Split: {split_kind}."
        ),
    )
    if "sampling" in ctx.state:
        smp = ctx.state["sampling"]
        bp.text(
            f"The features are computed streaming, one day at a time, from per-key counts carried "
            f"across days. Of the {smp['rows_total']:,} training-day impressions, "
            f"{smp['rows_kept']:,} are kept (a uniform, label-independent sample at rate "
            f"{smp['rate']:.3g}, at most {TRAIN_ROWS_CAP:,}, so calibration stays unbiased); the "
            "validation and test days are kept in full."
        )
    bp.text(
        f"Negative downsampling keeps every click and {NEGATIVE_RATE:.0%} of non-clicks: "
        f"{len(idx_train):,} → {len(kept):,} training rows, positive rate "
        f"{y[idx_train].mean():.2%} → {y[idx_train][kept].mean():.2%}. Predictions are "
        "re-calibrated with q = p / (p + (1 − p) / rate) (He et al., 2014)."
    )


def _streamed_features(ctx: RunContext) -> tuple[pd.DataFrame, np.ndarray]:
    """Features of the world's log, streamed day by day from its Parquet file.

    Keeps the validation and test days in full and a uniform sample of at most
    ``TRAIN_ROWS_CAP`` training rows; sets ``state["meta"]`` (``day``, ``p_true``, aligned with
    the returned X), ``state["sampling"]`` and ``state["streamer"]`` (whose counts are the online
    store's tables).
    """
    world: AdClickWorld = ctx.state["world"]
    rows_per_day: dict[int, int] = ctx.state["rows_per_day"]
    val_day = max(rows_per_day) - 2  # as _time_split
    n_train = sum(n for d, n in rows_per_day.items() if d < val_day)
    rate = min(1.0, TRAIN_ROWS_CAP / n_train) if n_train else 1.0
    streamer = StreamingFeatures(world.users, world.ads)
    frames: list[pd.DataFrame] = []
    labels: list[np.ndarray] = []
    metas: list[pd.DataFrame] = []
    for i, chunk in enumerate(iter_days(ctx.state["log_path"])):
        day = int(chunk["day"].iloc[0])
        ctx.progress(f"features, day {day}", i, len(rows_per_day))
        X_day = streamer.features(chunk)
        keep = sample_rows(len(chunk), rate if day < val_day else 1.0, ctx.options.seed, day)
        if len(keep) < len(chunk):
            X_day, chunk = X_day.iloc[keep], chunk.iloc[keep]
        frames.append(X_day.reset_index(drop=True))
        labels.append(chunk["click"].to_numpy(np.int64))
        metas.append(chunk[["day", "p_true"]].reset_index(drop=True))
    X = pd.concat(frames, ignore_index=True)
    del frames
    meta = pd.concat(metas, ignore_index=True)
    kept = int((meta["day"].to_numpy() < val_day).sum())
    ctx.state.update(meta=meta, streamer=streamer, sampling={
        "rows_total": n_train, "rows_kept": kept, "rate": rate, "cap": TRAIN_ROWS_CAP,
    })  # fmt: skip
    log.info("streamed features: %d rows kept (%d of %d training rows)", len(X), kept, n_train)
    return X, np.concatenate(labels)


def _time_split(days: np.ndarray) -> dict[str, np.ndarray]:
    """Train on the early days, validate on the next, test on the last two."""
    last = int(days.max())
    val_day, test_from = last - 2, last - 1
    return {
        "train": np.flatnonzero(days < val_day),
        "validation": np.flatnonzero(days == val_day),
        "test": np.flatnonzero(days >= test_from),
    }


def _file_split(ctx: RunContext) -> tuple[pd.DataFrame, np.ndarray, dict[str, np.ndarray], str]:
    loaded: LoadedData = ctx.state["loaded"]
    test: LoadedData | None = ctx.state["loaded_test"]
    seed = ctx.options.seed
    if test is None:
        tr, va, te = mdata.random_split(loaded.n_rows, (0.8, 0.1, 0.1), seed)
        return (
            loaded.X,
            loaded.y,
            {"train": tr, "validation": va, "test": te},
            f"random 80/10/10, seed {seed} (the file has no timestamps)",
        )
    X = pd.concat([loaded.X, test.X], ignore_index=True).fillna(0.0)
    y = np.concatenate([loaded.y, test.y])
    tr, va, _ = mdata.random_split(loaded.n_rows, (0.9, 0.1, 0.0), seed)
    te = np.arange(loaded.n_rows, loaded.n_rows + test.n_rows)
    return (
        X,
        y,
        {"train": tr, "validation": va, "test": te},
        f"train/validation random 90/10 (seed {seed}) of the data file; test = the test file",
    )


# ---- 4. models ------------------------------------------------------------------------------
def step_models(ctx: RunContext) -> None:
    from mlsd.models import NegativeDownsampled

    X: pd.DataFrame = ctx.state["X"]
    y: np.ndarray = ctx.state["y"]
    idx = ctx.state["split"]["train"]
    X_train, y_train = X.iloc[idx].reset_index(drop=True), y[idx]
    fitted: dict[str, Any] = {}
    info: dict[str, dict[str, Any]] = {}
    models = candidate_models(ctx.options.seed)
    for i, (name, model) in enumerate(models.items()):
        ctx.progress(f"training {name}", i, len(models))
        est = (
            model
            if name == BASELINE
            else NegativeDownsampled(model, rate=NEGATIVE_RATE, random_state=ctx.options.seed)
        )
        t0 = time.perf_counter()
        est.fit(X_train, y_train)
        seconds = time.perf_counter() - t0
        fitted[name] = est
        info[name] = {
            "train_seconds": round(seconds, 3),
            "class": type(model).__name__,
            "downsampled": name != BASELINE,
        }
        log.info("trained %s in %.1f s", name, seconds)
    ctx.progress("trained", len(models), len(models))
    ctx.state["models"] = fitted
    ctx.metrics["models"] = info
    ctx.metrics["baseline_model"] = BASELINE
    bp = ctx.blueprint
    bp.section("Model development")
    bp.text(
        "Four models under one estimator contract (fit / predict_proba / save / load), from the "
        "chapter's line-up: a no-ML baseline (the ad's smoothed historical CTR), logistic "
        "regression on hashed features and crosses, gradient-boosted trees (LightGBM), and a "
        "deep model with explicit feature crosses (DCN-v2, PyTorch). The learners train on "
        "the downsampled log and are re-calibrated."
    )
    bp.table(
        ["model", "class", "train seconds", "downsampled"],
        [[n, i["class"], i["train_seconds"], i["downsampled"]] for n, i in info.items()],
    )
