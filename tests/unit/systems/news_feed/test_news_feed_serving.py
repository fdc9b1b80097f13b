"""The feed service from its artifacts: stages, new posts, flags, and refused artifacts."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from mlsd.artifacts import write_manifest
from mlsd.serving import ServingArtifactError
from mlsd.systems.news_feed.features import Platform, impression_features, labels
from mlsd.systems.news_feed.model import PerHeadLightGBM
from mlsd.systems.news_feed.serving import load_scorer, save_serving_artifacts, world_tables
from mlsd.systems.news_feed.serving_rerank import RerankConfig
from mlsd.systems.news_feed.world import NewsFeedWorld
from mlsd.systems.news_feed.world_config import DAY_S, DEFAULT_WEIGHTS, FeedWorldConfig
from mlsd.world import Scale

CFG = FeedWorldConfig.for_scale(Scale.TINY).with_(n_days=3, test_days=1, valid_days=1)


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    w = NewsFeedWorld(Scale.TINY, 0, CFG)
    imp = w.log().impressions
    X = impression_features(Platform(**w.platform_tables()), imp)
    model = PerHeadLightGBM(n_estimators=10).fit(X, labels(imp))
    clock = CFG.n_days * DAY_S
    art = tmp_path_factory.mktemp("nf") / "artifacts"
    tables = world_tables(w, imp, clock)
    save_serving_artifacts(
        art, model, "per_head_lightgbm", tables, clock, DEFAULT_WEIGHTS, RerankConfig(), 48
    )
    return art


def test_a_feed_is_ranked_by_the_weighted_score_and_timed(run: Path) -> None:
    scorer = load_scorer(run)
    user = next(u for u in range(100) if len(scorer.retrieve(u, scorer.clock_ts + 1)) >= 10)
    feed = scorer.feed(user, k=5)
    assert len(feed.posts) == 5 and feed.candidates >= 10
    for post in feed.posts:
        heads = np.array([list(post.heads.values())])
        assert np.isclose(DEFAULT_WEIGHTS.score(heads)[0], post.score)
    assert set(feed.timings_ms) == {"retrieval", "features", "scoring", "reranking", "total"}
    # posts created after the clock do not exist yet; none is older than the lookback
    assert all(0 < p.age_h <= 48 for p in feed.posts)


def test_publish_and_flag(run: Path) -> None:
    scorer = load_scorer(run)
    friends = scorer.platform.friends
    user, author = int(friends["user_id"].iloc[3]), int(friends["friend_id"].iloc[3])
    before = scorer.feed(user, k=100)
    post = scorer.publish(author, 2, 2)
    after = scorer.feed(user, k=100)
    assert after.candidates == before.candidates + 1
    assert post in [p.post_id for p in after.posts]
    top = after.posts[0].post_id
    scorer.flag(top)
    flagged = scorer.feed(user, k=100)
    assert flagged.posts[0].post_id != top or len(flagged.posts) == 1
    with pytest.raises(LookupError, match="unknown author"):
        scorer.publish(10**9, 0, 0)


def test_a_changed_or_broken_artifact_is_refused(run: Path, tmp_path: Path) -> None:
    import shutil

    copy = tmp_path / "artifacts"
    shutil.copytree(run, copy)
    meta = json.loads((copy / "serving.json").read_text())
    meta["weights"] = {"click": 1.0, "nonsense": 2.0}
    (copy / "serving.json").write_text(json.dumps(meta))
    with pytest.raises(ServingArtifactError, match="hash mismatch"):
        load_scorer(copy)
    write_manifest(copy)
    with pytest.raises(ServingArtifactError, match="field 'weights'"):
        load_scorer(copy)
