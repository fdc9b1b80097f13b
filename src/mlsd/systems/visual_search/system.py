"""The visual-search system, step by step in the chapter's order (book ch. 2).

1-2 requirements and framing → 3 data (the world's product photos, or an image folder / IDX
files, split so no image is both trained on and scored) → 4 encoders side by side (raw pixels,
colour histograms, an untrained CNN, the contrastive CNN) → 5 offline evaluation → 6 the index
(exact vs approximate, incremental adds, near-duplicates) and serving (embedding vs search
latency) → 5b online A/B test in the world → summary.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import numpy as np

from mlsd.requirements import requirements_step
from mlsd.runner import RunContext, RunOptions, Step
from mlsd.systems.visual_search import FRAMING, REQUIREMENTS
from mlsd.systems.visual_search import deployment as dep
from mlsd.systems.visual_search.catalog import step_index
from mlsd.systems.visual_search.datasets import read_dataset
from mlsd.systems.visual_search.evaluation import RetrievalSet, step_offline_evaluation
from mlsd.systems.visual_search.model import candidate_encoders
from mlsd.systems.visual_search.online import step_online
from mlsd.systems.visual_search.streaming import WorldPhotos
from mlsd.systems.visual_search.world import QUERY_PHOTO_BASE, VisualSearchWorld, VisualWorldConfig
from mlsd.world import Scale

log = logging.getLogger(__name__)

TITLE = "Visual Search System"
QUERIES_PER_PRODUCT = 2
FILE_TRAIN_SHARE = 0.5  # of the images in --data: the rest is held out for queries and index
FILE_QUERIES = {"tiny": 100, "small": 300, "medium": 1_000, "large": 2_000}
# one thread: on a shared 2-core machine two threads were 5x slower per step
TRAIN_THREADS = {"tiny": 1, "small": 1, "medium": 2, "large": 2}
MAX_TRAIN_PRODUCTS = 2_000  # the encoder trains on the photos of at most this many products
MAX_QUERY_PRODUCTS = 2_000  # offline queries: photos of at most this many held-out products


def steps(options: RunOptions) -> list[Step]:
    """The run, in the chapter's order."""
    return [
        requirements_step(INTRO, REQUIREMENTS, FRAMING),
        Step("data", "3. Data preparation", step_data),
        Step("models", "4. Model development", step_models),
        Step("evaluation", "5. Offline evaluation", step_offline_evaluation),
        Step("index", "6. Indexing", step_index),
        Step("serving", "6. Serving", dep.step_serving),
        Step("online", "5. Online A/B test", step_online),
        Step("summary", "Summary", dep.step_summary),
    ]


# ---- 1-2. requirements and framing ---------------------------------------------------------
INTRO = (
    "A Pinterest-like platform lets users search with an image: upload a photo, get the "
    "catalogue images that look most like it, the same product first. The system has two "
    "halves: an encoder that turns images into embeddings, trained so photos of one product "
    "lie close together, and an index that finds nearest neighbours among millions of "
    "embeddings within the latency budget."
)


# ---- 3. data ---------------------------------------------------------------------------------
def world_config(options: RunOptions) -> VisualWorldConfig:
    return VisualWorldConfig.for_scale(options.scale)


def step_data(ctx: RunContext) -> None:
    t0 = time.perf_counter()
    if ctx.options.data:
        _data_from_files(ctx)
    else:
        _data_from_world(ctx)
    ctx.metrics["data"]["seconds"] = round(time.perf_counter() - t0, 3)


