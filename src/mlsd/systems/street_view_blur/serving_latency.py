"""Step 6, measured: the speed / accuracy table and the batch pipeline's throughput.

Every detector's single-image latency (p50 / p99 over test images, one torch thread, decode
excluded), its counted compute and its test accuracy sit in one table: the chapter's trade-off
between a larger input and a faster model, measured on this machine rather than asserted
(latencies come from a shared 2-core machine; the choice of the served model uses the counted
compute, never these timings). Then the served blurrer runs the batch pipeline
(:func:`~.serving_batch.blur_folder`) over test images written as PNG files: images per second
end to end (read, decode, detect, blur, encode, write), and a second run over the same folder to
show the resume (nothing redone).
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from mlsd.engine import Engine
from mlsd.report import Blueprint
from mlsd.systems.street_view_blur.evaluation import OfflineEvaluation
from mlsd.systems.street_view_blur.model import TrainedModels
from mlsd.systems.street_view_blur.serving import Blurrer
from mlsd.systems.street_view_blur.serving_batch import blur_folder
from mlsd.systems.street_view_blur.world import ImageSet
from mlsd.training import torch_threads

LATENCY_IMAGES = 30
BATCH_IMAGES = 120


@dataclass(frozen=True)
class ServingReport:
    latency: dict[str, dict[str, float]]  # model -> p50_ms, p99_ms
    batch: dict[str, Any]
    resumed_rerun: dict[str, Any]
    chosen: str

    def metrics(self) -> dict[str, Any]:
        return {
            "serving": {
                "mode": "batch",
                "latency_ms": self.latency,
                "batch": self.batch,
                "resume_rerun": self.resumed_rerun,
            }
        }


def measure_latency(model: Any, images: np.ndarray) -> dict[str, float]:
    times = []
    with torch_threads(1):
        model.detect(images[:1])  # warm-up
        for img in images:
            t0 = time.perf_counter()
            model.detect(img[None])
            times.append((time.perf_counter() - t0) * 1e3)
    arr = np.asarray(times)
    return {"p50_ms": float(np.percentile(arr, 50)), "p99_ms": float(np.percentile(arr, 99))}


def compute_serving(
    trained: TrainedModels,
    offline: OfflineEvaluation,
    test: ImageSet,
    blurrer: Blurrer,
    engine: Engine | None = None,
) -> ServingReport:
    sample = test.images[:LATENCY_IMAGES]  # the same images for every model
    latency = {name: measure_latency(m, sample) for name, m in trained.models.items()}
    with tempfile.TemporaryDirectory(prefix="mlsd-blur-") as tmp:
        folder, out = Path(tmp) / "in", Path(tmp) / "out"
        folder.mkdir()
        for i, img in enumerate(test.images[:BATCH_IMAGES]):
            cv2.imwrite(str(folder / f"{i:06d}.png"), img)
        report = blur_folder(folder, out, blurrer, batch_size=32, engine=engine)
        again = blur_folder(folder, out, blurrer, batch_size=32, engine=engine)
    return ServingReport(latency, report.to_dict(), again.to_dict(), offline.chosen)


def report_serving(
    bp: Blueprint, result: ServingReport, trained: TrainedModels, offline: OfflineEvaluation
) -> None:
    bp.section("Serving")
    bp.text(
        "The chapter's design is a batch pipeline (`mlsd blur FOLDER --run DIR --out OUT`): "
        "images read in batches, detected, blurred and written with a boxes file, resumable. "
        "The speed / accuracy table: single-image latency with one torch thread (on a shared "
        "machine: indicative), compute counted from the network, accuracy on the test images."
    )
    rows = []
    for name in trained.models:
        s = offline.test[name]
        rows.append(
            [
                name,
                trained.mmacs[name] if trained.mmacs[name] is not None else "n/a",
                result.latency[name]["p50_ms"],
                result.latency[name]["p99_ms"],
                s.map50,
                *s.area_share,
            ]
        )
    bp.table(
        ["model", "M MACs / image", "p50 ms", "p99 ms", "mAP@.5", "area face", "area plate"],
        rows,
        caption="speed / accuracy",
    )
    b = result.batch
    bp.text(
        f"Batch pipeline with **{result.chosen}**: {b['processed']} images in {b['seconds']:.2f}"
        f" s, **{b['images_per_second']:.1f} images/s** end to end on this machine "
        f"({b['faces_blurred']} faces and {b['plates_blurred']} plates blurred). Run again on "
        f"the same folder it resumed: {result.resumed_rerun['resumed']} images already done, "
        f"{result.resumed_rerun['processed']} redone."
    )
