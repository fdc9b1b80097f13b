"""Visual search: the blueprint's "Scale" section (:mod:`mlsd.scale`) from this run.

The heavy step the run hands its engine is embedding the catalogue's images with the CNN
(chunks of images, :func:`mlsd.systems.visual_search.serving_catalogue.encode_chunk`): its
measured per-core throughput makes the plan at 100M users.
"""

from __future__ import annotations

from mlsd.scale import HeavyStep, ScaleSpec

UPLOADS_PER_USER_DAY = 0.1  # new images to embed per user per day (assumed)
CATALOGUE = 2_000_000_000  # images in the ANN index at the target (assumed)
DIM = 64  # embedding size served (assumed production size)

SPEC = ScaleSpec(
    system="visual-search",
    steps=(
        HeavyStep(
            "visual_search.serving_catalogue.encode_chunk",
            "catalogue embedding (CNN, by chunk of images)",
            "images",
            per_user_day=UPLOADS_PER_USER_DAY,
        ),
    ),
    index_vectors=CATALOGUE,
    index_dim=DIM,
    assumptions=(
        f"{UPLOADS_PER_USER_DAY:g} new images per user per day are embedded within the hour "
        "they arrive; a model change re-embeds the whole catalogue (the same per-core rate, "
        f"{CATALOGUE:,} images).",
        "No per-user online store: a query is an image, answered from the index alone.",
    ),
)
step_scale = SPEC.step
