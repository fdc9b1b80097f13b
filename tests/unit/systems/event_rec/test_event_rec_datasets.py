"""``--data eventrec:DIR``: the challenge's layout read, featurised, ranked; bad files refused."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from mlsd.cli import app
from mlsd.systems.event_rec.datasets import read_challenge
from mlsd.systems.event_rec.datasets_features import (
    TEST,
    TRAIN,
    VAL,
    _before,
    challenge_features,
    geocode,
    place_table,
)

RefusedRun = Callable[..., str]


def write_challenge(root: Path, seed: int = 0, n_users: int = 40, n_events: int = 60) -> Path:
    """Small files in the challenge's layout; interest follows friends going and distance."""
    r = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    users = 1000 + np.arange(n_users)
    events = 5000 + np.arange(n_events)
    lat = 52.5 + r.normal(0, 0.05, n_events)
    lng = 13.4 + r.normal(0, 0.05, n_events)
    lat_s = [f"{v:.4f}" for v in lat]
    lat_s[3] = ""  # a missing coordinate
    start = pd.Timestamp("2012-11-01", tz="UTC") + pd.to_timedelta(
        r.integers(48, 900, n_events), "h"
    )
    ev = pd.DataFrame(
        {
            "event_id": events,
            "user_id": r.choice(users, n_events),
            "start_time": start.strftime("%Y-%m-%dT%H:%M:%S.000Z"),
            "city": "Berlin",
            "state": "",
            "zip": "",
            "country": "Germany",
            "lat": lat_s,
            "lng": [f"{v:.4f}" for v in lng],
            **{f"c_{i}": r.poisson(1.0, n_events) for i in range(1, 6)},
            "c_other": r.poisson(3.0, n_events),
        }
    )
    ev.to_csv(root / "events.csv", index=False)
    pd.DataFrame(
        {
            "user_id": users,
            "locale": "de_DE",
            "birthyear": [
                str(y) if i % 7 else "None" for i, y in enumerate(r.integers(1960, 2000, n_users))
            ],
            "gender": "male",
            "joinedAt": "2012-10-02T06:40:55.524Z",
            "location": "Berlin",
            "timezone": "60",
        }
    ).to_csv(root / "users.csv", index=False)
    friends = {int(u): set(r.choice(users, 5).tolist()) - {int(u)} for u in users}
    pd.DataFrame(
        {"user": users, "friends": [" ".join(map(str, sorted(friends[int(u)]))) for u in users]}
    ).to_csv(root / "user_friends.csv", index=False)
    yes = {
        int(e): set(r.choice(users, int(r.integers(0, 12)), replace=False).tolist()) for e in events
    }
    pd.DataFrame(
        {
            "event": events,
            "yes": [" ".join(map(str, sorted(yes[int(e)]))) for e in events],
            "maybe": "",
            "invited": "",
            "no": "",
        }
    ).to_csv(root / "event_attendees.csv", index=False)
    rows = []
    t0 = pd.Timestamp("2012-10-20", tz="UTC")
    for u in users:
        for e in r.choice(events, 10, replace=False):
            going = len(friends[int(u)] & yes[int(e)])
            p = 1 / (1 + np.exp(-(-1.5 + 1.2 * going + 0.1 * len(yes[int(e)]))))
            ts = t0 + pd.Timedelta(hours=int(r.integers(0, 240)))
            rows.append((u, e, int(r.random() < 0.1), str(ts), int(r.random() < p), 0))
    cols = ["user", "event", "invited", "timestamp", "interested", "not_interested"]
    pd.DataFrame(rows, columns=cols).to_csv(root / "train.csv", index=False)
    return root


