"""Step 4 for visual search: train the line-up of encoders (book ch. 2, "Model development").

Every encoder of :func:`.model.candidate_encoders` is fitted on the training images. On real
image files (class labels, no world to tune on beforehand) the embedding size of each learned
or PCA-reduced encoder is first chosen on a validation split of the training images
(:mod:`.model_selection`), every model its own choice, and the contrastive CNN trains longer
than on the world (:func:`file_train_steps`): a real set's classes are broad, and a small set
is cheap to pass over many times.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import numpy as np

from mlsd.report import Blueprint
from mlsd.runner import ProgressFn
from mlsd.systems.visual_search.datasets_split import DataResult
from mlsd.systems.visual_search.model import (
    CONTRASTIVE,
    ImageEncoder,
    candidate_encoders,
)
from mlsd.systems.visual_search.model_selection import (
    Candidate,
    Choice,
    HoldOut,
    choose_on_validation,
)
from mlsd.systems.visual_search.world import VisualWorldConfig

log = logging.getLogger(__name__)

# real files: the size of each encoder is chosen among these on validation (tiny: fewer, to
# stay a smoke test)
FILE_DIMS = {"tiny": (16, 32), "small": (32, 64, 128), "medium": (32, 64, 128), "large": (64, 128)}
# real files: the CNN trains for FILE_EPOCHS passes over the training images, at least the
# world's step count of the scale and at most FILE_MAX_STEPS
FILE_EPOCHS = 40
FILE_MAX_STEPS = {"tiny": 100, "small": 1_500, "medium": 3_000, "large": 3_000}
CHOSEN_ON_VALIDATION = ("raw_pixels_pca", "color_histogram_pca", CONTRASTIVE)


def file_train_steps(n_images: int, batch_size: int, scale_steps: int, scale: str) -> int:
    """Training steps of the CNN on ``n_images`` real training images (see the module doc)."""
    epochs = math.ceil(FILE_EPOCHS * n_images / max(batch_size, 1))
    return int(min(FILE_MAX_STEPS[scale], max(scale_steps, epochs)))


@dataclass(frozen=True)
class ModelsResult:
    """Step 4: the fitted encoders, their training times and the contrastive loss per step,
    and (real files) each encoder's validation choice of embedding size."""

    encoders: dict[str, ImageEncoder]
    train_seconds: dict[str, float]
    loss_per_step: tuple[float, ...]
    steps: int
    batch_pairs: int
    threads: int
    loss_chance: float  # ln(batch size): InfoNCE of an encoder that has learned nothing
    choices: dict[str, Choice] = field(default_factory=dict)

    def training(self) -> dict[str, Any]:
        enc = self.encoders.get(CONTRASTIVE)
        return {
            "steps": self.steps,
            "batch_pairs": self.batch_pairs,
            "threads": self.threads,
            "dim": enc.dim if enc is not None else None,
            "augmentation": getattr(enc, "augmentation_", None),
            "loss_first": float(np.mean(self.loss_per_step[:10])),
            "loss_last": float(np.mean(self.loss_per_step[-10:])),
            "loss_chance": self.loss_chance,
        }

    def metrics(self) -> dict[str, Any]:
        models = {
            name: {"class": type(enc).__name__, "train_seconds": round(self.train_seconds[name], 3)}
            for name, enc in self.encoders.items()
        }
        out: dict[str, Any] = {"models": models, "contrastive_training": self.training()}
        if self.choices:
            out["validation_choice"] = {n: c.metrics() for n, c in self.choices.items()}
        return out


def _one_encoder(
    name: str, dim: int, seed: int, train_steps: int, batch_size: int, threads: int
) -> ImageEncoder:
    return candidate_encoders(seed, train_steps, batch_size, threads, dim=dim)[name]


def choose_dims(
    images: np.ndarray,
    groups: np.ndarray,
    *,
    seed: int,
    dims: Sequence[int],
    train_steps: int,
    batch_size: int,
    threads: int,
    hold_out: HoldOut = "images",
    progress: ProgressFn | None = None,
) -> dict[str, Choice]:
    """Each of ``CHOSEN_ON_VALIDATION``'s embedding size among ``dims``, by validation mAP."""
    choices: dict[str, Choice] = {}
    for i, name in enumerate(CHOSEN_ON_VALIDATION):
        if progress is not None:
            progress(f"choosing the size of {name} on validation", i, len(CHOSEN_ON_VALIDATION))
        cands = [
            Candidate(
                f"{name}/{d}",
                {"dim": d},
                partial(_one_encoder, name, d, seed, train_steps, batch_size, threads),
            )
            for d in dims
        ]
        choices[name] = choose_on_validation(cands, images, groups, seed, hold_out)
    return choices


