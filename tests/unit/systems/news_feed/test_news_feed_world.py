"""The simulated network: deterministic, reactions from their own probabilities, retrieval."""

from __future__ import annotations

import numpy as np
import pytest

from mlsd.systems.news_feed.features_retrieval import pair_keys
from mlsd.systems.news_feed.world import NewsFeedWorld, position_bias
from mlsd.systems.news_feed.world_config import BINARY_HEADS, DAY_S, FeedWorldConfig
from mlsd.world import Scale

CFG = FeedWorldConfig.for_scale(Scale.TINY).with_(n_days=3, test_days=1, valid_days=1)


@pytest.fixture(scope="module")
def world() -> NewsFeedWorld:
    return NewsFeedWorld(Scale.TINY, 0, CFG)


def test_the_same_seed_gives_the_same_log(world: NewsFeedWorld) -> None:
    a = world.log().impressions
    b = NewsFeedWorld(Scale.TINY, 0, CFG).log().impressions
    c = NewsFeedWorld(Scale.TINY, 1, CFG).log().impressions
    assert a.equals(b)
    assert not (len(a) == len(c) and a["click"].equals(c["click"]))


def test_rare_reactions_are_rarer_and_dwell_needs_a_view(world: NewsFeedWorld) -> None:
    imp = world.log().impressions
    rates = {h: imp[h].mean() for h in BINARY_HEADS}
    assert rates["click"] > rates["like"] > rates["comment"] > rates["block"]
    assert rates["hide"] > rates["block"]
    assert (imp["dwell"] >= 0).all() and imp["dwell"].mean() > 1.0
    reacted = imp[list(BINARY_HEADS)].sum(axis=1) > 0
    assert (imp.loc[reacted, "dwell"] > 0).all()  # a reaction means the post was seen


def test_candidates_are_unseen_recent_posts_of_connections(world: NewsFeedWorld) -> None:
    lg = world.log()
    sess = lg.sessions[lg.sessions["day"] == 2].head(30).reset_index(drop=True)
    before = lg.impressions[lg.impressions["day"] < 2]
    seen = np.sort(pair_keys(before["user_id"], before["post_id"], len(world.posts)))
    cand = world.candidates(sess, seen, np.zeros(0, np.int64))
    assert len(cand)
    author = world.posts["author_id"].to_numpy()[cand["post_id"]]
    assert np.all(np.asarray(world.connections[cand["user_id"], author]).ravel() == 1)
    age = cand["ts"] - world.posts["created_ts"].to_numpy()[cand["post_id"]]
    assert ((age > 0) & (age <= CFG.lookback_h * 3600)).all()
    assert not np.isin(pair_keys(cand["user_id"], cand["post_id"], len(world.posts)), seen).any()


def test_surveys_are_answers_from_one_to_five(world: NewsFeedWorld) -> None:
    survey = world.log().sessions["survey"].dropna()
    assert len(survey) and survey.between(1, 5).all()


def test_the_oracle_and_position_bias() -> None:
    assert position_bias(np.array([0]))[0] == 1.0
    assert np.all(np.diff(position_bias(np.arange(10))) < 0)
    w = NewsFeedWorld(Scale.TINY, 0, CFG)
    u, p = np.zeros(5, np.int64), np.arange(5)
    heads = w.true_heads(u, p, np.full(5, DAY_S))
    assert heads.shape == (5, 7) and np.all((heads[:, :6] > 0) & (heads[:, :6] < 1))
    assert np.all(heads[:, 6] > 0)