def test_the_layout_reads_and_featurises(tmp_path: Path) -> None:
    files = read_challenge(f"eventrec:{write_challenge(tmp_path / 'in')}")
    assert len(files.train) == 400 and files.events["lat"].isna().sum() == 1
    data = challenge_features(files)
    assert set(np.unique(data.split)) == {TRAIN, VAL, TEST}
    ts = files.train["ts"].to_numpy()
    assert ts[data.split == TRAIN].max() <= ts[data.split == VAL].min()
    assert ts[data.split == VAL].max() <= ts[data.split == TEST].min()
    assert np.isfinite(data.X.to_numpy()).all()
    assert data.X["d_friends_interested"].max() > 0
    assert data.home_from_profile == 1.0  # every user lives in "Berlin", a city of events.csv
    assert data.X["d_same_city"].mean() == 1.0 and data.X["d_age"].max() > 0


def test_before_sums_only_strictly_earlier_rows_of_the_same_key() -> None:
    key = np.array([1, 1, 1, 2, 1])
    ts = np.array([10, 20, 20, 5, 30])
    v = np.array([1.0, 2.0, 4.0, 8.0, 16.0])
    # rows at t=20 do not see each other; key 2 sees nothing of key 1
    assert _before(key, ts, v).tolist() == [0.0, 1.0, 1.0, 0.0, 7.0]


def test_features_are_point_in_time(tmp_path: Path) -> None:
    """Changing every answer at or after a time leaves the features of earlier rows alone."""
    root = write_challenge(tmp_path / "in")
    files = read_challenge(f"eventrec:{root}")
    base = challenge_features(files)
    t = int(np.median(files.train["ts"]))
    late = files.train["ts"].to_numpy() >= t
    tr = files.train.copy()
    tr.loc[late, "interested"] = 1 - tr.loc[late, "interested"]
    tr.loc[late, "invited"] = 1 - tr.loc[late, "invited"]
    files.train = tr
    changed = challenge_features(files)
    early = ~late
    pd.testing.assert_frame_equal(base.X[early], changed.X[early])
    assert not base.X[late].equals(changed.X[late])  # later rows do see earlier answers


def test_a_users_own_snapshot_answer_is_not_a_feature(tmp_path: Path) -> None:
    root = write_challenge(tmp_path / "in")
    files = read_challenge(f"eventrec:{root}")
    base = challenge_features(files).X
    files.attendees = {k: {} for k in files.attendees}  # the snapshot emptied
    assert challenge_features(files).X.equals(base)


def test_locations_are_placed_with_the_events_cities() -> None:
    events = pd.DataFrame(
        {
            "city": ["san francisco", "san francisco", "jakarta", ""],
            "state": ["california", "california", "", ""],
            "country": ["united states", "united states", "indonesia", "indonesia"],
            "lat": [37.7, 37.9, -6.2, -6.0],
            "lng": [-122.4, -122.4, 106.8, 106.6],
        }
    )
    places = place_table(events)
    assert geocode("san francisco california", places) == pytest.approx((37.8, -122.4))
    assert geocode("bandung indonesia", places) == pytest.approx((-6.1, 106.7))
    assert np.isnan(geocode("atlantis", places)[0]) and np.isnan(geocode("", places)[0])


