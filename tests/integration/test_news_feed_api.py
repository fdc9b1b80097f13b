"""The news-feed service end to end: a tiny world's run directory behind a live uvicorn."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest
from starlette.types import ASGIApp
from tiny_runs import news_feed_run

from mlsd.api.main import create_app
from mlsd.api.routes.news_feed import make_served_system
from mlsd.settings import Settings

Server = Callable[[ASGIApp], str]
FEED = "/v1/news-feed/users/{}/feed"


@pytest.fixture(scope="module")
def base_url(tmp_path_factory: pytest.TempPathFactory, module_live_server: Server) -> str:
    run = news_feed_run(tmp_path_factory.mktemp("news-feed"))
    settings = Settings()
    return module_live_server(create_app(settings, [make_served_system(run, settings)]))


def _user_with_candidates(base_url: str) -> dict[str, object]:
    for u in range(60):
        out = httpx.get(base_url + FEED.format(u), params={"k": 50}).json()
        if out["candidates"] >= 5:
            return dict(out)
    raise AssertionError("no user of the tiny world has candidates")


def test_a_feed_with_heads_scores_and_stage_timings(base_url: str) -> None:
    out = _user_with_candidates(base_url)
    assert out["model"] == "multi_task"
    posts = out["posts"]
    assert isinstance(posts, list) and len(posts) == min(50, int(str(out["candidates"])))
    assert set(posts[0]["heads"]) == {"click", "like", "comment", "share", "hide", "block", "dwell"}
    assert set(out["timings_ms"]) == {"retrieval", "features", "scoring", "reranking", "total"}  # type: ignore[arg-type]
    authors = [p["author_id"] for p in posts[:10]]
    if len(set(p["author_id"] for p in posts)) >= 5:
        assert max(authors.count(a) for a in authors) <= 2  # author diversity


def test_a_published_post_is_retrievable_without_a_restart(base_url: str) -> None:
    out = _user_with_candidates(base_url)
    author = out["posts"][0]["author_id"]  # type: ignore[index]
    r = httpx.post(
        base_url + "/v1/news-feed/posts",
        json={"author_id": author, "topic": "tech", "media": "video"},
    )
    assert r.status_code == 200, r.text
    post_id = r.json()["post_id"]
    again = httpx.get(base_url + FEED.format(out["user_id"]), params={"k": 100}).json()
    assert post_id in [p["post_id"] for p in again["posts"]]
    assert again["candidates"] == int(str(out["candidates"])) + 1


def test_a_flagged_post_is_demoted(base_url: str) -> None:
    out = _user_with_candidates(base_url)
    top = out["posts"][0]["post_id"]  # type: ignore[index]
    assert httpx.post(base_url + f"/v1/news-feed/posts/{top}/flag").status_code == 200
    again = httpx.get(base_url + FEED.format(out["user_id"]), params={"k": 100}).json()
    ranks = {p["post_id"]: i for i, p in enumerate(again["posts"])}
    assert ranks[top] > 0 and again["posts"][ranks[top]]["flagged"]


def test_unknown_ids_are_a_404_and_bad_parameters_a_422(base_url: str) -> None:
    r = httpx.get(base_url + FEED.format(123456))
    assert r.status_code == 404 and "unknown user 123456" in r.json()["error"]
    assert httpx.post(base_url + "/v1/news-feed/posts/999999/flag").status_code == 404
    r = httpx.post(
        base_url + "/v1/news-feed/posts",
        json={"author_id": 10**9, "topic": "tech", "media": "text"},
    )
    assert r.status_code == 404
    assert (
        httpx.post(
            base_url + "/v1/news-feed/posts", json={"author_id": 1, "topic": "x", "media": "text"}
        ).status_code
        == 422
    )
    for params in ({"k": 0}, {"k": 1000}, {"k": "x"}):
        assert httpx.get(base_url + FEED.format(1), params=params).status_code == 422


def test_reload_swaps_the_scorer(base_url: str) -> None:
    r = httpx.post(base_url + "/v1/news-feed/reload")
    assert r.status_code == 200 and r.json()["version"] == 2
