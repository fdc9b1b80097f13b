"""The video-search world on an engine: the search log one day per shard, the catalogue's
frames one block of videos per shard (:mod:`mlsd.engine`).

Each day's searches and clicks draw from that day's own streams (``video-search/queries/...``,
``video-search/clicks/{day}``) and each video's frames from its own spawned stream, so the days
and the blocks can be generated anywhere, in any order: on every engine the log and the frames
equal :meth:`VideoSearchWorld.log` and :meth:`VideoSearchWorld.frames`, bit for bit (tests
prove it on Ray). Only the search ids are global; they are renumbered in day order here.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from mlsd.engine import Engine, LocalEngine
from mlsd.systems.video_search.world import Log, Policy, VideoSearchWorld

FRAME_BLOCK = 256  # videos per shard of the frames


def log_day(
    shared: tuple[VideoSearchWorld, Policy, int], day: int
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """One shard: day ``day``'s searches and impressions (search ids from 0)."""
    world, policy, page = shared
    lg = world.log(policy, range(day, day + 1), page)
    return lg.searches, lg.impressions


def sharded_log(
    world: VideoSearchWorld,
    policy: Policy,
    days: Sequence[int],
    engine: Engine | None = None,
    page: int = 10,
) -> Log:
    """:meth:`VideoSearchWorld.log` with the days as shards on ``engine`` (the same log)."""
    parts = (engine or LocalEngine()).map(log_day, list(days), shared=(world, policy, page))
    if not parts:
        raise ValueError("sharded_log: no days")
    searches, imps, start = [], [], 0
    for s, i in parts:
        searches.append(s.assign(search_id=s["search_id"].to_numpy() + start))
        imps.append(i.assign(search_id=i["search_id"].to_numpy() + start))
        start += len(s)
    return Log(pd.concat(searches, ignore_index=True), pd.concat(imps, ignore_index=True))


def frames_block(world: VideoSearchWorld, ids: np.ndarray) -> np.ndarray:
    """One shard: the frames of a block of videos."""
    return world.frames(ids)


def sharded_frames(
    world: VideoSearchWorld,
    video_ids: np.ndarray,
    engine: Engine | None = None,
    block: int = FRAME_BLOCK,
) -> np.ndarray:
    """:meth:`VideoSearchWorld.frames` in blocks of ``block`` videos on ``engine``."""
    ids = np.asarray(video_ids, dtype=np.int64)
    if not len(ids):
        return world.frames(ids)
    blocks = [ids[s : s + block] for s in range(0, len(ids), block)]
    return np.concatenate((engine or LocalEngine()).map(frames_block, blocks, shared=world))