def test_mlsd_run_on_the_files(tmp_path: Path) -> None:
    root = write_challenge(tmp_path / "in")
    out = tmp_path / "run"
    result = CliRunner().invoke(
        app, ["run", "event-rec", "--data", f"eventrec:{root}", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    m = json.loads((out / "metrics.json").read_text())
    assert m["data"]["format"] == "eventrec" and m["oracle"] is None
    for name in (
        "popular_nearby",
        "logistic_regression",
        "mlp",
        "lightgbm_pointwise",
        "lightgbm_lambdarank",
    ):
        assert 0.0 <= m["models"][name]["offline"]["map@200"] <= 1.0
        assert "ndcg@10" in m["models"][name]["validation"]
    assert m["selection"]["chosen_on"] == "validation" and m["chosen_model"] in m["models"]
    assert set(m["data"]["split_rows"]) == {"train", "validation", "test"}
    leak = m["snapshot_leak"]  # the files' interest follows the snapshot's "yes" lists
    assert leak["with_snapshot_map@200"] > leak["point_in_time_map@200"]
    assert {s["step"] for s in m["skipped"]} >= {"serving", "online"}


def _edit(
    file: str, fn: Callable[[pd.DataFrame], pd.DataFrame]
) -> Callable[[Path], tuple[str, None]]:
    def build(root: Path) -> tuple[str, None]:
        write_challenge(root)
        df = pd.read_csv(root / file, dtype=str, keep_default_na=False)
        fn(df).to_csv(root / file, index=False)
        return f"eventrec:{root}", None

    return build


def _both(row: int) -> Callable[[pd.DataFrame], pd.DataFrame]:
    def fn(df: pd.DataFrame) -> pd.DataFrame:
        df.loc[row, ["interested", "not_interested"]] = "1"
        return df

    return fn


def _set(col: str, row: int, value: str) -> Callable[[pd.DataFrame], pd.DataFrame]:
    def fn(df: pd.DataFrame) -> pd.DataFrame:
        df.loc[row, col] = value
        return df

    return fn


@pytest.mark.parametrize(
    ("build", "reason", "where"),
    [
        (
            _edit("train.csv", _set("timestamp", 4, "yesterday-ish")),
            "not a timestamp",
            "/train.csv:6: field 'timestamp'",
        ),
        (
            _edit("train.csv", _set("interested", 2, "2")),
            "is not one of",
            "/train.csv:4: field 'interested'",
        ),
        (
            _edit("train.csv", _set("event", 7, "999999")),
            "not in events.csv",
            "/train.csv:9: field 'event'",
        ),
        (
            _edit("train.csv", _set("user", 0, "77")),
            "not in users.csv",
            "/train.csv:2: field 'user'",
        ),
        (
            _edit("events.csv", _set("lat", 5, "north")),
            "not a number",
            "/events.csv:7: field 'lat'",
        ),
        (
            _edit("events.csv", _set("start_time", 1, "soon")),
            "not a timestamp",
            "/events.csv:3: field 'start_time'",
        ),
        (
            _edit("events.csv", lambda df: df.drop(columns=["lng"])),
            "missing column",
            "/events.csv:1: field 'lng'",
        ),
        (
            _edit("user_friends.csv", _set("friends", 3, "1 2 x")),
            "space-separated",
            "/user_friends.csv:5: field 'friends'",
        ),
        (
            _edit("train.csv", _both(0)),
            "both 1",
            "/train.csv:2: field 'interested'",
        ),
        (
            _edit("users.csv", _set("joinedAt", 2, "last spring")),
            "not a timestamp",
            "/users.csv:4: field 'joinedAt'",
        ),
        (
            _edit("users.csv", _set("birthyear", 5, "23-May")),
            r"not a number in \[1900, 2030\]",
            "/users.csv:7: field 'birthyear'",
        ),
        (
            _edit("users.csv", _set("gender", 1, "robot")),
            "is not one of",
            "/users.csv:3: field 'gender'",
        ),
        (
            _edit("users.csv", _set("timezone", 0, "CET")),
            "not a number",
            "/users.csv:2: field 'timezone'",
        ),
        (
            _edit("users.csv", lambda df: df.drop(columns=["location"])),
            "missing column",
            "/users.csv:1: field 'location'",
        ),
        (
            _edit("users.csv", _set("user_id", 4, "1000")),
            "appears twice",
            "/users.csv:6: field 'user_id'",
        ),
        (
            _edit("events.csv", _set("lng", 2, "200")),
            r"not a number in \[-180, 180\]",
            "/events.csv:4: field 'lng'",
        ),
    ],
)
def test_bad_files_are_refused_with_one_line(
    refused_run: RefusedRun, build: Callable[[Path], tuple[str, None]], reason: str, where: str
) -> None:
    refused_run("event-rec", build, reason, where)


def test_a_missing_file_is_named(refused_run: RefusedRun) -> None:
    def build(root: Path) -> tuple[str, None]:
        write_challenge(root)
        (root / "users.csv").unlink()
        return f"eventrec:{root}", None

    refused_run("event-rec", build, "no such file", "/users.csv")
