"""The ad-click feature pipeline: point-in-time correctness and train/serve consistency."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mlsd.data import DataError
from mlsd.features import InProcessStore, hash_values
from mlsd.models import HASH_BUCKETS
from mlsd.stores import FrameStore, frame_rows
from mlsd.systems.ad_click.features import (
    FEATURE_COLUMNS,
    RAW_COLUMNS,
    UnknownIdError,
    load_online_store,
    make_features,
    offline_features,
    online_tables,
    request_features,
)

CATS = np.array(["travel", "gaming", "food"], dtype=object)


def tiny_world(
    seed: int = 0, n_users: int = 25, n_ads: int = 10, n_requests: int = 120
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """A log / users / ads triple following docs/architecture.md: requests of 3 slots share a ts."""
    rng = np.random.default_rng(seed)
    users = pd.DataFrame(
        {
            "user_id": np.arange(100, 100 + n_users, dtype=np.int64),
            "age_bucket": rng.integers(0, 6, n_users),
            "gender": rng.choice(np.array(["f", "m", "u"], dtype=object), n_users),
            "country": rng.choice(np.array(["us", "de", "in"], dtype=object), n_users),
            "signup_day": rng.integers(-30, 2, n_users),
        }
    )
    ads = pd.DataFrame(
        {
            "ad_id": np.arange(1, n_ads + 1, dtype=np.int64),
            "advertiser_id": rng.integers(0, 4, n_ads) + 900,
            "campaign_id": rng.integers(0, 6, n_ads) + 500,
            "category": CATS[np.arange(n_ads) % 3],
            "format": rng.choice(np.array(["image", "video"], dtype=object), n_ads),
            "bid": rng.uniform(0.2, 2.0, n_ads),
            "created_day": rng.integers(-5, 3, n_ads),
            "creative_text": ["ad text"] * n_ads,
        }
    )
    interest = rng.normal(0.0, 1.5, (n_users, 3))
    slots = 3
    req_ts = np.sort(rng.choice(4 * 86_400, n_requests, replace=False)).astype(np.int64)
    user_idx = rng.integers(0, n_users - 3, n_requests)  # the last 3 users never appear
    rows = []
    for r in range(n_requests):
        ad_idx = rng.choice(n_ads - 1, slots, replace=False)  # the last ad is never shown
        for slot, a in enumerate(ad_idx):
            u = user_idx[r]
            logit = -2.0 + interest[u, a % 3] - 0.5 * slot
            rows.append((req_ts[r], r, u, a, slot, rng.random() < 1 / (1 + np.exp(-logit))))
    ts, req, u_ix, a_ix, pos, click = (np.array(c) for c in zip(*rows, strict=True))
    log = pd.DataFrame(
        {
            "impression_id": np.arange(len(ts), dtype=np.int64),
            "ts": ts,
            "day": (ts // 86_400).astype(np.int32),
            "hour": ((ts % 86_400) // 3600).astype(np.int8),
            "request_id": req.astype(np.int64),
            "user_id": users["user_id"].to_numpy()[u_ix],
            "ad_id": ads["ad_id"].to_numpy()[a_ix],
            "advertiser_id": ads["advertiser_id"].to_numpy()[a_ix],
            "campaign_id": ads["campaign_id"].to_numpy()[a_ix],
            "position": pos.astype(np.int8),
            "device": rng.choice(np.array(["ios", "android", "web"], dtype=object), len(ts)),
            "click": click.astype(np.int8),
            "p_true": np.full(len(ts), 0.1),
        }
    )
    return log, users, ads


@pytest.fixture(scope="module")
def world() -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    return tiny_world()


def test_offline_features_frame_contract(world: tuple[pd.DataFrame, ...]) -> None:
    log, users, ads = world
    log = log.set_axis(np.arange(len(log)) * 10 + 7)  # a non-default index is kept
    X = offline_features(log, users, ads)
    assert list(X.columns) == list(FEATURE_COLUMNS)
    assert X.index.equals(log.index)
    assert not X.isna().any().any()
    for c in X.columns:
        if c.startswith("d_"):
            assert X[c].dtype == np.float64, c
        else:
            assert c.startswith("c_") and X[c].dtype == np.int64, c
            assert X[c].between(0, HASH_BUCKETS - 1).all(), c
    assert "c_user_id" not in X.columns
    assert {"c_country_x_category", "c_hour_x_category", "c_device_x_format"} <= set(X.columns)
    # the first impressions of the log have no history at all
    assert (X["d_user_imps"].iloc[:3] == 0).all() and (X["d_ad_imps"].iloc[:3] == 0).all()


def test_point_in_time_proof() -> None:
    """Including the current, a tied or a future impression would change these numbers."""
    users = pd.DataFrame(
        {"user_id": [1], "age_bucket": [2], "gender": ["f"], "country": ["us"], "signup_day": [0]}
    )
    ads = pd.DataFrame(
        {
            "ad_id": [10, 11],
            "advertiser_id": [5, 5],
            "campaign_id": [7, 7],
            "category": ["gaming", "gaming"],
            "format": ["image", "video"],
            "bid": [1.0, 1.0],
            "created_day": [0, 0],
            "creative_text": ["a", "b"],
        }
    )
    log = pd.DataFrame(
        {
            "ts": [100, 200, 200, 300],
            "hour": [0, 0, 0, 0],
            "user_id": [1, 1, 1, 1],
            "ad_id": [10, 10, 11, 10],
            "position": [0, 0, 1, 0],
            "device": ["ios"] * 4,
            "click": [1, 1, 1, 0],
        }
    )
    X = offline_features(log, users, ads)
    # user impressions before each: 0, 1 (not its tie), 1, 3
    assert np.expm1(X["d_user_imps"]).round().tolist() == [0, 1, 1, 3]
    # user x ad impressions (fatigue) for ad 10: 0, 1, -, 2
    assert np.expm1(X["d_uad_imps"]).round().tolist() == [0, 1, 0, 2]
    assert np.expm1(X["d_uad_clicks"]).round().tolist() == [0, 1, 0, 2]
    # the first row's CTRs are pure prior: its own click is not counted
    assert X["d_user_ctr"].iloc[0] == X["d_ad_ctr"].iloc[0] == X["d_ucat_ctr"].iloc[0]
    # flipping a label never changes that row's features, nor those of its ties
    flipped = offline_features(log.assign(click=[1, 0, 1, 0]), users, ads)
    pd.testing.assert_frame_equal(flipped.iloc[:3], X.iloc[:3])
    assert not flipped.iloc[3].equals(X.iloc[3])  # ... but changes the later row


def test_future_events_leave_past_features_unchanged(world: tuple[pd.DataFrame, ...]) -> None:
    log, users, ads = world
    cut = int(log["ts"].quantile(0.6))
    past = log[log["ts"] < cut]
    X_full = offline_features(log, users, ads)
    X_past = offline_features(past, users, ads)
    pd.testing.assert_frame_equal(X_full.loc[past.index], X_past)
    pd.testing.assert_frame_equal(offline_features(log, users, ads, engine="numpy"), X_full)


def test_train_serve_consistency(world: tuple[pd.DataFrame, ...]) -> None:
    """Online features from the log strictly before an impression equal its offline row."""
    log, users, ads = world
    X = offline_features(log, users, ads)
    last_rows = log.groupby("user_id").tail(1).sort_values("ts").tail(5)
    pos0 = hash_values("position", [0])[0]
    for idx, row in last_rows.iterrows():
        store = FrameStore(online_tables(log[log["ts"] < row["ts"]], users, ads))
        req = pd.DataFrame(
            {
                "user_id": [row["user_id"]],
                "hour": [row["hour"]],
                "device": [row["device"]],
                "ad_id": [row["ad_id"]],
                "day": [row["day"]],
            }
        )
        online = request_features(store, req)
        assert list(online.columns) == list(FEATURE_COLUMNS)
        offline = X.loc[[idx]].reset_index(drop=True)
        position_cols = ["d_position", "c_position"]
        pd.testing.assert_frame_equal(
            online.drop(columns=position_cols), offline.drop(columns=position_cols)
        )
        assert online["d_position"].iloc[0] == 0.0 and online["c_position"].iloc[0] == pos0


def test_online_tables_cover_every_entity(world: tuple[pd.DataFrame, ...]) -> None:
    log, users, ads = world
    frames = online_tables(log, users, ads)
    assert {"user", "ad", "advertiser", "user_category", "user_ad", "global"} <= set(frames)
    assert all(f.columns[0] == "key" and f["key"].is_unique for f in frames.values())
    t = {ns: frame_rows(f) for ns, f in frames.items()}
    assert set(t["user"]) == {str(u) for u in users["user_id"]}
    assert set(t["ad"]) == {str(a) for a in ads["ad_id"]}
    never = str(users["user_id"].iloc[-1])
    assert t["user"][never]["imps"] == 0 and t["user"][never]["country"] in {"us", "de", "in"}
    assert t["ad"][str(ads["ad_id"].iloc[-1])]["imps"] == 0
    u, a = int(log["user_id"].iloc[0]), int(log["ad_id"].iloc[0])
    mask = (log["user_id"] == u) & (log["ad_id"] == a)
    assert t["user_ad"][f"{u}:{a}"] == {
        "imps": int(mask.sum()),
        "clicks": int(log.click[mask].sum()),
    }
    cat = str(ads.set_index("ad_id").loc[a, "category"])
    assert t["user_category"][f"{u}:{cat}"]["imps"] >= mask.sum()
    assert t["global"]["all"]["imps"] == len(log)
    assert t["global"]["all"]["as_of_day"] == int(log["day"].max())
    assert sum(r["imps"] for r in t["user"].values()) == len(log)
    assert sum(r["clicks"] for r in t["advertiser"].values()) == int(log["click"].sum())


def test_request_features_serving_path(world: tuple[pd.DataFrame, ...]) -> None:
    log, users, ads = world
    store = InProcessStore()
    load_online_store(store, online_tables(log, users, ads))
    new_user = int(users["user_id"].iloc[-1])  # cold start: known, but never shown an ad
    req = pd.DataFrame(
        {
            "user_id": [new_user, 100, new_user],
            "hour": [9, 9, 23],
            "device": ["ios", "web", "ios"],
            "ad_id": [1, 2, 10],
        },
        index=[5, 6, 7],
    )
    X = request_features(store, req)
    assert list(X.columns) == list(FEATURE_COLUMNS) and list(X.index) == [5, 6, 7]
    user_imps, ad_imps = X["d_user_imps"].to_numpy(), X["d_ad_imps"].to_numpy()
    assert user_imps[0] == 0.0 and user_imps[1] > 0
    assert ad_imps[0] > 0 and ad_imps[2] == 0.0
    assert (X["d_position"] == 0).all()
    # row-wise: a request row's features do not depend on the other rows
    alone = request_features(store, req.loc[[6]])
    pd.testing.assert_frame_equal(alone, X.loc[[6]])
    empty = request_features(store, req.iloc[:0])
    assert list(empty.columns) == list(FEATURE_COLUMNS) and len(empty) == 0


def test_request_features_unknown_ids(world: tuple[pd.DataFrame, ...]) -> None:
    log, users, ads = world
    store = InProcessStore()
    load_online_store(store, online_tables(log, users, ads))
    req = pd.DataFrame(
        {"user_id": [100, 7, 8], "hour": [1] * 3, "device": ["ios"] * 3, "ad_id": [1, 1, 999]}
    )
    with pytest.raises(UnknownIdError) as info:
        request_features(store, req)
    assert info.value.kind == "user" and info.value.ids == [7, 8]
    assert isinstance(info.value, LookupError) and "7, 8" in str(info.value)
    with pytest.raises(UnknownIdError) as info:
        request_features(store, req.assign(user_id=100))
    assert info.value.kind == "ad" and info.value.ids == [999]
    with pytest.raises(LookupError, match="load_online_store"):
        request_features(InProcessStore(), req.iloc[[0]])


def test_bad_log_names_row_and_field(world: tuple[pd.DataFrame, ...]) -> None:
    log, users, ads = world
    bad = log.copy()
    bad.loc[4, "user_id"] = 31337
    with pytest.raises(DataError) as info:
        offline_features(bad, users, ads)
    assert (info.value.path, info.value.line, info.value.field) == ("log", 5, "user_id")
    with pytest.raises(DataError, match="field 'click'"):
        offline_features(log.drop(columns="click"), users, ads)
    with pytest.raises(DataError, match="duplicate"):
        offline_features(log, pd.concat([users, users.iloc[:1]]), ads)


def test_make_features_is_pure_and_complete() -> None:
    raw = pd.DataFrame({c: [1] for c in RAW_COLUMNS}).assign(
        device="ios", gender="f", country="us", category="food", format="video", bid=0.5
    )
    a = make_features(raw)
    assert list(a.columns) == list(FEATURE_COLUMNS)
    pd.testing.assert_frame_equal(a, make_features(raw.copy()))
    with pytest.raises(DataError, match="field 'user_imps'"):
        make_features(raw.drop(columns="user_imps"))
