"""The ad-click world: determinism, the chapter's effects, ground truth and the online interface."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import log_loss

from mlsd.systems.ad_click.world import LOG_COLUMNS, AdClickWorld
from mlsd.systems.ad_click.world_config import CATEGORIES, AdClickWorldConfig
from mlsd.world import Scale, World


@pytest.fixture(scope="module")
def world() -> AdClickWorld:
    return AdClickWorld(Scale.TINY, seed=7)


@pytest.fixture(scope="module")
def log(world: AdClickWorld) -> pd.DataFrame:
    return world.log()


@pytest.fixture(scope="module")
def enriched(world: AdClickWorld, log: pd.DataFrame) -> pd.DataFrame:
    ads = world.ads[["ad_id", "category", "format", "created_day"]]
    return log.merge(ads, on="ad_id").merge(world.users, on="user_id")


def test_is_a_world_with_the_documented_log_schema(world: AdClickWorld, log: pd.DataFrame) -> None:
    assert isinstance(world, World)
    assert tuple(log.columns) == LOG_COLUMNS
    assert log["impression_id"].is_unique and log["impression_id"].is_monotonic_increasing
    assert log["ts"].is_monotonic_increasing
    assert (log["day"] == log["ts"] // 86_400).all()
    assert (log["hour"] == (log["ts"] % 86_400) // 3600).all()
    assert str(log["day"].dtype) == "int32" and str(log["position"].dtype) == "int8"
    assert set(log["device"]) <= {"ios", "android", "web"}
    assert log["p_true"].between(0, 1, inclusive="neither").all()
    assert set(log["day"]) == set(range(world.n_days))
    assert 20_000 <= len(log) <= 40_000  # tiny: ~30k impressions
    assert set(world.ads["format"]) == {"image", "video", "carousel"}
    assert set(world.ads["category"]) <= set(CATEGORIES)
    assert (world.ads["creative_text"].str.len() > 10).all()


def test_same_seed_same_log_other_seed_other_log(log: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(AdClickWorld("tiny", seed=7).log(), log)
    other = AdClickWorld("tiny", seed=8).log()
    assert len(other) != len(log) or not other["p_true"].equals(log["p_true"])


def test_iter_log_yields_one_frame_per_day(world: AdClickWorld) -> None:
    chunks = list(world.iter_log())
    assert len(chunks) == world.n_days
    for day, chunk in enumerate(chunks):
        assert len(chunk) > 0, day
        assert (chunk["day"] == day).all(), day  # every row of the chunk, not just the first
        assert (chunk["ts"] // 86_400 == day).all(), day


def test_large_log_refuses_to_build_in_memory() -> None:
    cfg = AdClickWorldConfig.for_scale("tiny")
    with pytest.raises(ValueError, match="iter_log"):
        AdClickWorld(Scale.LARGE, seed=0, config=cfg).log()


def test_scales_grow_to_the_documented_sizes() -> None:
    def impressions(scale: Scale) -> int:
        cfg = AdClickWorldConfig.for_scale(scale)
        return cfg.requests_per_day * cfg.slots * cfg.n_days

    assert 400_000 <= impressions(Scale.SMALL) <= 500_000
    assert 1_500_000 <= impressions(Scale.MEDIUM) <= 2_500_000
    assert 15_000_000 <= impressions(Scale.LARGE) <= 25_000_000


def test_base_ctr_is_between_one_and_three_percent(log: pd.DataFrame) -> None:
    assert 0.01 <= log["click"].mean() <= 0.03
    assert 0.01 <= log["p_true"].mean() <= 0.03


def test_oracle_beats_the_base_rate(log: pd.DataFrame) -> None:
    y = log["click"].to_numpy()
    oracle = log_loss(y, log["p_true"].to_numpy())
    base = log_loss(y, np.full(len(y), y.mean()))
    assert oracle < 0.97 * base


def test_new_ads_arrive_every_day(world: AdClickWorld, log: pd.DataFrame) -> None:
    seen: set[int] = set()
    for key, chunk in log.groupby("day"):
        day, ids = int(str(key)), set(chunk["ad_id"])
        if day > 0:
            born_today = set(world.ads.loc[world.ads["created_day"] == day, "ad_id"])
            assert born_today & ids, f"no ad created on day {day} was shown that day"
            assert not born_today & seen  # cold start: never seen before
        seen |= ids
    ended = world.ads["end_day"] < world.n_days
    assert ended.any()  # old campaigns end
    last_day = log[log["day"] == world.n_days - 1]
    assert not set(world.ads.loc[world.ads["end_day"] <= world.n_days - 1, "ad_id"]) & set(
        last_day["ad_id"]
    )


def test_interests_drift_and_trend(world: AdClickWorld) -> None:
    first, last = world.user_interests(0), world.user_interests(world.n_days - 1)
    assert np.abs(last - first).mean() > 0.1
    young = (world.users["age_bucket"] <= 1).to_numpy()
    gaming, finance = CATEGORIES.index("gaming"), CATEGORIES.index("finance")
    cfg = world.config
    trend = cfg.trend_slope * (world.n_days - 1 - cfg.trend_day)  # the trend's shift by the end
    assert trend > 0
    assert (last[young, gaming] - first[young, gaming]).mean() > 0.5 * trend
    assert (last[young, finance] - first[young, finance]).mean() < -0.5 * trend
    others = [k for k in range(len(CATEGORIES)) if k not in (gaming, finance)]
    assert abs((last[young][:, others] - first[young][:, others]).mean()) < 0.5 * trend


def test_position_bias_ctr_falls_with_position(log: pd.DataFrame) -> None:
    by_pos = log.groupby("position")["p_true"].mean().to_numpy()
    assert (np.diff(by_pos) < 0).all()
    clicks = log.groupby("position")["click"].mean()
    assert clicks.iloc[0] > clicks.iloc[-1]


def test_true_ctr_has_position_bias_and_fatigue(world: AdClickWorld, log: pd.DataFrame) -> None:
    rows = log.head(200)
    base = world.true_ctr(rows.assign(position=0, prior_impressions=0))
    lower = world.true_ctr(rows.assign(position=3, prior_impressions=0))
    tired = world.true_ctr(rows.assign(position=0, prior_impressions=5))
    assert (lower < base).all() and (tired < base).all()


def test_true_ctr_reproduces_the_logged_p_true(world: AdClickWorld, log: pd.DataFrame) -> None:
    prior = log.groupby(["day", "user_id", "ad_id"]).cumcount()
    assert prior.max() > 0  # fatigue happens in the log
    p = world.true_ctr(log.assign(prior_impressions=prior))
    np.testing.assert_allclose(p, log["p_true"].to_numpy(), rtol=1e-9)


def test_device_x_format_interaction(world: AdClickWorld, enriched: pd.DataFrame) -> None:
    ctr = enriched.groupby(["format", "device"])["p_true"].mean()
    assert ctr["video", "ios"] > 1.5 * ctr["video", "web"]
    # the sign flips for images, so no additive model of device and format fits both
    assert ctr["image", "web"] > ctr["image", "ios"]
    rows = enriched.head(300)
    video_gap = np.log(world.true_ctr(rows.assign(device="ios"))) - np.log(
        world.true_ctr(rows.assign(device="web"))
    )
    fmt = rows["format"].to_numpy()
    assert video_gap[fmt == "video"].min() > video_gap[fmt == "image"].max()


def test_observable_attributes_carry_signal_about_interests(world: AdClickWorld) -> None:
    interests = world.user_interests(0)
    frame = pd.DataFrame(interests).assign(age=world.users["age_bucket"].to_numpy())
    between = frame.groupby("age").mean().to_numpy().std(axis=0).mean()
    assert between > 0.1  # age groups differ in their interests
    assert interests.std(axis=0).mean() > 1.5 * between  # but do not determine them


def test_sample_requests_gives_live_candidates(world: AdClickWorld) -> None:
    cand = world.sample_requests(day=world.n_days, n_requests=300, batch=1)
    assert list(cand.columns) == ["request_id", "user_id", "ts", "day", "hour", "device", "ad_id"]
    assert cand["request_id"].nunique() == 300
    assert (cand["day"] == world.n_days).all()
    assert set(cand["ad_id"]) <= set(world.active_ads(world.n_days))
    assert not cand.duplicated(["request_id", "ad_id"]).any()
    pd.testing.assert_frame_equal(cand, world.sample_requests(world.n_days, 300, batch=1))
    other = world.sample_requests(day=world.n_days, n_requests=300, batch=2)
    assert not set(other["request_id"]) & set(cand["request_id"])  # batches can be pooled
    assert not set(cand["request_id"]) & set(world.log()["request_id"])
    with pytest.raises(ValueError, match="day"):
        world.sample_requests(day=10_000, n_requests=10, batch=1)
    with pytest.raises(ValueError, match="batch"):
        world.sample_requests(day=1, n_requests=10, batch=-1)


def test_show_respects_the_ranking(world: AdClickWorld) -> None:
    cand = world.sample_requests(day=2, n_requests=400, batch=3)
    scores = np.random.default_rng(0).random(len(cand))
    shown = world.show(cand, scores, batch=4)
    assert set(LOG_COLUMNS) | {"bid", "revenue"} == set(shown.columns)
    slots = world.config.slots
    sizes = cand.groupby("request_id").size()
    per_request = shown.groupby("request_id").size()
    assert (per_request == sizes.clip(upper=slots).loc[per_request.index]).all()
    scored = shown.merge(cand.assign(score=scores), on=["request_id", "ad_id"])
    for _, group in scored.groupby("request_id"):
        ordered = group.sort_values("position")
        assert (np.diff(ordered["score"].to_numpy()) <= 0).all()
        best = cand.assign(score=scores).loc[cand["request_id"] == group["request_id"].iloc[0]]
        assert ordered["score"].iloc[0] == best["score"].max()
    np.testing.assert_allclose(shown["revenue"], shown["bid"] * shown["click"])
    pd.testing.assert_frame_equal(shown, world.show(cand, scores, batch=4))


def test_a_better_policy_earns_more_in_the_world(world: AdClickWorld) -> None:
    cand = world.sample_requests(day=world.n_days, n_requests=2000, batch=5)
    oracle = world.true_ctr(cand)
    good = world.show(cand, oracle, batch=6)
    bad = world.show(cand, -oracle, batch=6)
    assert good["p_true"].mean() > 1.5 * bad["p_true"].mean()


def test_show_rejects_bad_scores(world: AdClickWorld) -> None:
    cand = world.sample_requests(day=1, n_requests=20, batch=1)
    with pytest.raises(ValueError, match="shape"):
        world.show(cand, np.zeros(len(cand) + 1), batch=0)
    with pytest.raises(ValueError, match="finite"):
        world.show(cand, np.full(len(cand), np.nan), batch=0)
    with pytest.raises(ValueError, match="device"):
        world.true_ctr(cand.assign(device="fridge"))
