"""The ranking model: the framework's LightGBM click model and a watch-time regressor; the fast
serving path gives exactly what the estimators' own predict methods give."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mlsd.models import LightGBMClick
from mlsd.systems.video_rec.features import Demographics, ranking_frame
from mlsd.systems.video_rec.model import FitReport
from mlsd.systems.video_rec.model_ranking import RankingModel
from mlsd.systems.video_rec.serving import Recommender
from mlsd.systems.video_rec.world import VideoRecWorld


def test_ranking_predict_matches_the_estimators(
    fitted: tuple[VideoRecWorld, Recommender, FitReport], tmp_path: Path
) -> None:
    _, rec, _ = fitted
    assert rec.ranker is not None and isinstance(rec.ranker.click_, LightGBMClick)
    users = np.repeat(np.arange(5), 30)
    videos = np.tile(np.arange(30), 5)
    X = ranking_frame(
        rec.cat, rec.us, rec.vs, Demographics.of(rec.users, users), users, videos, rec.day
    )
    p, value = rec.ranker.predict(X)
    want_p = rec.ranker.click_.predict_proba(X)[:, 1]
    want_min = np.maximum(rec.ranker.watch_.predict(X), 0.0)
    np.testing.assert_allclose(p, want_p, rtol=1e-12)
    np.testing.assert_allclose(value, want_p * want_min, rtol=1e-12)
    rec.ranker.save(tmp_path / "ranker")
    back = RankingModel.load(tmp_path / "ranker")
    np.testing.assert_array_equal(np.column_stack(back.predict(X)), np.column_stack((p, value)))


def test_ranking_validation_figures_beat_chance(
    fitted: tuple[VideoRecWorld, Recommender, FitReport],
) -> None:
    _, _, report = fitted
    info = report.ranking
    assert info["click_auc"] > 0.55
    assert info["watch_mae_min"] < info["watch_mae_baseline_min"]
    assert report.click_nce_oracle is not None and report.click_nce_oracle < info["click_nce"]
    assert 1 <= info["trees"] <= 20 and info["dropped_features"] == []
