"""The visual-search service over HTTP: uploads in, top-k ids out, bad uploads get 4xx."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image
from starlette.types import ASGIApp

from mlsd.api.main import create_app
from mlsd.api.routes import served_system
from mlsd.api.routes.visual_search import make_served_system
from mlsd.api.uploads import MAX_REQUEST_BYTES
from mlsd.index import VectorIndex
from mlsd.serving import ServingArtifactError
from mlsd.settings import Settings
from mlsd.systems import get_system
from mlsd.systems.visual_search.model import CNNEncoder
from mlsd.systems.visual_search.serving import (
    VisualSearcher,
    load_scorer,
    load_searcher,
    save_serving_artifacts,
)
from mlsd.systems.visual_search.serving_ingest import index_folder
from mlsd.systems.visual_search.world import VisualSearchWorld, VisualWorldConfig
from mlsd.world import Scale

SEARCH = "/v1/visual-search/search"
Server = Callable[[ASGIApp], str]


def encode(arr: np.ndarray, fmt: str = "PNG") -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format=fmt)
    return buf.getvalue()


@pytest.fixture(scope="module")
def world_images() -> tuple[np.ndarray, np.ndarray]:
    cfg = VisualWorldConfig.for_scale(Scale.TINY).with_(
        n_train_products=4, n_eval_products=8, photos_per_product=3
    )
    w = VisualSearchWorld(Scale.TINY, 0, cfg)
    pids, idx = w.catalog("eval")
    return w.photos(pids, idx), pids


def write_run(run_dir: Path, images: np.ndarray, pids: np.ndarray) -> Path:
    enc = CNNEncoder(dim=16, width=4, train_steps=0).fit(images, pids)
    ids = np.arange(len(images)) + 100
    index = VectorIndex.build("flat", enc.encode(images), ids)
    labels = {int(i): f"product-{int(p)}" for i, p in zip(ids, pids, strict=True)}
    save_serving_artifacts(run_dir / "artifacts", enc, "untrained_cnn", index, 32, labels)
    (run_dir / "metrics.json").write_text("{}")
    return run_dir


@pytest.fixture(scope="module")
def run_dir(
    world_images: tuple[np.ndarray, np.ndarray], tmp_path_factory: pytest.TempPathFactory
) -> Path:
    return write_run(tmp_path_factory.mktemp("vs-run"), *world_images)


@pytest.fixture(scope="module")
def base_url(run_dir: Path, module_live_server: Server) -> str:
    settings = Settings()
    return module_live_server(create_app(settings, [make_served_system(run_dir, settings)]))


def test_png_body_returns_the_image_itself_first(
    base_url: str, world_images: tuple[np.ndarray, np.ndarray]
) -> None:
    images, pids = world_images
    r = httpx.post(
        f"{base_url}{SEARCH}?k=5", content=encode(images[4]), headers={"content-type": "image/png"}
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["model"] == "untrained_cnn" and body["index"] == "flat" and body["k"] == 5
    res = body["results"]
    assert len(res) == 5 and res[0]["id"] == 104 and res[0]["score"] > 0.99
    assert res[0]["label"] == f"product-{int(pids[4])}"
    assert [x["score"] for x in res] == sorted((x["score"] for x in res), reverse=True)
    assert set(body["timings_ms"]) == {"decode_embed", "search", "total"}


def test_jpeg_and_multipart_uploads(
    base_url: str, world_images: tuple[np.ndarray, np.ndarray]
) -> None:
    img = world_images[0][2]
    r = httpx.post(
        f"{base_url}{SEARCH}", content=encode(img, "JPEG"), headers={"content-type": "image/jpeg"}
    )
    assert r.status_code == 200 and len(r.json()["results"]) == 10
    r = httpx.post(f"{base_url}{SEARCH}?k=3", files={"image": ("q.png", encode(img), "image/png")})
    assert r.status_code == 200, r.text
    assert r.json()["results"][0]["id"] == 102


@pytest.mark.parametrize(
    ("content", "ctype", "status", "message"),
    [
        (b"{}", "application/json", 415, "content type"),
        (b"abc", None, 415, "content type"),
        (b"", "image/png", 400, "empty"),
        (b"\x89PNG\r\n\x1a\n garbage", "image/png", 400, "cannot decode"),
        (encode(np.zeros((4, 5000, 3), np.uint8)), "image/png", 413, "too large"),
    ],
)
def test_bad_uploads_get_4xx(
    base_url: str, content: bytes, ctype: str | None, status: int, message: str
) -> None:
    headers = {"content-type": ctype} if ctype else {}
    r = httpx.post(f"{base_url}{SEARCH}", content=content, headers=headers)
    assert r.status_code == status, r.text
    assert message in r.json()["error"]


def test_oversized_body_and_bad_k_and_bad_multipart(base_url: str) -> None:
    big = b"\x00" * (8 * 1024 * 1024 + 10_000)
    r = httpx.post(f"{base_url}{SEARCH}", content=big, headers={"content-type": "image/png"})
    assert r.status_code == 413
    r = httpx.post(f"{base_url}{SEARCH}?k=0", content=b"x", headers={"content-type": "image/png"})
    assert r.status_code == 422 and "k" in r.json()["error"]
    r = httpx.post(f"{base_url}{SEARCH}", files={"other": ("q.png", b"x", "image/png")})
    assert r.status_code == 422 and "image" in r.json()["error"]
    r = httpx.post(f"{base_url}{SEARCH}", files={"image": ("q.txt", b"x", "text/plain")})
    assert r.status_code == 415
    r = httpx.post(
        f"{base_url}{SEARCH}",
        files={"image": ("q.png", b"x", "image/png")},
        data={"caption": "extra field"},
    )
    assert r.status_code == 422 and "caption" in r.json()["error"]
    huge = b"\x00" * (MAX_REQUEST_BYTES + 1)  # past the route's own limit: refused unread
    r = httpx.post(f"{base_url}{SEARCH}", content=huge, headers={"content-type": "image/png"})
    assert r.status_code == 413 and r.json()["error"].startswith("request body exceeds")


def test_keys_guard_search_and_reload(run_dir: Path, live_server: Server) -> None:
    settings = Settings(api_keys={"adm": "admin", "rd": "read"})
    url = live_server(create_app(settings, [make_served_system(run_dir, settings)]))
    png = {"content-type": "image/png"}
    body = encode(np.zeros((8, 8, 3), np.uint8))
    assert httpx.post(f"{url}{SEARCH}", content=body, headers=png).status_code == 401
    r = httpx.post(f"{url}{SEARCH}", content=body, headers={**png, "X-API-Key": "rd"})
    assert r.status_code == 200, r.text
    reload = f"{url}/v1/visual-search/reload"
    assert httpx.post(reload, headers={"X-API-Key": "rd"}).status_code == 403
    assert httpx.post(reload, headers={"X-API-Key": "adm"}).json()["version"] == 2


def test_index_folder_then_reload_makes_new_images_searchable(
    world_images: tuple[np.ndarray, np.ndarray], tmp_path: Path, live_server: Server
) -> None:
    images, pids = world_images
    run = write_run(tmp_path / "run", images[:10], pids[:10])
    folder = tmp_path / "new"
    (folder / "sub").mkdir(parents=True)
    for i in range(10, 14):
        (folder / "sub" / f"img{i}.png").write_bytes(encode(images[i]))
    (folder / "notes.txt").write_text("not an image, ignored")
    settings = Settings()
    url = live_server(create_app(settings, [make_served_system(run, settings)]))
    seen: list[tuple[int, int]] = []
    result = index_folder(folder, run, batch_size=3, progress=lambda d, t: seen.append((d, t)))
    assert result.indexed == 4 and result.index_size == 14 and result.first_id == 110
    assert seen == [(3, 4), (4, 4)]
    meta = json.loads((run / "artifacts" / "serving.json").read_text())
    assert meta["index_size"] == 14
    r = httpx.post(f"{url}/v1/visual-search/reload")
    assert r.status_code == 200 and r.json()["index_size"] == 14
    r = httpx.post(
        f"{url}{SEARCH}?k=1", content=encode(images[12]), headers={"content-type": "image/png"}
    )
    top = r.json()["results"][0]
    assert top["id"] == 112 and top["label"] == "sub/img12.png"


def test_index_folder_bad_file_and_skip(
    world_images: tuple[np.ndarray, np.ndarray], tmp_path: Path
) -> None:
    from mlsd.data import DataError

    images, pids = world_images
    run = write_run(tmp_path / "run", images[:5], pids[:5])
    folder = tmp_path / "new"
    folder.mkdir()
    (folder / "a.png").write_bytes(encode(images[6]))
    (folder / "b.png").write_bytes(b"broken")
    with pytest.raises(DataError, match=r"b\.png"):
        index_folder(folder, run)
    res = index_folder(folder, run, skip_bad=True, replace=True)
    assert res.indexed == 1 and res.index_size == 1 and res.skipped[0].endswith("b.png")


def test_missing_artifacts_are_named(tmp_path: Path) -> None:
    with pytest.raises(ServingArtifactError, match=r"serving\.json"):
        load_searcher(tmp_path)
    with pytest.raises(ServingArtifactError, match=r"artifacts/serving\.json"):
        load_scorer(tmp_path, Settings())


def test_registry_loads_the_scorer_and_the_router(
    run_dir: Path, world_images: tuple[np.ndarray, np.ndarray]
) -> None:
    settings = Settings()
    info = get_system("visual-search")
    scorer = info.load_scorer(run_dir, settings)
    assert isinstance(scorer, VisualSearcher) and scorer.model_name == "untrained_cnn"
    assert scorer.search_images(world_images[0][:2], 1)[1][:, 0].tolist() == [100, 101]
    # a bare artifacts folder works as well as the run directory
    assert len(load_scorer(run_dir / "artifacts", settings).index) == len(world_images[0])
    served = served_system(info, run_dir, settings, load=False)
    assert served.name == "visual-search" and not served.ready()
    paths = {getattr(r, "path", "") for r in served.router.routes}
    assert paths == {"/v1/visual-search/search", "/v1/visual-search/reload"}


def test_running_the_system_imports_no_http() -> None:
    code = (
        "import sys; import mlsd.systems.visual_search.system, mlsd.systems.visual_search.serving;"
        " import mlsd.systems.visual_search.serving_ingest;"
        " bad = [m for m in ('fastapi', 'starlette', 'uvicorn') if m in sys.modules];"
        " assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
