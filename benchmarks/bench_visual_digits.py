"""Visual search on a real public image set: the UCI handwritten digits, in both file layouts.

Issue #16 item 3: "the learned image encoder beats raw pixels on real IDX and image-folder
sets". The one real image set on this machine is the one scikit-learn ships offline,
``sklearn.datasets.load_digits`` (UCI optdigits: 1,797 handwritten digits, 8×8 pixels, 17 grey
levels 0..16, 10 classes). This benchmark writes it, under a temporary directory, in the two
layouts ``mlsd run visual-search --data`` reads:

* ``idx:DIR``: MNIST's IDX files, ``train-images-idx3-ubyte`` / ``train-labels-idx1-ubyte``
  (plain) and ``t10k-*-ubyte.gz`` (gzipped, as MNIST ships them), pixels scaled to 0..255, the
  train/test files split by class (stratified) from the named stream ``bench/digits-split``;
* ``imagefolder:DIR``: one sub-folder per class of binary ``.pgm`` files at the set's own
  depth (``maxval`` 16: its 17 grey levels), every ``PNG_EVERY``-th image a ``.png`` instead.

Each layout then goes through what ``mlsd run visual-search --data SPEC --scale SCALE`` runs for
steps 3-5, in-process: :func:`data_from_files` (read, resize to the model's size, the seeded
split into training images, held-out queries and index), :func:`train_models` (every encoder;
each learned or PCA size chosen on a validation split of the training images only, the CNN
trained the file run's steps) and :func:`compute_offline_evaluation` (exact search, k = 10, the
class as relevance). The table is every encoder's retrieval metrics on the held-out queries,
with its size, training time and the machine's load. Run alone:
``python -m benchmarks.bench_visual_digits [--quick] [--out FILE]``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from benchmarks import BenchResult, machine_info
from mlsd.rng import rng
from mlsd.systems.visual_search.datasets_grey import write_idx
from mlsd.systems.visual_search.datasets_split import data_from_files
from mlsd.systems.visual_search.evaluation import compute_offline_evaluation
from mlsd.systems.visual_search.model import CONTRASTIVE
from mlsd.systems.visual_search.model_training import train_models
from mlsd.systems.visual_search.system import TRAIN_THREADS
from mlsd.systems.visual_search.world import VisualWorldConfig
from mlsd.world import Scale

log = logging.getLogger(__name__)

SEED = 0
DIGIT_LEVELS = 16  # optdigits' pixels are counts 0..16 (17 grey levels)
TEST_SHARE = 1 / 7  # MNIST's 10k of 70k images in the test files
PNG_EVERY = 10  # every 10th image of the folder is a .png, the rest .pgm
LAYOUTS = ("idx", "imagefolder")
METRICS = ("map", "mrr", "recall", "precision", "ndcg", "hit1")
BASELINE = "raw_pixels_pca"


def digits() -> tuple[np.ndarray, np.ndarray]:
    """``(levels (N, 8, 8) uint8 in 0..16, labels (N,) uint8)``: scikit-learn's offline copy."""
    from sklearn.datasets import load_digits

    d = load_digits()
    return d.images.astype(np.uint8), d.target.astype(np.uint8)


def to_bytes(levels: np.ndarray, maxval: int = DIGIT_LEVELS) -> np.ndarray:
    """Grey levels ``0..maxval`` as 0..255 bytes, rounded half up (as a PGM reader scales)."""
    return np.floor(levels.astype(np.float64) * 255.0 / maxval + 0.5).astype(np.uint8)


def stratified_split(labels: np.ndarray, seed: int, test_share: float = TEST_SHARE) -> np.ndarray:
    """A boolean test mask: ``test_share`` of every class (rounded), drawn from the named
    stream ``bench/digits-split`` of ``seed``."""
    gen = rng(seed, "bench/digits-split")
    test = np.zeros(len(labels), dtype=bool)
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        test[gen.permutation(members)[: round(test_share * len(members))]] = True
    return test


def write_digits_idx(directory: Path, levels: np.ndarray, labels: np.ndarray, seed: int) -> Path:
    """The IDX layout: ``train-*-ubyte`` plain and ``t10k-*-ubyte.gz`` gzipped; return the dir."""
    test = stratified_split(labels, seed)
    images = to_bytes(levels)
    write_idx(directory, images[~test], labels[~test], prefix="train", compress=False)
    write_idx(directory, images[test], labels[test], prefix="t10k")
    return directory


def write_pgm(path: Path, levels: np.ndarray, maxval: int = DIGIT_LEVELS) -> None:
    """A binary (P5) PGM of ``levels`` (uint8, at most ``maxval``) with that ``maxval``."""
    h, w = levels.shape
    path.write_bytes(f"P5\n{w} {h}\n{maxval}\n".encode("ascii") + levels.astype(np.uint8).tobytes())


