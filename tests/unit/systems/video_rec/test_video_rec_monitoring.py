"""Step 7 for video-rec: a world that stops changing raises no alert; a surge of users the model
never saw drifts inputs, embeddings and predictions and triggers a retrain. Also the framework's
embedding drift and metric-decay alerts that the step uses."""

from __future__ import annotations

import copy

import pandas as pd
import pytest

from mlsd.systems.video_rec.features import Catalogue
from mlsd.systems.video_rec.model import FitReport
from mlsd.systems.video_rec.monitoring import Monitoring, compute_monitoring, quality
from mlsd.systems.video_rec.serving import Recommender
from mlsd.systems.video_rec.world import VideoRecWorld
from mlsd.systems.video_rec.world_entities import CATEGORIES
from mlsd.text import make_encoder

DAYS = 2
EVAL_USERS = 120


def _monitor(
    fitted: tuple[VideoRecWorld, Recommender, FitReport],
    world_log: tuple[VideoRecWorld, pd.DataFrame, Catalogue],
    **changes: float,
) -> Monitoring:
    base_world, rec, _ = fitted
    world = copy.deepcopy(base_world)  # the fixture's world is shared: move a copy on
    world.config = world.config.with_(**changes)
    encoder = make_encoder("hashing")

    def advance() -> Recommender:
        world.advance_day()
        titles = encoder.encode(world.videos["title"].tolist())
        cat = Catalogue(world.videos.copy(), titles, list(CATEGORIES))
        return rec.moved_to(cat, world.users.copy(), world.day, 0)

    today = advance()  # the day after training: the quality baseline
    baseline = {"day": float(world.day), **quality(today, world, EVAL_USERS, 0)}
    return compute_monitoring(rec, world_log[1], world, advance, baseline, DAYS, EVAL_USERS, 0)


@pytest.fixture(scope="module")
def stable(
    fitted: tuple[VideoRecWorld, Recommender, FitReport],
    world_log: tuple[VideoRecWorld, pd.DataFrame, Catalogue],
) -> Monitoring:
    return _monitor(fitted, world_log, drift=0.0, new_users_per_day=0, new_videos_per_day=0)


def test_a_world_that_stops_changing_raises_no_alert(stable: Monitoring) -> None:
    d = stable.daily
    assert len(d) == DAYS and d["day"].tolist() == [5.0, 6.0]
    assert stable.alerts == [] and not stable.retrain and stable.reason == "no retrain: no alerts"
    # the drift figures are measured, not absent: small but not all zero
    assert (d["prediction_psi"] < 0.1).all() and (d["psi_user_embedding"] > 0).all()
    assert (d["psi_video_embedding"] == 0).all()  # no new video: the same catalogue embedded
    assert ((d["oracle_share"] > 0) & (d["oracle_share"] <= 1)).all()
    m = stable.metrics()["monitoring"]
    assert m["retrain"] is False and len(m["days"]) == DAYS and m["baseline"]["oracle_share"] > 0
    assert m["reference"]["users"] > 50 and m["thresholds"]["psi_alert"] == 0.25


def test_a_surge_of_unseen_users_alerts_and_retrains(
    fitted: tuple[VideoRecWorld, Recommender, FitReport],
    world_log: tuple[VideoRecWorld, pd.DataFrame, Catalogue],
    stable: Monitoring,
) -> None:
    surge = _monitor(fitted, world_log, new_users_per_day=100)
    d = surge.daily
    assert (d["cold_user_share"] > stable.daily["cold_user_share"] + 0.3).all()
    kinds = {a.kind for a in surge.alerts}
    subjects = {a.subject for a in surge.alerts}
    assert {"feature_drift", "prediction_drift"} <= kinds
    assert "user_embedding" in subjects and "d_user_clicks" in subjects
    assert surge.retrain and surge.reason.startswith("retrain:")
    assert (d["user_embedding_shift"] > stable.daily["user_embedding_shift"]).all()
