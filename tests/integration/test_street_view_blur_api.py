"""The street-view blurring service over HTTP: an image in, the blurred image and boxes out;
corrupt, empty, huge or wrong-type uploads get a 4xx with a message."""

from __future__ import annotations

import base64
import io
from collections.abc import Callable
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image
from starlette.types import ASGIApp
from tiny_runs import street_view_blur_run

from mlsd.api.main import create_app
from mlsd.api.routes.street_view_blur import make_served_system
from mlsd.settings import Settings
from mlsd.systems.street_view_blur.world import StreetConfig, StreetWorld
from mlsd.world import Scale

BLUR = "/v1/street-view-blur/blur"
Server = Callable[[ASGIApp], str]


def encode(arr: np.ndarray, fmt: str = "PNG") -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format=fmt)
    return buf.getvalue()


@pytest.fixture(scope="module")
def scene() -> np.ndarray:
    cfg = StreetConfig.for_scale(Scale.TINY).with_(n_test=1)
    return StreetWorld(Scale.TINY, 3, cfg).labelled("test").images[0][..., ::-1]  # RGB


@pytest.fixture(scope="module")
def base_url(tmp_path_factory: pytest.TempPathFactory, module_live_server: Server) -> str:
    run = street_view_blur_run(tmp_path_factory.mktemp("svb-run"))
    settings = Settings()
    return module_live_server(create_app(settings, [make_served_system(run, settings)]))


def test_png_in_blurred_png_and_boxes_out(base_url: str, scene: np.ndarray) -> None:
    r = httpx.post(
        f"{base_url}{BLUR}", content=encode(scene), headers={"content-type": "image/png"}
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["model"] == "centernet" and (body["width"], body["height"]) == (128, 96)
    out = np.asarray(Image.open(io.BytesIO(base64.b64decode(body["image_png_base64"]))))
    assert out.shape == scene.shape
    for b in body["boxes"]:
        assert b["label"] in ("face", "plate") and b["score"] >= 0.3
    changed = (out != scene).any(axis=2)
    assert changed.any() == bool(body["boxes"])  # pixels change only where something was blurred
    assert set(body["timings_ms"]) == {"detect", "blur"}


def test_jpeg_and_multipart_uploads_of_any_size(base_url: str, scene: np.ndarray) -> None:
    big = np.repeat(np.repeat(scene, 3, axis=0), 3, axis=1)
    r = httpx.post(
        f"{base_url}{BLUR}", content=encode(big, "JPEG"), headers={"content-type": "image/jpeg"}
    )
    assert r.status_code == 200 and r.json()["width"] == 384
    r = httpx.post(f"{base_url}{BLUR}", files={"image": ("s.png", encode(scene), "image/png")})
    assert r.status_code == 200, r.text


@pytest.mark.parametrize(
    ("content", "ctype", "status", "message"),
    [
        (b"{}", "application/json", 415, "content type"),
        (b"", "image/png", 400, "empty"),
        (b"\x89PNG\r\n\x1a\n garbage", "image/png", 400, "cannot decode"),
        (encode(np.zeros((4, 5000, 3), np.uint8)), "image/png", 413, "too large"),
        (b"\x00" * (8 * 1024 * 1024 + 10_000), "image/png", 413, ""),
    ],
)
def test_bad_uploads_get_4xx(
    base_url: str, content: bytes, ctype: str, status: int, message: str
) -> None:
    r = httpx.post(f"{base_url}{BLUR}", content=content, headers={"content-type": ctype})
    assert r.status_code == status, r.text
    assert message in r.json()["error"]


def test_reload_swaps_the_detector(base_url: str) -> None:
    r = httpx.post(f"{base_url}/v1/street-view-blur/reload")
    assert r.status_code == 200 and r.json()["version"] == 2
    assert r.json()["thresholds"] == [0.3, 0.3]


def test_serve_refuses_a_run_without_artifacts(tmp_path: Path) -> None:
    from mlsd.serving import ServingArtifactError

    with pytest.raises(ServingArtifactError):
        make_served_system(tmp_path, Settings())
