"""Step 4 for street-view blurring: the detectors side by side, and their contract cases.

* ``haar_cascades``: OpenCV's bundled Viola–Jones cascades (:mod:`.model_haar`), no training:
  what a team could start with today;
* ``centernet``: the trained anchor-free one-stage detector (:mod:`.model_centernet`) at the
  world's full resolution;
* ``centernet_half``: the same detector run on images shrunk to half their side (a quarter of
  the pixels and of the compute): the chapter's speed / accuracy trade-off, measured.

Each detector answers with the same table (:mod:`.model_nms`). The compute of a trained detector
is counted, not timed: multiply-accumulates of its convolutions for one image (forward hooks),
deterministic on any machine, so the served model can be chosen by a stable rule.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from mlsd.contracts import ModelCase
from mlsd.report import Blueprint
from mlsd.systems.street_view_blur.features import to_tensor
from mlsd.systems.street_view_blur.model_centernet import CenterNetDetector
from mlsd.systems.street_view_blur.model_haar import HaarCascades
from mlsd.systems.street_view_blur.model_nms import detection_array
from mlsd.systems.street_view_blur.world import ImageSet, StreetConfig, StreetWorld
from mlsd.world import Scale

log = logging.getLogger(__name__)

BASELINE = "haar_cascades"
TRAINED = ("centernet", "centernet_half")
MODELS = (BASELINE, *TRAINED)
Detector = HaarCascades | CenterNetDetector


def make_models(width: int, height: int, epochs: int, seed: int) -> dict[str, Detector]:
    """The line-up, unfitted, for images of ``width × height``."""

    def centernet(scale: float) -> CenterNetDetector:
        return CenterNetDetector(
            input_width=width,
            input_height=height,
            input_scale=scale,
            epochs=epochs,
            random_state=seed,
        )

    return {BASELINE: HaarCascades(), "centernet": centernet(1.0), "centernet_half": centernet(0.5)}


def conv_macs(model: CenterNetDetector) -> int:
    """Multiply-accumulates of the network's convolutions for one image (counted by hooks)."""
    total = [0]

    def hook(module: nn.Module, inputs: Any, output: torch.Tensor) -> None:
        assert isinstance(module, nn.Conv2d)
        k = module.kernel_size[0] * module.kernel_size[1] * module.in_channels // module.groups
        total[0] += int(output.numel()) * k

    nw, nh = model.net_size
    handles = [
        m.register_forward_hook(hook) for m in model.net_.modules() if isinstance(m, nn.Conv2d)
    ]
    try:
        with torch.no_grad():
            model.net_(to_tensor(np.zeros((1, nh, nw, 3), np.uint8)))
    finally:
        for h in handles:
            h.remove()
    return total[0]


@dataclass(frozen=True)
class TrainedModels:
    models: dict[str, Detector]
    train_seconds: dict[str, float]
    mmacs: dict[str, float | None]  # per image; None for the cascades (not a network)
    params: dict[str, int]
    train_loss: dict[str, list[float]] = field(default_factory=dict)
    source: str = "world"  # what the trained detectors learned from

    def final_loss(self, name: str) -> float | None:
        losses = self.train_loss.get(name)
        return losses[-1] if losses else None

    def metrics(self) -> dict[str, Any]:
        return {
            "models": {
                name: {
                    "train_seconds": round(self.train_seconds[name], 3),
                    "mmacs_per_image": self.mmacs[name],
                    "parameters": self.params[name],
                    "final_train_loss": self.final_loss(name),
                    "trained_on": self.source if name in TRAINED else "nothing (bundled)",
                }
                for name in self.models
            }
        }


def train_models(
    train: ImageSet,
    epochs: int,
    seed: int,
    progress: Callable[[str], None] | None = None,
    source: str = "world",
) -> TrainedModels:
    """Fit the line-up on ``train``."""
    h, w = train.images.shape[1:3]
    models: dict[str, Detector] = {}
    seconds: dict[str, float] = {}
    mmacs: dict[str, float | None] = {}
    params: dict[str, int] = {}
    losses: dict[str, list[float]] = {}
    for name, model in make_models(w, h, epochs, seed).items():
        if progress is not None:
            progress(name)
        t0 = time.perf_counter()
        model.fit(train.images, train.boxes)
        seconds[name] = time.perf_counter() - t0
        models[name] = model
        if isinstance(model, CenterNetDetector):
            mmacs[name] = round(conv_macs(model) / 1e6, 3)
            params[name] = int(sum(p.numel() for p in model.net_.parameters()))
            losses[name] = model.train_loss_
        else:
            mmacs[name], params[name] = None, 0
        log.info("%s fitted in %.1f s", name, seconds[name])
    return TrainedModels(models, seconds, mmacs, params, losses, source)


def report_models(bp: Blueprint, result: TrainedModels) -> None:
    bp.section("Model development")
    bp.text(
        "Three detectors side by side: OpenCV's bundled Haar cascades (no training; the image "
        "is enlarged 3× so that the street's small faces and plates reach the cascades' "
        "24×24 and 60×20 windows), and a CenterNet-style anchor-free one-stage detector "
        "trained here on the CPU (flips and photometric jitter, focal loss with hard-negative "
        "mining of the highest-scoring background cells), at full and at half input "
        f"resolution. Trained on: {result.source}."
    )
    rows = [
        [
            name,
            result.params[name],
            result.mmacs[name] if result.mmacs[name] is not None else "n/a",
            result.train_seconds[name],
            result.final_loss(name),
        ]
        for name in result.models
    ]
    bp.table(["model", "parameters", "M MACs / image", "train seconds", "final loss"], rows)


# ---- the model contract --------------------------------------------------------------------
def _contract_data() -> ImageSet:
    cfg = StreetConfig.for_scale(Scale.TINY).with_(width=64, height=48, n_train=8)
    return StreetWorld(Scale.TINY, 0, cfg).labelled("train")


def _case(name: str, make: Callable[[int], Detector]) -> ModelCase:
    def output(model: Detector, data: ImageSet) -> np.ndarray:
        return detection_array(model.detect(data.images), len(data))

    return ModelCase(
        name=f"street_view_blur/{name}",
        kind="detector",
        make=make,
        data=_contract_data,
        fit=lambda m, d: m.fit(d.images, d.boxes),
        output=output,
        shape=lambda m, d: (len(d), 20, 6),
        save=lambda m, path: m.save(path),
        load=lambda path: type(make(0)).load(Path(path)),
    )


def contract_cases() -> list[ModelCase]:
    def centernet(seed: int) -> CenterNetDetector:
        return CenterNetDetector(
            width=4, input_width=64, input_height=48, epochs=1, batch_size=4, random_state=seed
        )

    return [
        _case("haar_cascades", lambda seed: HaarCascades(upscale=2.0)),
        _case("centernet", centernet),
    ]


def frame_of(data: ImageSet) -> pd.DataFrame:
    """The perfect detector: every true box with score 1."""
    out = data.boxes[["image", "label", "x", "y", "w", "h"]].copy()
    out["score"] = 1.0
    return out.reset_index(drop=True)
