"""The event-rec service end to end: a tiny world's run directory behind a live uvicorn."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx
import numpy as np
import pytest
from starlette.types import ASGIApp

from mlsd.api.main import create_app
from mlsd.api.routes.event_rec import make_served_system
from mlsd.settings import Settings
from mlsd.systems.event_rec.features import Platform, daily_states, impression_features
from mlsd.systems.event_rec.model import LambdaRank
from mlsd.systems.event_rec.serving import save_serving_artifacts, world_tables
from mlsd.systems.event_rec.world import EventRecWorld
from mlsd.systems.event_rec.world_config import DAY_S, EventWorldConfig
from mlsd.world import Scale

Server = Callable[[ASGIApp], str]
EVENTS = "/v1/event-rec/users/{}/events"


def event_rec_run(run: Path) -> Path:
    """A tiny run directory: four logged days, a quickly fitted LambdaRank, the tables."""
    cfg = EventWorldConfig.for_scale(Scale.TINY).with_(n_days=4, test_days=1, ab_days=1)
    w = EventRecWorld(Scale.TINY, 0, cfg)
    lg = w.log()
    tables = world_tables(w, lg)
    platform = Platform(tables.users, tables.events, tables.hoods)
    states = daily_states(
        platform, lg, list(range(cfg.n_days)), cfg.n_hosts, w.friends, w.follows, cfg.n_slots
    )
    X = impression_features(platform, states, lg.impressions)
    y = lg.impressions["register"].to_numpy(np.int64)
    model = LambdaRank(n_estimators=10, random_state=0).fit(
        X, y, lg.impressions["session_id"].to_numpy()
    )
    save_serving_artifacts(
        run / "artifacts",
        model,
        "lightgbm_lambdarank",
        tables,
        cfg.n_days * DAY_S,
        cfg.n_hosts,
        cfg.n_slots,
    )
    (run / "metrics.json").write_text("{}")
    return run


@pytest.fixture(scope="module")
def base_url(tmp_path_factory: pytest.TempPathFactory, module_live_server: Server) -> str:
    run = event_rec_run(tmp_path_factory.mktemp("event-rec"))
    settings = Settings()
    return module_live_server(create_app(settings, [make_served_system(run, settings)]))


def test_a_user_gets_ranked_nearby_events_with_timings(base_url: str) -> None:
    r = httpx.get(base_url + EVENTS.format(5), params={"k": 5})
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["user_id"] == 5 and out["model"] == "lightgbm_lambdarank"
    assert len(out["events"]) == min(5, out["candidates"])
    scores = [e["score"] for e in out["events"]]
    assert scores == sorted(scores, reverse=True)
    assert set(out["timings_ms"]) == {"filtering", "features", "ranking", "total"}


def test_radius_and_point(base_url: str) -> None:
    narrow = httpx.get(base_url + EVENTS.format(5), params={"k": 100, "radius_km": 2}).json()
    wide = httpx.get(base_url + EVENTS.format(5), params={"k": 100, "radius_km": 50}).json()
    assert narrow["candidates"] <= wide["candidates"]
    r = httpx.get(base_url + EVENTS.format(5), params={"lat": 52.5, "lon": 13.3})
    assert r.status_code == 200
    r = httpx.get(base_url + EVENTS.format(5), params={"lat": 52.5})  # home's longitude
    assert r.status_code == 200


def test_unknown_user_is_a_404_with_a_message(base_url: str) -> None:
    r = httpx.get(base_url + EVENTS.format(123456))
    assert r.status_code == 404 and "unknown user 123456" in r.json()["error"]


@pytest.mark.parametrize("params", [{"k": 0}, {"k": 1000}, {"radius_km": -1}, {"k": "x"}])
def test_bad_parameters_are_a_422(base_url: str, params: dict[str, object]) -> None:
    assert httpx.get(base_url + EVENTS.format(5), params=params).status_code == 422


def test_reload_swaps_the_model(base_url: str) -> None:
    r = httpx.post(base_url + "/v1/event-rec/reload")
    assert r.status_code == 200 and r.json()["version"] == 2


def test_served_from_redis_the_answer_is_the_same(
    tmp_path: Path, redis_url: str, live_server: Server
) -> None:
    run = event_rec_run(tmp_path / "run")
    memory = Settings()
    plain = live_server(create_app(memory, [make_served_system(run, memory)]))
    redis = Settings(redis_url=redis_url)
    stored = live_server(create_app(redis, [make_served_system(run, redis)]))
    a = httpx.get(plain + EVENTS.format(7), params={"k": 10}).json()
    b = httpx.get(stored + EVENTS.format(7), params={"k": 10}).json()
    assert a["features_from"] == "memory" and b["features_from"] == "store"
    assert not b["degraded"]
    assert [e["event_id"] for e in a["events"]] == [e["event_id"] for e in b["events"]]
