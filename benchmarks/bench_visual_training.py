"""Visual search: retrieval quality of the contrastive encoder against training steps and size.

Issue #16: the 1M-image world's mAP@10 was 0.003 after 200 training steps; "measure mAP against
training steps and embedding size at medium first". Measured on a *validation world* (its own
seed, so its products are none of a run's), between small and medium in size: the encoder
trains on the photos of the training products and is scored on the held-out products (their
catalogue photos are the index, fresh photos of them the queries), mAP@10 under exact search.
The defaults of ``VisualWorldConfig.for_scale`` are chosen from this table, never from a run's
test queries.

To keep it to minutes on a shared 2-core machine the grid is a cross, not a full product:
training steps at the default size, and sizes at the default step count; raw pixels + PCA is
the floor. A second part runs the real-file path (sizes chosen on validation, longer training,
grey augmentations) on a written 10-class grey 28×28 set against raw pixels. Run alone:
``python -m benchmarks.bench_visual_training [--quick] [--parts world,grey]
[--steps 100,300,1000] [--dims 16,32,64,128]``.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks import BenchResult, machine_info
from mlsd.rng import rng
from mlsd.systems.visual_search.datasets_grey import grey_garments
from mlsd.systems.visual_search.features import to_model_size
from mlsd.systems.visual_search.model import (
    CONTRASTIVE,
    CNNEncoder,
    ImageEncoder,
    PixelPCAEncoder,
)
from mlsd.systems.visual_search.model_selection import map_at_k
from mlsd.systems.visual_search.model_training import FILE_DIMS, compute_models, file_train_steps
from mlsd.systems.visual_search.world import (
    QUERY_PHOTO_BASE,
    VisualSearchWorld,
    VisualWorldConfig,
)
from mlsd.world import Scale

log = logging.getLogger(__name__)

VALIDATION_WORLD_SEED = 7_001  # no run uses it: a run's test products are never seen here
QUERIES_PER_PRODUCT = 2
BASE_DIM = 64
BASE_STEPS = 300


def study_world(quick: bool) -> VisualSearchWorld:
    """600 training and 1,000 held-out products of 10 photos (quick: 60 and 100)."""
    n_train, n_eval = (60, 100) if quick else (600, 1_000)
    cfg = VisualWorldConfig.for_scale(Scale.SMALL).with_(
        n_train_products=n_train, n_eval_products=n_eval, photos_per_product=10
    )
    return VisualSearchWorld(Scale.SMALL, VALIDATION_WORLD_SEED, cfg)


def grid(steps: list[int], dims: list[int]) -> list[tuple[int, int]]:
    """``(steps, dim)``: every step count at ``BASE_DIM``, every size at ``BASE_STEPS``."""
    base_steps = BASE_STEPS if BASE_STEPS in steps else steps[len(steps) // 2]
    base_dim = BASE_DIM if BASE_DIM in dims else dims[len(dims) // 2]
    cells = [(s, base_dim) for s in steps] + [(base_steps, d) for d in dims if d != base_dim]
    return list(dict.fromkeys(cells))


def grey_rows(
    quick: bool, log_to: Path | None = None
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The real-file path on a written 10-class grey 28×28 set (:mod:`.datasets_grey`): half the
    images train (each encoder's size chosen on a validation split of them, the CNN trained
    ``file_train_steps`` steps with the grey augmentations), the other half is held out, a
    quarter of it queries and the rest the index, as ``data_from_files`` splits a file run."""
    n_per_class, scale = (30, "tiny") if quick else (200, "small")
    raw, labels, _ = grey_garments(n_per_class, seed=VALIDATION_WORLD_SEED)
    images = np.stack([to_model_size(im, 32) for im in raw])
    order = rng(VALIDATION_WORLD_SEED, "bench/grey-split").permutation(len(labels))
    n_train = len(labels) // 2
    train, held = order[:n_train], order[n_train:]
    queries, index = held[: len(held) // 4], held[len(held) // 4 :]
    cfg = VisualWorldConfig.for_scale(Scale(scale))
    steps = 30 if quick else file_train_steps(n_train, cfg.batch_size, cfg.train_steps, scale)
    dims = FILE_DIMS[scale]
    t0 = time.perf_counter()
    result = compute_models(
        images[train],
        labels[train],
        seed=0,
        train_steps=steps,
        batch_size=cfg.batch_size,
        threads=1,
        dim=cfg.embedding_dim,
        choose_dims_among=dims,
    )
    fit_s = time.perf_counter() - t0
    rows: list[dict[str, Any]] = []
    for name, enc in result.encoders.items():
        choice = result.choices.get(name)
        row = {
            "model": f"grey: {name}",
            "steps": steps if name == CONTRASTIVE else 0,
            "dim": enc.dim,
            "validation_map_at_10": max(r["validation_map"] for r in choice.rows)
            if choice
            else None,
            "map_at_10": map_at_k(
                enc.encode(images[index]),
                labels[index],
                enc.encode(images[queries]),
                labels[queries],
            ),
        }
        rows.append(row)
        log.info("grey row %s", row)
        if log_to is not None:
            with log_to.open("a") as f:
                f.write(json.dumps(row) + "\n")
    params = {
        "grey_images": len(labels),
        "grey_train_images": n_train,
        "grey_queries": len(queries),
        "grey_index": len(index),
        "grey_batch_pairs": cfg.batch_size,
        "grey_fit_s": round(fit_s, 1),
    }
    return rows, params


def run(
    quick: bool = False,
    steps: list[int] | None = None,
    dims: list[int] | None = None,
    batch_size: int = 128,
    lr: float = 3e-3,
    log_to: Path | None = None,
    parts: tuple[str, ...] = ("world", "grey"),
) -> BenchResult:
    grey, grey_params = grey_rows(quick, log_to) if "grey" in parts else ([], {})
    if "world" not in parts:
        return BenchResult("visual_training", "grey set only", grey, {}, grey_params)
    steps = steps or ([20, 60] if quick else [100, 300, 1_000])
    dims = dims or ([16, 64] if quick else [16, 32, 64, 128])
    t0 = time.perf_counter()
    world = study_world(quick)
    tp, tj = world.catalog("train")
    train = world.photos(tp, tj)
    ip, ij = world.catalog("eval")
    index = world.photos(ip, ij)
    qp = np.repeat(world.product_ids("eval"), QUERIES_PER_PRODUCT)
    qj = QUERY_PHOTO_BASE + np.tile(np.arange(QUERIES_PER_PRODUCT), len(qp) // 2)
    queries = world.photos(qp, qj)
    render_s = time.perf_counter() - t0
    log.info(
        "rendered %d + %d + %d photos in %.1f s", len(train), len(index), len(queries), render_s
    )

    def score(enc: ImageEncoder, label: dict[str, Any]) -> dict[str, Any]:
        t1 = time.perf_counter()
        enc.fit(train, tp)
        fit_s = time.perf_counter() - t1
        m = map_at_k(enc.encode(index), ip, enc.encode(queries), qp)
        row = {**label, "train_s": round(fit_s, 1), "map_at_10": m}
        log.info("study row %s", row)
        if log_to is not None:
            with log_to.open("a") as f:
                f.write(json.dumps(row) + "\n")
        return row

    rows = [
        score(
            PixelPCAEncoder(n_components=BASE_DIM),
            {"model": "raw_pixels_pca", "steps": 0, "dim": BASE_DIM},
        )
    ]
    for s, d in grid(steps, dims):
        enc = CNNEncoder(dim=d, train_steps=s, batch_size=batch_size, lr=lr)
        rows.append(score(enc, {"model": "contrastive_cnn", "steps": s, "dim": d}))
    cnn = [r for r in rows if r["model"] == "contrastive_cnn"]
    by_model = {r["model"]: r["map_at_10"] for r in grey}
    best = max(cnn, key=lambda r: r["map_at_10"])
    return BenchResult(
        name="visual_training",
        description="visual search: validation mAP@10 against training steps and embedding size",
        rows=rows + grey,
        summary={
            "best_steps": best["steps"],
            "best_dim": best["dim"],
            "best_map_at_10": best["map_at_10"],
            "raw_pixels_map_at_10": rows[0]["map_at_10"],
            "grey_contrastive_map_at_10": by_model.get(f"grey: {CONTRASTIVE}"),
            "grey_raw_pixels_map_at_10": by_model.get("grey: raw_pixels_pca"),
        },
        params={
            "quick": quick,
            "world_seed": VALIDATION_WORLD_SEED,
            "train_images": len(train),
            "index_images": len(index),
            "queries": len(queries),
            "batch_pairs": batch_size,
            "lr": lr,
            "threads": 1,
            "render_s": round(render_s, 1),
            **grey_params,
        },
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--steps", default="")
    ap.add_argument("--dims", default="")
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--parts", default="world,grey", help="world, grey or both")
    ap.add_argument("--out", type=Path, default=None, help="JSON file for the result")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")

    def ints(s: str) -> list[int] | None:
        return [int(v) for v in s.split(",")] if s else None

    log_to = args.out.with_suffix(".rows.jsonl") if args.out else None
    parts = tuple(args.parts.split(","))
    result = run(args.quick, ints(args.steps), ints(args.dims), args.batch, args.lr, log_to, parts)
    text = json.dumps({**result.__dict__, "machine": machine_info()}, indent=2, default=str)
    if args.out is not None:
        args.out.write_text(text)
    log.info("%s", text)


if __name__ == "__main__":
    main()
