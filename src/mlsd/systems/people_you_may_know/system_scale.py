"""People you may know: the blueprint's "Scale" section (:mod:`mlsd.scale`) from this run.

The heavy step the run hands its engine is the batch job that generates friends-of-friends
candidates and scores them (blocks of users, :func:`mlsd.systems.people_you_may_know.serving.
batch_chunk`): its measured per-core throughput makes the plan at 100M users.
"""

from __future__ import annotations

from mlsd.scale import HeavyStep, ScaleSpec

TOP_K = 50  # people in a precomputed list
FRIENDS = 200  # adjacency list per user in the graph store (assumed mean degree at the target)

SPEC = ScaleSpec(
    system="people-you-may-know",
    steps=(
        HeavyStep(
            "people_you_may_know.serving.batch_chunk",
            "candidate generation and scoring (by block of users)",
            "users",
            per_user_day=1.0,
            window_hours=6.0,
        ),
    ),
    store_bytes_per_user=TOP_K * (4 + 4) + FRIENDS * 4,
    assumptions=(
        "Every user's list is recomputed once a day within a 6-hour batch window. The per-user "
        "cost grows with the number of friends-of-friends: the tiny and small worlds have far "
        f"fewer friends than a real network (~{FRIENDS}), so the cores here are a lower bound.",
        f"Online store per user: the list ({TOP_K} x id and score, 8 B) and the friend list "
        f"({FRIENDS} x 4 B ids) for the graph's 2-hop walk.",
    ),
)
step_scale = SPEC.step