def compute_models(
    images: np.ndarray,
    groups: np.ndarray,
    *,
    seed: int,
    train_steps: int,
    batch_size: int,
    threads: int,
    dim: int = 64,
    choose_dims_among: Sequence[int] = (),
    hold_out: HoldOut = "images",
    progress: ProgressFn | None = None,
) -> ModelsResult:
    """Fit every encoder of :func:`candidate_encoders` (of size ``dim``) on the training images;
    with ``choose_dims_among``, each chosen encoder's size is first chosen on validation."""
    choices: dict[str, Choice] = {}
    if choose_dims_among:
        choices = choose_dims(
            images,
            groups,
            seed=seed,
            dims=choose_dims_among,
            train_steps=train_steps,
            batch_size=batch_size,
            threads=threads,
            hold_out=hold_out,
            progress=progress,
        )
    encoders = candidate_encoders(seed, train_steps, batch_size, threads, dim=dim)
    for name, choice in choices.items():
        chosen = next(r["dim"] for r in choice.rows if r["candidate"] == choice.chosen)
        encoders[name] = candidate_encoders(seed, train_steps, batch_size, threads, dim=chosen)[
            name
        ]
    if CONTRASTIVE in choices and "untrained_cnn" in encoders:  # where the trained one started
        cnn_dim = encoders[CONTRASTIVE].dim
        encoders["untrained_cnn"] = candidate_encoders(
            seed, train_steps, batch_size, threads, dim=cnn_dim
        )["untrained_cnn"]
    seconds: dict[str, float] = {}
    for i, (name, enc) in enumerate(encoders.items()):
        if progress is not None:
            progress(f"training {name}", i, len(encoders))
        t0 = time.perf_counter()
        enc.fit(images, groups)
        seconds[name] = time.perf_counter() - t0
        log.info("trained %s in %.1f s", name, seconds[name])
    history: list[float] = getattr(encoders[CONTRASTIVE], "history_", [])
    return ModelsResult(
        encoders=encoders,
        train_seconds=seconds,
        loss_per_step=tuple(history),
        steps=train_steps,
        batch_pairs=batch_size,
        threads=threads,
        loss_chance=float(np.log(min(batch_size, len(images)))),
        choices=choices,
    )


def report_models(bp: Blueprint, result: ModelsResult) -> None:
    tr = result.training()
    grey = tr["augmentation"] == "grey"
    augmentations = (
        "small rotations (±11°), shifts and zooms (±15%), contrast/brightness jitter and noise; "
        "no flip and no colour jitter (the images are grey)"
        if grey
        else "crop-resize, rotation, flip, brightness/colour jitter, noise"
    )
    bp.section("Model development")
    bp.text(
        "Four encoders under one contract (fit on the training images and their product, encode "
        "to L2-normalised vectors): raw pixels + PCA, a joint RGB colour histogram + PCA, the "
        "CNN with random weights, and the same CNN trained contrastively. The CNN has four 3×3 "
        "conv layers (BatchNorm, ReLU, two max-pools), global average pooling and a linear "
        f"head to {tr['dim']} dimensions. Training: InfoNCE with in-batch negatives; a positive "
        "pair is two different photos of one product (one class, for labelled files), each "
        f"augmented again ({augmentations}); temperature 0.1, Adam, cosine decay, "
        f"{tr['steps']} steps of {tr['batch_pairs']} pairs on {tr['threads']} CPU thread(s). "
        f"The loss fell from {tr['loss_first']:.3f} to {tr['loss_last']:.3f} (chance: "
        f"ln {tr['batch_pairs']} = {tr['loss_chance']:.3f})."
    )
    if result.choices:
        first = next(iter(result.choices.values()))
        bp.text(
            "Each encoder's embedding size was chosen on a validation split of the training "
            f"images only ({first.fit_images:,} to fit, {first.validation_images:,} held out: "
            "half queries, half index, mAP@10), then refitted on all training images."
        )
        bp.table(
            ["encoder", "dims", "validation mAP@10", "seconds", "chosen"],
            [
                [name, r["dim"], r["validation_map"], r["seconds"], r["candidate"] == c.chosen]
                for name, c in result.choices.items()
                for r in c.rows
            ],
        )
    bp.table(
        ["model", "class", "dims", "train seconds"],
        [
            [name, type(enc).__name__, enc.dim, round(result.train_seconds[name], 3)]
            for name, enc in result.encoders.items()
        ],
    )
    _loss_figure(bp, result.loss_per_step)


def _loss_figure(bp: Blueprint, history: Sequence[float]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3))
    ax.plot(np.arange(1, len(history) + 1), history, lw=1)
    ax.set_xlabel("step")
    ax.set_ylabel("InfoNCE loss")
    ax.grid(alpha=0.3)
    bp.figure(fig, "contrastive_loss", "Contrastive training loss per step.")


def train_models(
    data: DataResult,
    cfg: VisualWorldConfig,
    *,
    seed: int,
    scale: str,
    threads: int,
    progress: ProgressFn | None = None,
) -> ModelsResult:
    """Step 4 on the run's data: the world's sizes and step count as configured; real files
    train longer (:func:`file_train_steps`) and choose each size on validation."""
    rs = data.retrieval
    if data.world is not None:
        return compute_models(
            rs.train_images,
            rs.train_groups,
            seed=seed,
            train_steps=cfg.train_steps,
            batch_size=cfg.batch_size,
            threads=threads,
            dim=cfg.embedding_dim,
            progress=progress,
        )
    return compute_models(
        rs.train_images,
        rs.train_groups,
        seed=seed,
        train_steps=file_train_steps(len(rs.train_images), cfg.batch_size, cfg.train_steps, scale),
        batch_size=cfg.batch_size,
        threads=threads,
        dim=cfg.embedding_dim,
        choose_dims_among=FILE_DIMS[scale],
        progress=progress,
    )