def write_digits_folder(root: Path, levels: np.ndarray, labels: np.ndarray) -> Path:
    """The image-folder layout: ``root/<digit>/<nnnn>.pgm`` (every ``PNG_EVERY``-th a .png)."""
    for i, (im, y) in enumerate(zip(levels, labels, strict=True)):
        folder = root / str(int(y))
        folder.mkdir(parents=True, exist_ok=True)
        if i % PNG_EVERY == 0:
            Image.fromarray(to_bytes(im), mode="L").save(folder / f"{i:04d}.png")
        else:
            write_pgm(folder / f"{i:04d}.pgm", im)
    return root


def run_layout(spec: str, scale: Scale, seed: int) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Steps 3-5 of a file run on ``spec``: one row per encoder, and the layout's figures."""
    cfg = VisualWorldConfig.for_scale(scale)
    load_before = os.getloadavg()[0]
    t0 = time.perf_counter()
    data = data_from_files(spec, cfg.image_size, seed, str(scale))
    models = train_models(data, cfg, seed=seed, scale=str(scale), threads=TRAIN_THREADS[str(scale)])
    fit_s = time.perf_counter() - t0
    offline = compute_offline_evaluation(data.retrieval, models.encoders)
    layout = spec.partition(":")[0]
    rows: list[dict[str, Any]] = []
    for name, scores in offline.scores.items():
        choice = models.choices.get(name)
        rows.append(
            {
                "layout": layout,
                "model": name,
                "dim": scores["dim"],
                "steps": models.steps if name == CONTRASTIVE else 0,
                **{f"{m}_at_10" if m not in ("mrr", "hit1") else m: scores[m] for m in METRICS},
                "validation_map_at_10": max(r["validation_map"] for r in choice.rows)
                if choice
                else None,
                "train_s": round(models.train_seconds[name], 1),
                "choice_s": round(sum(r["seconds"] for r in choice.rows), 1) if choice else 0.0,
            }
        )
    load_after = os.getloadavg()[0]
    by = {r["model"]: r["map_at_10"] for r in rows}
    figures = {
        "layout": layout,
        "images": data.figures["images"],
        "train_images": data.figures["train_images"],
        "query_images": data.figures["query_images"],
        "index_images": data.figures["index_images"],
        "image_size": cfg.image_size,
        "contrastive": models.training(),
        "chosen": {n: c.chosen for n, c in models.choices.items()},
        "fit_s": round(fit_s, 1),
        "load_1min": [round(load_before, 2), round(load_after, 2)],
        "contrastive_map_at_10": by[CONTRASTIVE],
        "raw_pixels_map_at_10": by[BASELINE],
        "beats_raw_pixels": by[CONTRASTIVE] > by[BASELINE],
    }
    for row in rows:
        log.info("%s", row)
    return rows, figures


def run(quick: bool = False, seed: int = SEED, keep: Path | None = None) -> BenchResult:
    """Write the digits in both layouts (under ``keep`` or a temporary directory) and run each;
    ``quick``: the tiny scale's smoke (fewer sizes to choose from, fewer steps)."""
    scale = Scale.TINY if quick else Scale.SMALL
    levels, labels = digits()
    rows: list[dict[str, Any]] = []
    summary: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="mlsd-digits-") as tmp:
        root = keep or Path(tmp)
        specs = {
            "idx": f"idx:{write_digits_idx(root / 'idx', levels, labels, seed)}",
            "imagefolder": f"imagefolder:{write_digits_folder(root / 'folder', levels, labels)}",
        }
        for layout in LAYOUTS:
            layout_rows, figures = run_layout(specs[layout], scale, seed)
            rows += layout_rows
            summary[layout] = figures
    return BenchResult(
        name="visual_digits",
        description="visual search on UCI digits (IDX and .pgm/.png folder): learned vs pixels",
        rows=rows,
        summary=summary,
        params={
            "quick": quick,
            "scale": str(scale),
            "seed": seed,
            "dataset": "sklearn.datasets.load_digits (UCI optdigits), 1,797 8x8 images",
            "idx_test_share": round(TEST_SHARE, 4),
            "png_every": PNG_EVERY,
            "threads": TRAIN_THREADS[str(scale)],
            "cpu_count": os.cpu_count(),
        },
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--seed", type=int, default=SEED)
    ap.add_argument("--keep", type=Path, default=None, help="write the files here (kept)")
    ap.add_argument("--out", type=Path, default=None, help="JSON file for the result")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    result = run(args.quick, args.seed, args.keep)
    text = json.dumps({**result.__dict__, "machine": machine_info()}, indent=2, default=str)
    if args.out is not None:
        args.out.write_text(text)
    log.info("%s", text)


if __name__ == "__main__":
    main()
