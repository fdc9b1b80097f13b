"""Point-in-time features: a reaction counts only after the day it happened."""

from __future__ import annotations

import numpy as np

from mlsd.systems.news_feed.features import (
    FEATURES,
    POSITION,
    FeedState,
    Platform,
    impression_features,
    pair_frame,
)
from mlsd.systems.news_feed.world import NewsFeedWorld
from mlsd.systems.news_feed.world_config import DAY_S, FeedWorldConfig
from mlsd.world import Scale

CFG = FeedWorldConfig.for_scale(Scale.TINY).with_(n_days=3, test_days=1, valid_days=1)


def test_features_of_a_day_count_only_earlier_days() -> None:
    w = NewsFeedWorld(Scale.TINY, 0, CFG)
    imp = w.log().impressions
    platform = Platform(**w.platform_tables())
    X = impression_features(platform, imp)
    assert list(X.columns) == [*FEATURES, POSITION]
    day0 = imp["day"].to_numpy() == 0
    assert (X.loc[day0, "d_user_impressions"] == 0).all()  # no history before the log
    # the user's impression count on day 2 is exactly their impressions on days 0 and 1
    row = int(np.flatnonzero(imp["day"].to_numpy() == 2)[0])
    u = imp["user_id"].iat[row]
    earlier = ((imp["user_id"] == u) & (imp["day"] < 2)).sum()
    assert np.isclose(np.expm1(X["d_user_impressions"].iat[row]), earlier)


def test_a_later_click_does_not_leak_into_an_earlier_state() -> None:
    w = NewsFeedWorld(Scale.TINY, 0, CFG)
    imp = w.log().impressions
    platform = Platform(**w.platform_tables())
    state = FeedState.build(imp, DAY_S, platform)
    flipped = imp.copy()
    late = flipped["day"] >= 1
    flipped.loc[late, "click"] = 1 - flipped.loc[late, "click"]
    again = FeedState.build(flipped, DAY_S, platform)
    np.testing.assert_array_equal(state.post, again.post)
    u, p = imp["user_id"].to_numpy()[:20], imp["post_id"].to_numpy()[:20]
    ts = np.full(20, DAY_S)
    a, b = pair_frame(platform, state, u, p, ts), pair_frame(platform, again, u, p, ts)
    assert a.equals(b)


def test_a_post_published_after_the_state_has_no_counts() -> None:
    w = NewsFeedWorld(Scale.TINY, 0, CFG)
    platform = Platform(**w.platform_tables())
    state = FeedState.build(w.log().impressions, 3 * DAY_S, platform)
    n = len(w.posts)
    counts = state.post_counts(np.array([int(np.argmax(state.post[:, 0])), n, n + 7]))
    assert counts[0, 0] > 0 and counts[1:].sum() == 0
