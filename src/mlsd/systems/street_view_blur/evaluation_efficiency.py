"""Street view blurring, step 6: CenterNet made cheaper, and the latency trade-off table.

The full-resolution CenterNet is the line-up's most accurate deep model. It is made cheaper
(:mod:`mlsd.efficiency`): a **distilled** student (the same network at half the width, so about
a quarter of the multiply-adds, trained to reproduce the teacher's heatmap logits, box sizes and
offsets on the training images, MSE), **magnitude pruning** of half its convolution weights,
and an **ONNX** export run by onnxruntime. Dynamic int8 does not apply: it quantises linear
layers, and CenterNet is all convolutions (static quantisation with calibration would be the
next step). Each variant keeps the detector around the network, so it is scored like the
line-up: thresholds chosen on the validation images for the recall target, mAP@0.5 on
validation (the rule) and test, and timed detecting one image, interleaved with the served
model.

The **trade-off table** re-makes the choice among the detectors for budgets of 1, 5, 10, 50 and
200 ms p99 and 1, 4 and 16 images per batch.
"""

from __future__ import annotations

import logging
import time
from functools import partial
from typing import Any

import numpy as np
import torch
from torch import nn

from mlsd.efficiency import Variant, compress, distill, with_network
from mlsd.efficiency_table import EfficiencyTable, evaluate_variants
from mlsd.latency import Timer, machine_load
from mlsd.rng import rng, seed_of
from mlsd.systems.street_view_blur import REQUIREMENTS
from mlsd.systems.street_view_blur.datasets import StreetData
from mlsd.systems.street_view_blur.evaluation import choose_thresholds, score_set
from mlsd.systems.street_view_blur.model import TrainedModels
from mlsd.systems.street_view_blur.model_centernet import CenterNetDetector, TinyCenterNet
from mlsd.systems.street_view_blur.world import CLASSES
from mlsd.tradeoffs import BudgetSweep, measure_by_candidates, sweep_budgets
from mlsd.training import torch_threads

log = logging.getLogger(__name__)

TEACHER = "centernet"
REQUESTS = {"tiny": 4, "small": 30, "medium": 30, "large": 30}
ROUNDS = {"tiny": 2, "small": 5, "medium": 5, "large": 5}
SWEEP_COUNTS = (1, 4, 16)
SWEEP_REQUESTS = {"tiny": 1, "small": 5, "medium": 5, "large": 5}  # no warm-up: CPU code
SWEEP_ROUNDS = {"tiny": 2, "small": 3, "medium": 3, "large": 3}
WARMUP = 1


class Flat(nn.Module):
    """A CenterNet's three outputs flattened into one ``(n, C*h*w + 4*h*w)`` tensor: what the
    student learns to reproduce."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        heat, size, offset = self.net(x)
        n = x.shape[0]
        return torch.cat([heat.reshape(n, -1), size.reshape(n, -1), offset.reshape(n, -1)], 1)


def map50(model: Any, data: StreetData) -> tuple[float, float]:
    """mAP@0.5 on validation and test at the thresholds chosen on validation."""
    dv, dt = model.detect(data.val.images), model.detect(data.test.images)
    thresholds, _ = choose_thresholds(data.val, dv)
    return (
        float(score_set(data.val, dv, thresholds).map50),
        float(score_set(data.test, dt, thresholds).map50),
    )


def distill_student(teacher: CenterNetDetector, data: StreetData, seed: int) -> Any:
    """A half-width CenterNet trained on the teacher's outputs for the training images."""
    x = teacher._inputs(data.train.images)
    with torch.inference_mode():
        target = Flat(teacher.net_)(x).clamp(-10.0, 10.0).float()
    width = max(4, teacher.width // 2)

    def student() -> nn.Module:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed_of(seed, "street-view/distill/init"))
            return Flat(TinyCenterNet(width, len(CLASSES)))

    result = distill(
        target.clone(),
        student,
        [x],
        objective="regression",
        epochs=6,
        batch_size=16,
        lr=3e-3,
        seed=seed_of(seed, "street-view/distill/training"),
        num_threads=teacher.num_threads,
    )
    assert isinstance(result.student, Flat)
    return with_network(teacher, result.student.net.eval(), attribute="net_", width=width)


