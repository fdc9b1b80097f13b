"""The video-search service end to end: a tiny run directory behind a live uvicorn."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest
from starlette.types import ASGIApp
from tiny_runs import video_search_run

from mlsd.api.main import create_app
from mlsd.api.routes.video_search import FRAME_VALUES, make_served_system
from mlsd.settings import Settings

Server = Callable[[ASGIApp], str]
SEARCH = "/v1/video-search/search"


@pytest.fixture(scope="module")
def base_url(tmp_path_factory: pytest.TempPathFactory, module_live_server: Server) -> str:
    run = video_search_run(tmp_path_factory.mktemp("video-search"))
    settings = Settings()
    return module_live_server(create_app(settings, [make_served_system(run, settings)]))


def test_a_search_returns_ranked_videos_with_stage_timings(base_url: str) -> None:
    r = httpx.get(base_url + SEARCH, params={"q": "guitar chords", "k": 5})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["ranker"] == "fusion" and 0 < len(body["hits"]) <= 5
    assert set(body["timings_ms"]) >= {"encode", "text", "visual", "fusion", "rerank", "total"}
    assert len({h["video_id"] for h in body["hits"]}) == len(body["hits"])


@pytest.mark.parametrize(
    ("q", "status", "says"),
    [
        ("", 422, "at least 1"),
        ("x" * 201, 422, "at most 200"),
        ("   ", 422, "should match pattern"),
        ("!!! ???", 422, "should match pattern"),
        ("\x01\x02", 422, "should match pattern"),
    ],
)
def test_bad_queries_get_a_4xx_with_a_message(
    base_url: str, q: str, status: int, says: str
) -> None:
    r = httpx.get(base_url + SEARCH, params={"q": q})
    assert r.status_code == status, r.text
    assert says in r.text


def test_a_new_video_is_found_without_a_restart(base_url: str) -> None:
    r = httpx.post(
        base_url + "/v1/video-search/videos",
        json={"title": "quokka zanzibar", "tags": ["quokka"], "frames": [0.1] * FRAME_VALUES},
    )
    assert r.status_code == 200, r.text
    vid = r.json()["video_id"]
    hits = httpx.get(base_url + SEARCH, params={"q": "quokka"}).json()["hits"]
    assert hits[0]["video_id"] == vid
    bad = httpx.post(base_url + "/v1/video-search/videos", json={"title": "x", "frames": [1.0]})
    assert bad.status_code == 422 and "frames" in bad.text


def test_reload_swaps_the_searcher(base_url: str) -> None:
    r = httpx.post(base_url + "/v1/video-search/reload")
    assert r.status_code == 200 and r.json()["version"] == 2
