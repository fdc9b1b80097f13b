"""News feed: the blueprint's "Scale" section (:mod:`mlsd.scale`) from this run.

The heavy step the run hands its engine is batch scoring of logged impressions by each ranker
(one model per shard over the same rows, :func:`mlsd.systems.news_feed.evaluation.predict_shard`):
its measured per-core throughput makes the plan at 100M users.
"""

from __future__ import annotations

from mlsd.scale import HeavyStep, ScaleSpec

IMPRESSIONS_PER_USER_DAY = 50  # posts ranked per user per day (assumed)
USER_BYTES = 512  # the user's features and reaction counts in the online store (assumed)

SPEC = ScaleSpec(
    system="news-feed",
    steps=(
        HeavyStep(
            "news_feed.evaluation.predict_shard",
            "scoring every head (one model per shard)",
            "rows x models",
            per_user_day=IMPRESSIONS_PER_USER_DAY,
            count="shared",
        ),
    ),
    store_bytes_per_user=USER_BYTES,
    assumptions=(
        f"{IMPRESSIONS_PER_USER_DAY} posts ranked per user per day, online, spread so the peak "
        "hour holds a day's work (window 1 hour); at serving time one model scores them, so "
        "the figure per model is the rate to use.",
        f"Online store per user: features and reaction counts (~{USER_BYTES} B, assumed).",
    ),
)
step_scale = SPEC.step
