"""Similar listings: the blueprint's "Scale" section (:mod:`mlsd.scale`) from this run.

The heavy step the run hands its engine is scoring every model on the test sessions (one model
per shard, :func:`mlsd.systems.similar_listings.evaluation.score_shard`): each evaluation case
is a query (the listing a user is on) answered by a nearest-neighbour search in its region, so
its measured per-core throughput is the rate of similar-listing queries.
"""

from __future__ import annotations

from dataclasses import replace

from mlsd.runner import RunContext
from mlsd.scale import HeavyStep, ScalePlan, ScaleSpec, report_plan

QUERIES_PER_USER_DAY = 5  # listing pages viewed per user per day (assumed)
LISTINGS = 10_000_000  # listings in the ANN index at the target (assumed)
DIM = 32  # listing embedding size (the skip-gram's size order)

STEP = HeavyStep(
    "similar_listings.evaluation.score_shard",
    "similar-listing queries (one model per shard)",
    "queries",
    per_user_day=QUERIES_PER_USER_DAY,
)
SPEC = ScaleSpec(
    system="similar-listings",
    steps=(STEP,),
    store_bytes_per_user=DIM * 4,
    index_vectors=LISTINGS,
    index_dim=DIM,
    assumptions=(
        f"{QUERIES_PER_USER_DAY} listing pages per user per day, the peak hour holding a day's "
        f"work; index: {LISTINGS:,} listings (assumed), sharded by region.",
        f"Online store per user: the session's embedding for re-ranking ({DIM} x 4 B).",
    ),
)


def step_scale(ctx: RunContext, state: object) -> ScalePlan | None:
    """The plan; the units are the evaluation's cases times the models that scored them."""
    evaluation = getattr(state, "evaluation", None)
    spec = SPEC
    if evaluation is not None:
        cases = int(evaluation.booked_cases) + int(evaluation.next_cases)
        spec = replace(SPEC, steps=(replace(STEP, units=cases * len(evaluation.scores)),))
    return report_plan(ctx, spec.plan(ctx.engine))
