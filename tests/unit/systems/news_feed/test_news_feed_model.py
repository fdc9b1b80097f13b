"""The rankers: the multi-task heads learn every reaction; the weighted score orders by them."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from mlsd.systems.news_feed.features import Platform, impression_features, labels
from mlsd.systems.news_feed.model import any_engagement, ranking_score, train_models
from mlsd.systems.news_feed.world import NewsFeedWorld
from mlsd.systems.news_feed.world_config import (
    DEFAULT_WEIGHTS,
    EngagementWeights,
    FeedWorldConfig,
)
from mlsd.world import Scale


def test_the_weighted_score_and_its_signs() -> None:
    heads = np.array([[0.5, 0.2, 0.1, 0.0, 0.0, 0.0, 10.0], [0.5, 0.2, 0.1, 0.0, 0.3, 0.05, 10.0]])
    s = DEFAULT_WEIGHTS.score(heads)
    assert s[0] == pytest.approx(0.5 + 0.6 + 0.6 + 1.0)
    assert s[1] < s[0]  # hide and block weigh against
    assert EngagementWeights(dwell_per_s=0.0).score(heads)[0] == pytest.approx(1.7)
    assert list(any_engagement(np.array([[0, 0, 0, 1, 1, 0, 3.0], [0, 0, 0, 0, 1, 1, 0]]))) == [
        1,
        0,
    ]


def test_every_ranker_learns_the_clicks_of_later_days() -> None:
    cfg = FeedWorldConfig.for_scale(Scale.TINY)
    w = NewsFeedWorld(Scale.TINY, 0, cfg)
    imp = w.log().impressions
    X, Y = impression_features(Platform(**w.platform_tables()), imp), labels(imp)
    day = imp["day"].to_numpy()
    train, test = np.isin(day, cfg.train_days), np.isin(day, cfg.eval_days)
    models = train_models(X[train].reset_index(drop=True), Y[train], 0, n_estimators=30, epochs=4)
    for name, model in models.models.items():
        s = ranking_score(model, X[test])
        assert s.shape == (int(test.sum()),) and np.isfinite(s).all()
        assert roc_auc_score(Y[test, 0] > 0, s) > 0.55, name  # above chance on the clicks
