"""Street view blurring: the blueprint's "Scale" section (:mod:`mlsd.scale`) from this run.

The heavy step the run hands its engine is the batch job that detects and blurs faces and
plates (batches of image files, :func:`mlsd.systems.street_view_blur.serving_batch.blur_batch`):
its measured per-core throughput makes the plan for a day's captured images.
"""

from __future__ import annotations

from mlsd.scale import HeavyStep, ScaleSpec

IMAGES_PER_DAY = 100_000_000  # street images captured per day at the target (assumed)

SPEC = ScaleSpec(
    system="street-view-blur",
    steps=(
        HeavyStep(
            "street_view_blur.serving_batch.blur_batch",
            "detect and blur (by batch of images)",
            "images",
            per_user_day=1.0,
            window_hours=24.0,
        ),
    ),
    target_users=IMAGES_PER_DAY,
    target_unit="images captured per day",
    assumptions=(
        f"{IMAGES_PER_DAY:,} images captured per day, each blurred once within 24 hours "
        "(a batch job: no online store, no index; images and boxes go to object storage).",
    ),
)
step_scale = SPEC.step
