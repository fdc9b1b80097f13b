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
from mlsd.systems.event_rec.datasets import challenge_features, read_challenge

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
    assert data.test.any() and not data.test.all()
    assert np.isfinite(data.X.to_numpy()).all()
    assert data.X["d_friends_yes"].max() > 0


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
        "lightgbm_pointwise",
        "lightgbm_lambdarank",
    ):
        assert 0.0 <= m["models"][name]["offline"]["map@200"] <= 1.0
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
