"""A tiny seeded world and a searcher over it, built once per module (hashing text encoder)."""

from __future__ import annotations

import numpy as np
import pytest

from mlsd.rng import rng
from mlsd.systems.video_search.features import documents
from mlsd.systems.video_search.model import TextSearch
from mlsd.systems.video_search.model_dual import DualEncoder
from mlsd.systems.video_search.model_fit import fusion_frame
from mlsd.systems.video_search.model_fusion import FusionRanker
from mlsd.systems.video_search.serving import VideoSearcher
from mlsd.systems.video_search.world import VideoSearchWorld
from mlsd.systems.video_search.world_config import VideoSearchConfig
from mlsd.text import make_encoder
from mlsd.world import Scale


@pytest.fixture(scope="module")
def world() -> VideoSearchWorld:
    cfg = VideoSearchConfig.for_scale(Scale.TINY).with_(
        n_videos=240, new_videos_per_day=10, n_days=3, queries_per_day=100
    )
    return VideoSearchWorld(Scale.TINY, 0, cfg)


@pytest.fixture(scope="module")
def searcher(world: VideoSearchWorld) -> VideoSearcher:
    cfg = world.config
    cat = world.videos[world.videos["upload_day"] < cfg.n_days].reset_index(drop=True)
    enc = make_encoder("hashing")
    docs = documents(cat)
    frames = world.frames(cat["video_id"].to_numpy())
    q = world.queries(0, 300)
    grades = world.pair_grades(q["intent_id"].to_numpy(), np.tile(np.arange(len(cat)), (300, 1)))
    clicked = grades.argmax(axis=1)  # each query's best video stands in for its click
    dual = DualEncoder(dim=16, width=4, hidden=32, epochs=3, random_state=0)
    dual.fit(enc.encode(q["text"].tolist()), frames, clicked)
    s = VideoSearcher(
        cat,
        TextSearch().fit(docs),
        enc,
        enc.encode(docs),
        dual,
        dual.encode_videos(frames),
        None,
        "rrf_all",
        day=cfg.n_days,
        depth=20,
    )
    X, y, g = fusion_frame(s, world, q.drop_duplicates("text").head(40), rng(0, "test"))
    s.fusion = FusionRanker(n_estimators=10).fit(X, y, g)
    s.ranker = "fusion"
    return s