def _time_images(model: Any, batches: list[np.ndarray], warmup: int = WARMUP) -> np.ndarray:
    samples = []
    for j, images in enumerate(batches):
        t0 = time.perf_counter()
        model.detect(images)
        if j >= warmup:
            samples.append((time.perf_counter() - t0) * 1e3)
    return np.asarray(samples)


def _batches(images: np.ndarray, k: int, n: int, seed: int, purpose: str) -> list[np.ndarray]:
    draw = rng(seed, f"street-view/{purpose}")
    return [images[draw.integers(0, len(images), k)] for _ in range(n)]


def compute_efficiency(
    trained: TrainedModels,
    served: str,
    data: StreetData,
    *,
    scale: str,
    seed: int,
    torch_thread_count: int | None,
) -> EfficiencyTable:
    """CenterNet, its cheaper variants and the served detector: mAP@0.5, size and p99."""
    teacher = trained.models[TEACHER]
    if not isinstance(teacher, CenterNetDetector):
        raise TypeError(f"efficiency: {TEACHER} is not a CenterNet detector")
    batches = _batches(data.val.images, 1, REQUESTS[scale] + WARMUP, seed, "efficiency")
    example = teacher._inputs(batches[0])
    variants = compress(
        teacher.net_,
        (example,),
        name=TEACHER,
        input_names=["image"],
        output_names=["heatmap", "size", "offset"],
        threads=torch_thread_count or 1,
    )
    student = distill_student(teacher, data, seed)
    variants[f"{TEACHER}/distilled"] = Variant.of(
        f"{TEACHER}/distilled",
        f"distilled into a CenterNet of width {student.width}",
        student.net_,
    )

    def estimator_for(v: Variant) -> Any:
        return (
            student
            if v.name.endswith("/distilled")
            else with_network(teacher, v.module, attribute="net_")
        )

    with torch_threads(torch_thread_count):
        return evaluate_variants(
            variants,
            estimator_for=estimator_for,
            score=lambda m: map50(m, data),
            timer_for=lambda m: partial(_time_images, m, batches),
            model_inputs=lambda m: (example,),
            model_calls=REQUESTS[scale],
            others={served: ("the serving step's choice", trained.models[served])},
            teacher=TEACHER,
            previously_served=served,
            rounds=ROUNDS[scale],
            budget_ms=REQUIREMENTS.latency_budget_ms,
            metric="mAP@0.5",
            higher_is_better=True,
            measured="one image: resize, the network, peak decoding and NMS",
            notes=(
                "Dynamic int8 is not in the table: it quantises linear layers and CenterNet "
                "has none (static int8 of the convolutions needs a calibration pass).",
            ),
        )


def compute_budget_sweep(
    trained: TrainedModels,
    validation: dict[str, float],
    data: StreetData,
    *,
    scale: str,
    seed: int,
    torch_thread_count: int | None,
) -> BudgetSweep:
    """Every detector at 1, 4 and 16 images per batch; the rule per budget."""
    n = SWEEP_REQUESTS[scale]
    batches = {k: _batches(data.val.images, k, n, seed, f"tradeoffs-{k}") for k in SWEEP_COUNTS}

    def timer_for(name: str, k: int) -> Timer:
        return partial(_time_images, trained.models[name], batches[k], 0)

    names = list(validation)
    before = machine_load()
    with torch_threads(torch_thread_count):
        lat = measure_by_candidates(timer_for, names, SWEEP_COUNTS, SWEEP_ROUNDS[scale])
    return sweep_budgets(
        validation,
        lat,
        metric="mAP@0.5",
        higher_is_better=True,
        measured="a batch of that many images through detection",
        rounds=SWEEP_ROUNDS[scale],
        load={"before": before, "after": machine_load()},
        unit="images per batch",
    )
