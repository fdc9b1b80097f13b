"""Street-view blurring: detector latency and the batch pipeline's throughput.

Book ch. 3 ("Serving"): blurring is a batch job over billions of images, so what matters is
images per second on cheap hardware. This benchmark measures, on the street world's images
(128×96, the small scale), with detectors whose speed does not depend on how well they were
trained (one epoch):

(a) per detector (Haar cascades, CenterNet at full and at half input resolution), single-image
    detection latency with one torch thread;
(b) the batch pipeline end to end (read, decode, detect, blur, encode, write) with the full
    CenterNet: images per second for batch sizes 8 and 32 and one or two torch threads, and
    the cost of a resumed run over a finished folder (nothing redone).
"""

from __future__ import annotations

import logging
import tempfile
import time
from pathlib import Path

import cv2

from benchmarks import BenchResult, latency_stats_ms
from mlsd.systems.street_view_blur.model import make_models
from mlsd.systems.street_view_blur.serving import Blurrer
from mlsd.systems.street_view_blur.serving_batch import blur_folder
from mlsd.systems.street_view_blur.world import StreetConfig, StreetWorld
from mlsd.training import torch_threads
from mlsd.world import Scale

log = logging.getLogger(__name__)


def run(quick: bool = False) -> BenchResult:
    n_images = 40 if quick else 300
    cfg = StreetConfig.for_scale(Scale.SMALL).with_(n_train=32, n_test=n_images)
    world = StreetWorld(Scale.SMALL, 0, cfg)
    train, test = world.labelled("train"), world.labelled("test")
    models = make_models(cfg.width, cfg.height, epochs=1, seed=0)
    rows = []
    with torch_threads(1):
        for name, model in models.items():
            model.fit(train.images, train.boxes)
            model.detect(test.images[:1])
            times = []
            for img in test.images[: min(60, n_images)]:
                t0 = time.perf_counter()
                model.detect(img[None])
                times.append(time.perf_counter() - t0)
            rows.append({"case": f"detect one image: {name}", **latency_stats_ms(times)})
    summary = {}
    with tempfile.TemporaryDirectory(prefix="mlsd-bench-svb-") as tmp:
        folder = Path(tmp) / "in"
        folder.mkdir()
        for i, img in enumerate(test.images):
            cv2.imwrite(str(folder / f"{i:06d}.png"), img)
        for threads in (1, 2):
            for batch in (8, 32):
                out = Path(tmp) / f"out-{threads}-{batch}"
                blurrer = Blurrer(models["centernet"], "centernet", (0.2, 0.2), threads)
                report = blur_folder(folder, out, blurrer, batch_size=batch)
                t0 = time.perf_counter()
                again = blur_folder(folder, out, blurrer, batch_size=batch)
                resume_s = time.perf_counter() - t0
                case = f"batch pipeline: {threads} thread(s), batch {batch}"
                rows.append(
                    {
                        "case": case,
                        "images": report.processed,
                        "seconds": report.seconds,
                        "images_per_second": report.images_per_second,
                        "resume_seconds": resume_s,
                        "redone_on_resume": again.processed,
                    }
                )
                summary[f"images_per_second_t{threads}_b{batch}"] = report.images_per_second
    return BenchResult(
        name="street_view_blur",
        description=f"street-view blurring: detector latency and batch throughput over "
        f"{n_images} images of {cfg.width}x{cfg.height}",
        rows=rows,
        summary=summary,
        params={"images": n_images, "width": cfg.width, "height": cfg.height},
    )