def _data_from_world(ctx: RunContext) -> None:
    world = VisualSearchWorld(ctx.options.scale, ctx.options.seed, world_config(ctx.options))
    seed = ctx.options.seed
    train_products = _bounded_sample(world.product_ids("train"), MAX_TRAIN_PRODUCTS, seed + 1)
    k = world.config.photos_per_product
    tp, tj = np.repeat(train_products, k), np.tile(np.arange(k), len(train_products))
    ep, ej = world.catalog("eval")
    ctx.progress("rendering training photos", 0, 2)
    train = np.concatenate(list(world.iter_photos(tp, tj)))
    # the catalogue is not rendered here: it streams, chunk by chunk, wherever it is embedded
    index = WorldPhotos(world, ep, ej)
    query_products = _bounded_sample(world.product_ids("eval"), MAX_QUERY_PRODUCTS, seed + 2)
    qp = np.repeat(query_products, QUERIES_PER_PRODUCT)
    qj = QUERY_PHOTO_BASE + np.tile(np.arange(QUERIES_PER_PRODUCT), len(qp) // QUERIES_PER_PRODUCT)
    ctx.progress("rendering query photos", 1, 2)
    queries = world.photos(qp, qj)
    rs = RetrievalSet(train, tp, index, ep, queries, qp, world.category_of(ep),
                      world.category_of(qp))  # fmt: skip
    ctx.state.update(world=world, retrieval=rs, image_size=world.image_size)
    cfg = world.config
    ctx.metrics["data"] = {
        "source": "world", "image_size": cfg.image_size, "categories": cfg.n_categories,
        "train_products": cfg.n_train_products, "eval_products": cfg.n_eval_products,
        "photos_per_product": cfg.photos_per_product, "train_images": len(train),
        "index_images": len(index), "query_images": len(queries),
    }  # fmt: skip
    bp = ctx.blueprint
    bp.section("Data preparation")
    bp.text(
        f"A procedural catalogue of {cfg.n_train_products + cfg.n_eval_products:,} products in "
        f"{cfg.n_categories} categories (shape families); each has its own two colours from a "
        "10-colour palette (so colour alone is ambiguous), a pattern and a printed mark. Every "
        "photo changes viewpoint, scale, position, crop, background clutter, lighting and "
        f"noise; images are {cfg.image_size}×{cfg.image_size} RGB. Products are split by seed: "
        f"the encoder trains on the photos of {cfg.n_train_products:,} products; the other "
        f"{cfg.n_eval_products:,} products' {len(index):,} catalogue photos form the index and "
        f"{len(queries):,} fresh user photos of {len(query_products):,} of them "
        f"({'all' if len(query_products) == cfg.n_eval_products else 'a seeded sample'}) the "
        "queries."
        + ("" if len(train_products) == cfg.n_train_products else
           f" The encoder trains on a seeded sample of {len(train_products):,} training "
           "products.")
        + " The catalogue is never held as pixels: it is rendered and embedded in chunks."
    )  # fmt: skip
    bp.table(["split", "products", "images", "used for"], [
        ["train", len(train_products), len(train), "contrastive pairs; PCA of the baselines"],
        ["index", cfg.n_eval_products, len(index), "the searchable catalogue"],
        ["query", len(query_products), len(queries), "user uploads (offline evaluation)"],
    ])  # fmt: skip


def _bounded_sample(ids: np.ndarray, limit: int, seed: int) -> np.ndarray:
    """All of ``ids`` when there are at most ``limit``, else a seeded sample (sorted)."""
    if len(ids) <= limit:
        return ids
    return np.sort(np.random.default_rng(seed).choice(ids, size=limit, replace=False))


def _data_from_files(ctx: RunContext) -> None:
    opts = ctx.options
    assert opts.data is not None
    size = world_config(opts).image_size
    data = read_dataset(opts.data, size)
    rng = np.random.default_rng(opts.seed)
    perm = rng.permutation(data.n_images)
    n_train = round(FILE_TRAIN_SHARE * data.n_images)
    train_idx, held = perm[:n_train], perm[n_train:]
    n_q = min(FILE_QUERIES[str(opts.scale)], len(held) // 4)
    q_idx, i_idx = held[:n_q], held[n_q:]
    y = data.labels
    rs = RetrievalSet(data.images[train_idx], y[train_idx], data.images[i_idx], y[i_idx],
                      data.images[q_idx], y[q_idx])  # fmt: skip
    ctx.state.update(retrieval=rs, image_size=size, class_names=data.class_names)
    ctx.metrics["data"] = {
        "source": "file", "format": data.fmt, "path": data.source, "images": data.n_images,
        "classes": len(data.class_names), "image_size": size, "train_images": len(train_idx),
        "index_images": len(i_idx), "query_images": len(q_idx),
        "split": f"random by seed {opts.seed}: {FILE_TRAIN_SHARE:.0%} train, the rest held out "
                 "(queries + index)",
    }  # fmt: skip
    ctx.skip("online", "an A/B test needs simulated users to act in the world; files cannot")
    bp = ctx.blueprint
    bp.section("Data preparation")
    bp.text(
        f"Read **{data.n_images:,} images** of {len(data.class_names)} classes from "
        f"`{data.source}` ({data.fmt} layout), resized to {size}×{size} RGB. Split by seed "
        f"{opts.seed}: {len(train_idx):,} images train the encoder; of the held-out rest, "
        f"{len(q_idx):,} are queries and {len(i_idx):,} the index. No image is both trained "
        "on and scored. The class is the relevance label (no partial grades)."
    )


# ---- 4. models ------------------------------------------------------------------------------
def step_models(ctx: RunContext) -> None:
    rs: RetrievalSet = ctx.state["retrieval"]
    cfg = world_config(ctx.options)
    threads = TRAIN_THREADS[str(ctx.options.scale)]
    encoders = candidate_encoders(ctx.options.seed, cfg.train_steps, cfg.batch_size, threads)
    info: dict[str, dict[str, Any]] = {}
    for i, (name, enc) in enumerate(encoders.items()):
        ctx.progress(f"training {name}", i, len(encoders))
        t0 = time.perf_counter()
        enc.fit(rs.train_images, rs.train_groups)
        info[name] = {"class": type(enc).__name__, "train_seconds": round(time.perf_counter() - t0,
                                                                          3)}  # fmt: skip
        log.info("trained %s in %.1f s", name, info[name]["train_seconds"])
    history: list[float] = encoders["contrastive_cnn"].history_  # type: ignore[attr-defined]
    ctx.state["encoders"] = encoders
    ctx.metrics["models"] = info
    ctx.metrics["contrastive_training"] = {
        "steps": cfg.train_steps, "batch_pairs": cfg.batch_size, "threads": threads,
        "loss_first": float(np.mean(history[:10])), "loss_last": float(np.mean(history[-10:])),
        "loss_chance": float(np.log(min(cfg.batch_size, len(rs.train_images)))),
    }  # fmt: skip
    bp = ctx.blueprint
    bp.section("Model development")
    tr = ctx.metrics["contrastive_training"]
    bp.text(
        "Four encoders under one contract (fit on the training images and their product, encode "
        "to L2-normalised vectors): raw pixels + PCA, a joint RGB colour histogram + PCA, the "
        "CNN with random weights, and the same CNN trained contrastively. The CNN has four 3×3 "
        "conv layers (BatchNorm, ReLU, two max-pools), global average pooling and a linear "
        "head to 64 dimensions. Training: InfoNCE with in-batch negatives; a positive pair is "
        "two different photos of one product, each augmented again (crop-resize, rotation, "
        f"flip, brightness/colour jitter, noise); temperature 0.1, Adam, cosine decay, "
        f"{tr['steps']} steps of {tr['batch_pairs']} pairs on {tr['threads']} CPU thread(s). "
        f"The loss fell from {tr['loss_first']:.3f} to {tr['loss_last']:.3f} (chance: "
        f"ln {tr['batch_pairs']} = {tr['loss_chance']:.3f})."
    )
    bp.table(["model", "class", "train seconds"],
             [[n, r["class"], r["train_seconds"]] for n, r in info.items()])  # fmt: skip
    _loss_figure(ctx, history)


def _loss_figure(ctx: RunContext, history: list[float]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3))
    ax.plot(np.arange(1, len(history) + 1), history, lw=1)
    ax.set_xlabel("step")
    ax.set_ylabel("InfoNCE loss")
    ax.grid(alpha=0.3)
    ctx.blueprint.figure(fig, "contrastive_loss", "Contrastive training loss per step.")


def tiny_options(out: Path, seed: int = 0) -> RunOptions:
    """Options of a tiny world run (tests, benchmarks)."""
    return RunOptions(system="visual-search", scale=Scale.TINY, seed=seed, out=out)
