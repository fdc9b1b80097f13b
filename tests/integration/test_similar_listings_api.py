"""The similar-listings carousel behind a live uvicorn: GET, POST, filters, 404, reload."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx
import numpy as np
import pytest
from starlette.types import ASGIApp

from mlsd.api.main import create_app
from mlsd.api.routes.similar_listings import make_served_system
from mlsd.settings import Settings
from mlsd.systems.similar_listings.model import AttributeSimilarity
from mlsd.systems.similar_listings.serving import (
    ListingVectors,
    build_indexes,
    save_serving_artifacts,
)
from mlsd.systems.similar_listings.serving_availability import (
    Availability,
    Stay,
    simulated_calendar,
)
from mlsd.systems.similar_listings.world import SimilarListingsConfig, SimilarListingsWorld

Server = Callable[[ASGIApp], str]
ADMIN = {"X-API-Key": "admin-key"}
READ = {"X-API-Key": "read-key"}
URL = "/v1/similar-listings"
CALENDAR_NIGHTS = 20


def tiny_run(run: Path) -> Path:
    """A served run of the tiny world's listings with attribute vectors (no training)."""
    cfg = SimilarListingsConfig(n_regions=2, listings_per_region=40, n_days=1)
    w = SimilarListingsWorld("tiny", 0, cfg)
    listings = w.listings.reset_index(drop=True)
    listings.insert(0, "listing_id", np.arange(len(listings), dtype=np.int64) + 1000)
    vectors = AttributeSimilarity().fit(listings).vectors()
    ids = listings["listing_id"].to_numpy()
    indexes = build_indexes(vectors, ids, listings["region"].to_numpy())
    save_serving_artifacts(
        run / "artifacts",
        ListingVectors(ids, vectors, "attributes"),
        listings,
        indexes,
        simulated_calendar(ids, 0, CALENDAR_NIGHTS, seed=0),
    )
    (run / "metrics.json").write_text("{}")
    return run


@pytest.fixture(scope="module")
def base_url(tmp_path_factory: pytest.TempPathFactory, module_live_server: Server) -> str:
    run = tiny_run(tmp_path_factory.mktemp("similar"))
    settings = Settings(api_keys={"admin-key": "admin", "read-key": "read"})
    return module_live_server(create_app(settings, [make_served_system(run, settings)]))


def test_get_similar_listings_of_the_same_region_with_timings(base_url: str) -> None:
    r = httpx.get(f"{base_url}{URL}/listings/1000/similar", params={"k": 5}, headers=READ)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["model"] == "attributes" and body["k"] == 5 and len(body["listings"]) == 5
    assert all(x["region"] == body["region"] == 0 for x in body["listings"])
    assert 1000 not in {x["listing_id"] for x in body["listings"]}
    assert {"lookup", "search", "rerank", "total"} == set(body["timings_ms"])
    scores = [x["score"] for x in body["listings"]]
    assert scores == sorted(scores, reverse=True)


def test_filters_apply(base_url: str) -> None:
    params: dict[str, str | int | float] = {"k": 10, "max_price": 120.0, "min_capacity": 2}
    r = httpx.get(f"{base_url}{URL}/listings/1001/similar", params=params, headers=READ)
    assert r.status_code == 200, r.text
    assert all(x["price"] <= 120 and x["capacity"] >= 2 for x in r.json()["listings"])
    r = httpx.get(f"{base_url}{URL}/listings/1001/similar", params={"type": "castle"}, headers=READ)
    assert r.status_code == 422 and "type" in r.json()["error"]


def test_listings_unavailable_for_the_stay_are_never_returned(base_url: str) -> None:
    ids = np.arange(80) + 1000
    availability = Availability(simulated_calendar(ids, 0, CALENDAR_NIGHTS, seed=0))
    for check_in in (0, 5, 17):
        stay = {"check_in": check_in, "nights": 3}
        r = httpx.get(
            f"{base_url}{URL}/listings/1001/similar", params={"k": 10} | stay, headers=READ
        )
        assert r.status_code == 200, r.text
        got = np.array([x["listing_id"] for x in r.json()["listings"]], np.int64)
        assert len(got) and availability.available(got, Stay(check_in, check_in + 3)).all()
        r = httpx.post(f"{base_url}{URL}/similar", json={"clicked": [1000]} | stay, headers=READ)
        got = np.array([x["listing_id"] for x in r.json()["listings"]], np.int64)
        assert r.status_code == 200
        assert availability.available(got, Stay(check_in, check_in + 3)).all()
    blocked = set(availability_on(availability, 4))
    one = httpx.get(
        f"{base_url}{URL}/listings/1001/similar", params={"check_in": 4, "k": 50}, headers=READ
    )
    assert one.status_code == 200 and blocked
    assert not {x["listing_id"] for x in one.json()["listings"]} & blocked  # nights default 1
    for bad in ({"check_in": 4, "nights": 0}, {"check_in": -1}, {"check_in": 4, "nights": 400}):
        r = httpx.get(f"{base_url}{URL}/listings/1001/similar", params=bad, headers=READ)
        assert r.status_code == 422, bad


def availability_on(availability: Availability, night: int) -> list[int]:
    """The listings of the tiny run blocked on ``night``."""
    ids = np.arange(80) + 1000
    return [int(i) for i in ids[~availability.available(ids, Stay(night, night + 1))]]


def test_session_post_and_unknown_listings(base_url: str) -> None:
    r = httpx.post(f"{base_url}{URL}/similar", json={"clicked": [1000, 1002], "k": 4}, headers=READ)
    assert r.status_code == 200, r.text
    ids = {x["listing_id"] for x in r.json()["listings"]}
    assert len(ids) == 4 and not ids & {1000, 1002}
    r = httpx.get(f"{base_url}{URL}/listings/5/similar", headers=READ)
    assert r.status_code == 404 and "5" in r.json()["error"]
    r = httpx.post(f"{base_url}{URL}/similar", json={"clicked": [1000, 7]}, headers=READ)
    assert r.status_code == 404
    r = httpx.post(f"{base_url}{URL}/similar", json={"clicked": []}, headers=READ)
    assert r.status_code == 422


def test_reload_is_admin_only(base_url: str) -> None:
    assert httpx.post(f"{base_url}{URL}/reload", headers=READ).status_code == 403
    r = httpx.post(f"{base_url}{URL}/reload", headers=ADMIN)
    assert r.status_code == 200 and r.json()["version"] == 2
