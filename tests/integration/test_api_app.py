"""The generic app factory behind a real uvicorn server: ops routes, errors, metrics over HTTP."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import httpx
import numpy as np
from fastapi import APIRouter
from pydantic import BaseModel
from starlette.types import ASGIApp

from mlsd.api.deps import ApiError, ModelSlot, Observer, ServedSystem
from mlsd.api.main import create_app
from mlsd.settings import Settings


class ScaleIn(BaseModel):
    x: float


def scale_system(slot: ModelSlot[float]) -> ServedSystem:
    router = APIRouter(prefix="/v1/scale")

    @router.post("/score")
    def score(body: ScaleIn, observe: Observer) -> dict[str, float]:
        if body.x < 0:
            raise ApiError(400, "x must be non-negative")
        y = slot.get() * body.x
        observe("scale", np.array([y]))
        return {"y": y}

    @router.post("/boom")
    def boom() -> dict[str, str]:
        raise RuntimeError("a bug in a handler")

    return ServedSystem(name="scale", router=router, ready=lambda: slot.ready)


def test_live_app_ops_routes_and_metrics(live_server: Callable[[ASGIApp], str]) -> None:
    slot: ModelSlot[float] = ModelSlot()
    base = live_server(create_app(Settings(), [scale_system(slot)]))
    with httpx.Client(base_url=base, timeout=5.0) as client:
        assert client.get("/healthz").json() == {"status": "ok"}
        assert client.get("/readyz").status_code == 503
        slot.swap(0.5)
        assert client.get("/readyz").status_code == 200
        assert client.post("/v1/scale/score", json={"x": 0.4}).json() == {"y": 0.2}
        bad = client.post("/v1/scale/score", json={"x": -1})
        assert bad.status_code == 400 and bad.json() == {"error": "x must be non-negative"}
        wrong_type = client.post("/v1/scale/score", json={"x": "abc"})
        assert wrong_type.status_code == 422 and "x:" in wrong_type.json()["error"]
        crash = client.post("/v1/scale/boom")
        assert crash.status_code == 500 and crash.json() == {"error": "internal server error"}
        assert client.get("/docs").status_code == 200
        assert client.get("/openapi.json").json()["info"]["title"] == "mlsd"
        metrics = client.get("/metrics")
    assert metrics.headers["content-type"].startswith("text/plain")
    text = metrics.text
    assert 'mlsd_requests_total{method="POST",route="/v1/scale/score",status="200"} 1.0' in text
    assert 'mlsd_requests_total{method="POST",route="/v1/scale/score",status="400"} 1.0' in text
    assert 'mlsd_requests_total{method="POST",route="/v1/scale/boom",status="500"} 1.0' in text
    assert 'mlsd_requests_total{method="GET",route="/readyz",status="503"} 1.0' in text
    assert 'mlsd_predictions_count{system="scale"} 1.0' in text
    assert "mlsd_request_latency_seconds_bucket" in text


# methods the HTTP parsers accept (httptools knows a fixed list; h11 any token) and no route serves
UNROUTED_METHODS = (
    "PURGE",
    "MKCOL",
    "PROPFIND",
    "PROPPATCH",
    "LOCK",
    "UNLOCK",
    "COPY",
    "MOVE",
    "SEARCH",
    "REPORT",
    "MKACTIVITY",
    "CHECKOUT",
    "MERGE",
    "NOTIFY",
    "SUBSCRIBE",
    "UNSUBSCRIBE",
    "LINK",
    "UNLINK",
    "ACL",
    "BIND",
    "UNBIND",
    "REBIND",
    "MKCALENDAR",
)


def test_live_junk_requests_keep_metrics_bounded_and_big_bodies_get_413(
    live_server: Callable[[ASGIApp], str],
) -> None:
    slot: ModelSlot[float] = ModelSlot(0.5)
    settings = Settings(api_keys={"k": "read"}, max_body_bytes=64 * 1024)
    base = live_server(create_app(settings, [scale_system(slot)]))
    key = {"X-API-Key": "k"}
    rng = np.random.default_rng(7)
    with httpx.Client(base_url=base, timeout=5.0, headers=key) as client:

        def metric_lines() -> int:
            return len(client.get("/metrics").text.splitlines())

        def junk(n: int) -> None:
            for i in range(n):
                method = str(rng.choice(UNROUTED_METHODS))
                assert client.request(method, f"/x/{i}/{rng.integers(1 << 40)}").status_code == 404
                assert client.request(method, "/v1/scale/score").status_code == 405
                assert client.get(f"/junk?id={i}", headers={"X-API-Key": "bad"}).status_code == 401

        # a method no HTTP parser knows is refused before the app (httptools: 400; h11: 404)
        garbage = client.request("NJKBH", "/v1/scale/score").status_code
        assert garbage in (400, 404, 405)
        metric_lines()
        junk(25)
        after_25 = metric_lines()
        junk(250)  # 750 junk requests in all
        assert metric_lines() == after_25
        declared = client.post(
            "/v1/scale/score",
            content=b" " * (64 * 1024 + 1),
            headers={"content-type": "application/json"},
        )
        assert declared.status_code == 413
        assert declared.json() == {"error": f"request body exceeds {64 * 1024} bytes"}

        def stream() -> Iterator[bytes]:  # chunked, no Content-Length: cut off at the limit
            yield b'{"x": 1'
            for _ in range(100):  # 100 KB: fits the loopback socket buffers, no broken pipe
                yield b" " * 1000
            yield b"}"

        chunked = client.post(
            "/v1/scale/score", content=stream(), headers={"content-type": "application/json"}
        )
        assert chunked.status_code == 413
        assert client.post("/v1/scale/score", json={"x": 2.0}).json() == {"y": 1.0}
