"""Ad click prediction: the blueprint's "Scale" section (:mod:`mlsd.scale`) from this run.

The data step's world generation and the features step's point-in-time features are the
heavy, sharded steps (one shard per day, :mod:`mlsd.engine`): their measured throughput per
core, the impressions per user per day of the world, and the online store's bytes per user
(the carried count tables) make the plan at 100M users.
"""

from __future__ import annotations

from mlsd.engine import Engine
from mlsd.scale import ScalePlan, StepRate, load_bench
from mlsd.systems.ad_click.features_split import TrainingData
from mlsd.systems.ad_click.world_log import WorldLog


def compute_scale(world_log: WorldLog, features: TrainingData, engine: Engine) -> ScalePlan:
    """The plan from the world run's measured data and features steps."""
    world = world_log.world
    workers = engine.workers
    per_user_day = world_log.rows / max(world.n_days, 1) / max(len(world.users), 1)
    store = 0
    if features.tables is not None:
        store = sum(int(t.memory_usage(deep=True).sum()) for t in features.tables.values())
    rates = (
        StepRate(
            "world log (by day)",
            "impressions",
            world_log.rows,
            world_log.seconds,
            workers,
            per_user_day,
        ),
        StepRate(
            "point-in-time features (by day)",
            "impressions",
            world_log.rows,
            features.seconds,
            workers,
            per_user_day,
        ),
    )
    return ScalePlan(
        engine=engine.name,
        rates=rates,
        store_bytes_per_user=store / max(len(world.users), 1),
        bench=load_bench(),
        system="ad-click",
        assumptions=(
            "The world log and the point-in-time features run one day per Ray task; each day's "
            "carried counts (a few MB) are merged on the driver, in day order.",
        ),
    )
