"""Harmful content detection: the blueprint's "Scale" section (:mod:`mlsd.scale`) from this run.

The heavy step the run hands its engine is the image model's batch classification of the
posts' images (blocks of images, :func:`mlsd.systems.harmful_content.model.score_images`): its
measured per-core throughput makes the plan at 100M users.
"""

from __future__ import annotations

from mlsd.scale import HeavyStep, ScaleSpec

IMAGE_POSTS_PER_USER_DAY = 0.5  # posts with an image per user per day (assumed)
AUTHOR_BYTES = 64  # the author's features in the online store (signup, followers, violations)

SPEC = ScaleSpec(
    system="harmful-content",
    steps=(
        HeavyStep(
            "harmful_content.model.score_images",
            "image classification (by block of images)",
            "images",
            per_user_day=IMAGE_POSTS_PER_USER_DAY,
        ),
    ),
    store_bytes_per_user=AUTHOR_BYTES,
    assumptions=(
        f"{IMAGE_POSTS_PER_USER_DAY:g} image posts per user per day, each classified within "
        "the hour it is posted (the peak hour's rate sets the cores).",
        f"Online store per user: the author's features ({AUTHOR_BYTES} B).",
    ),
)
step_scale = SPEC.step
