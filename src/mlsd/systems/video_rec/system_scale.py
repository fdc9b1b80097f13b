"""Video recommendation: the blueprint's "Scale" section (:mod:`mlsd.scale`) from this run.

The heavy step the run hands its engine is the batch job that precomputes every user's feed
(blocks of users, :func:`mlsd.systems.video_rec.serving_batch.recommend_block`): its measured
per-core throughput makes the plan at 100M users.
"""

from __future__ import annotations

from mlsd.scale import HeavyStep, ScaleSpec

FEED = 20  # videos in a precomputed feed
USER_DIM = 64  # the user tower's embedding, served from the online store (assumed size)
CATALOGUE = 800_000_000  # videos in the ANN index at the target (assumed)

SPEC = ScaleSpec(
    system="video-rec",
    steps=(
        HeavyStep(
            "video_rec.serving_batch.recommend_block",
            "batch feeds (by block of users)",
            "users",
            per_user_day=1.0,
            window_hours=4.0,
        ),
    ),
    store_bytes_per_user=FEED * 8 + USER_DIM * 4,
    index_vectors=CATALOGUE,
    index_dim=USER_DIM,
    assumptions=(
        "Every user's feed is recomputed once a day within a 4-hour batch window (1 user-feed "
        "per user per day).",
        f"Online store per user: the precomputed feed ({FEED} video ids x 8 B) and the user "
        f"embedding ({USER_DIM} x 4 B); ANN index: {CATALOGUE:,} videos (assumed catalogue).",
    ),
)
step_scale = SPEC.step
