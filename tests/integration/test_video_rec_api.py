"""The video-rec home-feed service behind a live uvicorn: known users, unseen users, bad input."""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
import torch
from starlette.types import ASGIApp

from mlsd.api.main import create_app
from mlsd.api.routes.video_rec import make_served_system
from mlsd.serving import ServingArtifactError
from mlsd.settings import Settings
from mlsd.systems.video_rec.features import Catalogue
from mlsd.systems.video_rec.model import FitConfig, fit_recommender
from mlsd.systems.video_rec.serving import save_recommender
from mlsd.systems.video_rec.world import VideoRecWorld
from mlsd.systems.video_rec.world_entities import CATEGORIES, VideoWorldConfig
from mlsd.text import make_encoder
from mlsd.world import Scale

Server = Callable[[ASGIApp], str]
CFG = VideoWorldConfig(
    n_users=120, n_videos=160, n_days=3, new_users_per_day=4, new_videos_per_day=8
)


@pytest.fixture(scope="module")
def base_url(tmp_path_factory: pytest.TempPathFactory, module_live_server: Server) -> str:
    torch.set_num_threads(1)
    w = VideoRecWorld(Scale.TINY, 0, config=CFG)
    log = w.log()
    cat = Catalogue(
        w.videos, make_encoder("hashing").encode(w.videos["title"].tolist()), list(CATEGORIES)
    )
    rec, _ = fit_recommender(cat, w.users, log, FitConfig(tower_epochs=2, ranker_trees=20))
    run = tmp_path_factory.mktemp("videorec")
    save_recommender(run / "artifacts", rec, {})
    settings = Settings()
    return module_live_server(create_app(settings, [make_served_system(run, settings)]))


def test_get_known_user_has_k_videos_and_stage_timings(base_url: str) -> None:
    r = httpx.get(f"{base_url}/v1/video-rec/users/3/recommendations", params={"k": 7})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["user_id"] == 3 and not body["cold_start"] and len(body["videos"]) == 7
    assert {"retrieval", "ranking", "reranking", "total"} <= set(body["timings_ms"])
    assert len({v["video_id"] for v in body["videos"]}) == 7
    assert all(v["sources"] and 0 <= v["p_click"] <= 1 for v in body["videos"])


def test_post_unseen_user_with_inline_history(base_url: str) -> None:
    body = {
        "watch_history": [0, 5, 9],
        "age_bucket": "18-24",
        "country": "br",
        "language": "pt",
        "k": 5,
    }
    r = httpx.post(f"{base_url}/v1/video-rec/recommendations", json=body)
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["cold_start"] and len(out["videos"]) == 5
    assert not {v["video_id"] for v in out["videos"]} & {0, 5, 9}


@pytest.mark.parametrize(
    ("method", "path", "payload", "status", "needle"),
    [
        ("get", "/v1/video-rec/users/999999/recommendations", None, 404, "unknown user_id"),
        ("get", "/v1/video-rec/users/3/recommendations?k=0", None, 422, "k"),
        ("get", "/v1/video-rec/users/abc/recommendations", None, 422, "user_id"),
        (
            "post",
            "/v1/video-rec/recommendations",
            {"watch_history": [10**9]},
            404,
            "unknown video ids",
        ),
        ("post", "/v1/video-rec/recommendations", {"watch_history": [2**63]}, 422, "watch_"),
        ("post", "/v1/video-rec/recommendations", {"watch_history": [True]}, 422, "watch_"),
        ("get", f"/v1/video-rec/users/{2**64}/recommendations", None, 422, "user_id"),
        ("post", "/v1/video-rec/recommendations", {"country": "zz"}, 422, "country"),
        ("post", "/v1/video-rec/recommendations", {"bogus": 1}, 422, "bogus"),
    ],
)
def test_bad_requests_are_4xx_with_a_message(
    base_url: str,
    method: str,
    path: str,
    payload: dict[str, object] | None,
    status: int,
    needle: str,
) -> None:
    r = httpx.request(method.upper(), f"{base_url}{path}", json=payload)
    assert r.status_code == status, r.text
    assert needle in r.json()["error"]


def test_reload_swaps_in_the_saved_recommender(base_url: str) -> None:
    before = httpx.get(f"{base_url}/v1/video-rec/users/3/recommendations", params={"k": 5})
    r = httpx.post(f"{base_url}/v1/video-rec/reload")
    assert r.status_code == 200, r.text
    assert r.json()["version"] >= 2 and r.json()["load_ms"] > 0
    after = httpx.get(f"{base_url}/v1/video-rec/users/3/recommendations", params={"k": 5})
    ids = [[v["video_id"] for v in x.json()["videos"]] for x in (before, after)]
    assert ids[0] == ids[1]  # the same artifacts: the same feed


def test_missing_artifacts_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(ServingArtifactError, match=r"artifacts/recommender: serving artifact"):
        make_served_system(tmp_path, Settings())


def test_access_log_names_the_route_and_hashes_the_user_id(
    base_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    def access_lines() -> list[str]:
        return [rec.getMessage() for rec in caplog.records if rec.name == "mlsd.access"]

    with caplog.at_level(logging.INFO, logger="mlsd.access"):
        r = httpx.get(f"{base_url}/v1/video-rec/users/117/recommendations", params={"k": 3})
        assert r.status_code == 200
        # the server thread logs once the response is sent: wait for it (bounded)
        for _ in range(200):
            if access_lines():
                break
            time.sleep(0.01)
    lines = access_lines()
    assert lines, "no access log line"
    pattern = r"GET /v1/video-rec/users/\{user_id\}/recommendations user_id=h:[0-9a-f]{12} 200 "
    assert re.fullmatch(pattern + r"[0-9.]+ms", lines[-1]), lines[-1]  # the raw id is not there
