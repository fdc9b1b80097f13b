"""The harmful-content service behind a live uvicorn: text, images, authors, bad input, reload."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx
import numpy as np
import pytest
from starlette.types import ASGIApp
from tiny_runs import harmful_content_run

from mlsd.api.main import create_app
from mlsd.api.routes.harmful_content import make_served_system
from mlsd.settings import Settings
from mlsd.systems.harmful_content.serving import encode_png

Server = Callable[[ASGIApp], str]
ROUTE = "/v1/harmful-content/classify"
IMAGE_ROUTE = "/v1/harmful-content/classify-with-image"
CLASSES = {"hate", "violence", "sexual", "spam", "self_harm"}


@pytest.fixture(scope="module")
def base_url(tmp_path_factory: pytest.TempPathFactory, module_live_server: Server) -> str:
    run = harmful_content_run(tmp_path_factory.mktemp("harm"))
    settings = Settings()
    return module_live_server(create_app(settings, [make_served_system(run, settings)]))


def _png() -> bytes:
    img = np.zeros((20, 20, 3), np.uint8)
    img[5:15, 5:15] = 200
    return encode_png(img)


def test_text_only_post_gets_a_probability_per_class_and_an_action(base_url: str) -> None:
    r = httpx.post(f"{base_url}{ROUTE}", json={"text": "free money click here"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body["probabilities"]) == CLASSES
    assert all(0 <= v <= 1 for v in body["probabilities"].values())
    assert body["action"] in ("remove", "review", "demote", "allow") and body["reason"]
    assert body["model"] == "early_multi_task" and body["timings_ms"]["total"] > 0


def test_image_author_and_engagement_change_the_scores(base_url: str) -> None:
    plain = httpx.post(f"{base_url}{ROUTE}", json={"text": "my dog"}).json()
    full = httpx.post(
        f"{base_url}{IMAGE_ROUTE}",
        data={"text": "my dog", "author_id": "3", "views_1h": "50", "reports_1h": "4"},
        files={"image": ("a.png", _png(), "image/png")},
    )
    assert full.status_code == 200, full.text
    assert full.json()["probabilities"] != plain["probabilities"]
    unknown = httpx.post(f"{base_url}{ROUTE}", json={"text": "my dog", "author_id": 10**12})
    assert unknown.status_code == 200


@pytest.mark.parametrize(
    ("body", "status", "needle"),
    [
        ({"text": "x" * 10_001}, 422, "text"),
        ({"text": "x", "author_id": 2**60}, 422, "author_id"),
        ({"text": "x", "engagement": {"views_1h": -1}}, 422, "views_1h"),
        ({"author_id": 3}, 422, "text"),
        ({"text": "x", "colour": "red"}, 422, "colour"),
    ],
)
def test_bad_requests_get_clear_errors(base_url: str, body: dict, status: int, needle: str) -> None:
    r = httpx.post(f"{base_url}{ROUTE}", json=body)
    assert r.status_code == status, r.text
    assert needle in r.text


@pytest.mark.parametrize(
    ("data", "image", "status", "needle"),
    [
        ({"text": "x"}, (b"GIF89a....", "image/gif"), 415, "image/gif"),
        ({"text": "x", "author_id": "abc"}, None, 422, "author_id"),
        ({"text": "x", "views_1h": "-3"}, None, 422, "views_1h"),
        ({"text": "x", "colour": "red"}, None, 422, "colour"),
        ({}, None, 422, "text"),
    ],
)
def test_bad_uploads_get_clear_errors(
    base_url: str, data: dict, image: tuple[bytes, str] | None, status: int, needle: str
) -> None:
    content, ctype = image or (_png(), "image/png")
    r = httpx.post(f"{base_url}{IMAGE_ROUTE}", data=data, files={"image": ("a", content, ctype)})
    assert r.status_code == status, r.text
    assert needle in r.text
    assert httpx.post(f"{base_url}{IMAGE_ROUTE}", json={"text": "x"}).status_code == 415


def test_an_undecodable_image_is_a_400_naming_the_field(base_url: str) -> None:
    for payload in (b"GIF89a....", b"\x89PNG\r\n\x1a\n" + b"\x00" * 40):
        r = httpx.post(
            f"{base_url}{IMAGE_ROUTE}",
            data={"text": "free money"},
            files={"image": ("a.png", payload, "image/png")},
        )
        assert r.status_code == 400, r.text
        assert "image" in r.text and ("PNG or JPEG" in r.text or "decoded" in r.text), r.text
    good = httpx.post(
        f"{base_url}{IMAGE_ROUTE}",
        data={"text": "free money", "author_id": "3.0"},
        files={"image": ("a.png", _png(), "image/png")},
    ).json()
    assert good["image_used"] is True and good["image_error"] is None


def test_reload_swaps_the_model(base_url: str) -> None:
    r = httpx.post(f"{base_url}/v1/harmful-content/reload")
    assert r.status_code == 200, r.text
    assert r.json()["version"] == 2


def test_served_scorer_matches_the_artifacts(tmp_path: Path) -> None:
    from mlsd.systems.harmful_content.serving import Post, load_scorer

    run = harmful_content_run(tmp_path / "run")
    scorer = load_scorer(run)
    a = scorer.classify(Post("free money"))
    b = scorer.classify(Post("free money"))
    assert a.probabilities == b.probabilities
    assert scorer.decide(np.ones(5))[0] in ("remove", "review", "demote", "allow")
    assert scorer.decide(np.zeros(5))[0] in ("demote", "allow")


def test_classify_posts_command_writes_every_post(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from mlsd.cli import app

    run = harmful_content_run(tmp_path / "run")
    (tmp_path / "a.png").write_bytes(_png())
    posts = tmp_path / "posts.csv"
    posts.write_text('text,image,author_id\n"free money\nnow",a.png,3\nmy dog,,\n,,7\n')
    out = tmp_path / "out.csv"
    args = ["classify-posts", str(posts), "--run", str(run), "--output", str(out)]
    result = CliRunner().invoke(app, [*args, "--batch-size", "2"])
    assert result.exit_code == 0, result.output
    import pandas as pd

    frame = pd.read_csv(out, keep_default_na=False)
    assert len(frame) == 3 and {f"p_{c}" for c in CLASSES} <= set(frame.columns)
    assert set(frame["action"]) <= {"remove", "review", "demote", "allow"}
    posts.write_text("text,image\nhello,missing.png\n")
    bad = CliRunner().invoke(app, [*args])
    assert bad.exit_code == 2 and "missing.png" in bad.output
    assert "posts.csv:2: field 'image'" in bad.output
