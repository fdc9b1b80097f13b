"""Video search: the blueprint's "Scale" section (:mod:`mlsd.scale`) from this run.

The heavy step the run hands its engine is embedding the catalogue's videos with the dual
encoder's video tower (blocks of videos,
:func:`mlsd.systems.video_search.model_fit.encode_video_block`): its measured per-core
throughput makes the plan at 100M users.
"""

from __future__ import annotations

from mlsd.scale import HeavyStep, ScaleSpec

UPLOADS_PER_USER_DAY = 0.005  # new videos per user per day (assumed: 500K a day at 100M)
CATALOGUE = 1_000_000_000  # videos in the ANN index at the target (assumed)
DIM = 64  # embedding size served (assumed production size)

SPEC = ScaleSpec(
    system="video-search",
    steps=(
        HeavyStep(
            "video_search.model_fit.encode_video_block",
            "catalogue embedding (video tower, by block of videos)",
            "videos",
            per_user_day=UPLOADS_PER_USER_DAY,
        ),
    ),
    index_vectors=CATALOGUE,
    index_dim=DIM,
    assumptions=(
        f"{UPLOADS_PER_USER_DAY:g} new videos per user per day are embedded within the hour; "
        f"a new video tower re-embeds the whole catalogue ({CATALOGUE:,} videos) at the same "
        "per-core rate. The text index (BM25) shards by video id beside the vector index.",
    ),
)
step_scale = SPEC.step
