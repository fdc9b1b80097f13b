"""A tiny world's log and the recommender fitted on it, shared by the video-rec unit tests."""

from __future__ import annotations

import pandas as pd
import pytest
import torch

from mlsd.systems.video_rec.features import Catalogue
from mlsd.systems.video_rec.model import FitConfig, FitReport, fit_recommender
from mlsd.systems.video_rec.serving import Recommender
from mlsd.systems.video_rec.world import VideoRecWorld
from mlsd.systems.video_rec.world_entities import CATEGORIES, VideoWorldConfig
from mlsd.text import make_encoder
from mlsd.world import Scale

torch.set_num_threads(1)
CFG = VideoWorldConfig(
    n_users=150, n_videos=200, n_days=4, new_users_per_day=5, new_videos_per_day=10
)


@pytest.fixture(scope="session")
def world_log() -> tuple[VideoRecWorld, pd.DataFrame, Catalogue]:
    """The tiny world after its logged days, its log and its catalogue (hashed titles)."""
    w = VideoRecWorld(Scale.TINY, 0, config=CFG)
    log = w.log()
    cat = Catalogue(
        w.videos, make_encoder("hashing").encode(w.videos["title"].tolist()), list(CATEGORIES)
    )
    return w, log, cat


@pytest.fixture(scope="session")
def fitted(
    world_log: tuple[VideoRecWorld, pd.DataFrame, Catalogue],
) -> tuple[VideoRecWorld, Recommender, FitReport]:
    w, log, cat = world_log
    rec, report = fit_recommender(cat, w.users, log, FitConfig(tower_epochs=3, ranker_trees=20))
    return w, rec, report
