"""Event recommendation: the blueprint's "Scale" section (:mod:`mlsd.scale`) from this run.

The heavy step the run hands its engine is batch scoring of (user, event) candidate rows by the
rankers (blocks of rows, :func:`mlsd.engine.score_rows` over
:func:`mlsd.systems.event_rec.model.score`): its measured per-core throughput makes the plan at
100M users.
"""

from __future__ import annotations

from mlsd.scale import HeavyStep, ScaleSpec

CANDIDATES_PER_USER_DAY = 200  # nearby upcoming events scored per user per day (assumed)
LIST = 20  # events in a precomputed list

SPEC = ScaleSpec(
    system="event-rec",
    steps=(
        HeavyStep(
            "event_rec.model.score",
            "batch scoring (LightGBM / LR / MLP, by block of rows)",
            "rows",
            per_user_day=CANDIDATES_PER_USER_DAY,
            window_hours=4.0,
        ),
    ),
    store_bytes_per_user=LIST * 8 + 256,
    assumptions=(
        f"{CANDIDATES_PER_USER_DAY} candidate events scored per user per day, in a 4-hour batch "
        "window (events are local: candidates come from the user's neighbourhood).",
        f"Online store per user: the precomputed list ({LIST} ids x 8 B) and about 256 B of "
        "user features and friend/host counts.",
    ),
)
step_scale = SPEC.step
