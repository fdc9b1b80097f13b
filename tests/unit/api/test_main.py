"""Unit tests of the generic serving frame: ModelSlot, errors, metrics, the app factory."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from fastapi import APIRouter
from fastapi.testclient import TestClient
from pydantic import BaseModel, Field

from mlsd.api.deps import ApiError, ModelSlot, Observer, ServedSystem, validation_message
from mlsd.api.main import create_app
from mlsd.api.metrics import ServingMetrics
from mlsd.settings import Settings


class EchoIn(BaseModel):
    value: float = Field(ge=0.0, le=1.0)
    count: int


def echo_system(slot: ModelSlot[float]) -> ServedSystem:
    router = APIRouter(prefix="/v1/echo")

    @router.post("/score")
    def score(body: EchoIn, observe: Observer) -> dict[str, float]:
        if body.count < 0:
            raise ApiError(404, f"unknown count {body.count}")
        p = slot.get() * body.value
        observe("echo", np.array([p]))
        return {"p": p}

    return ServedSystem(name="echo", router=router, ready=lambda: slot.ready)


def test_model_slot_get_swap_and_ready() -> None:
    slot: ModelSlot[str] = ModelSlot()
    assert not slot.ready and slot.version == 0
    with pytest.raises(ApiError) as err:
        slot.get()
    assert err.value.status_code == 503
    assert slot.swap("a") is None
    assert slot.swap("b") == "a"
    assert slot.ready and slot.get() == "b" and slot.version == 2


def test_model_slot_concurrent_swaps_lose_nothing() -> None:
    slot: ModelSlot[int] = ModelSlot(0)
    replaced: list[int | None] = []
    lock = threading.Lock()

    def worker(start: int) -> None:
        for i in range(start, start + 200):
            old = slot.swap(i)
            with lock:
                replaced.append(old)

    threads = [threading.Thread(target=worker, args=((k + 1) * 1000,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # every value placed was replaced exactly once except the final one: nothing was torn
    placed = {0} | {(k + 1) * 1000 + i for k in range(4) for i in range(200)}
    assert sorted(v for v in replaced if v is not None) == sorted(placed - {slot.get()})
    assert slot.version == 801


def test_validation_message_names_the_field() -> None:
    msg = validation_message(
        [{"loc": ("body", "context", "hour"), "msg": "Input should be less than 24"}]
    )
    assert msg == "invalid request: context.hour: Input should be less than 24"
    bad_json = validation_message([{"loc": ("body", 3), "msg": "x", "type": "json_invalid"}])
    assert "malformed JSON" in bad_json


def test_app_health_ready_and_errors() -> None:
    slot: ModelSlot[float] = ModelSlot()
    client = TestClient(create_app(Settings(), [echo_system(slot)]))
    assert client.get("/healthz").json() == {"status": "ok"}
    not_ready = client.get("/readyz")
    assert not_ready.status_code == 503 and not_ready.json()["systems"] == {"echo": False}
    assert client.post("/v1/echo/score", json={"value": 0.5, "count": 1}).status_code == 503
    slot.swap(0.5)
    assert client.get("/readyz").status_code == 200
    ok = client.post("/v1/echo/score", json={"value": 0.5, "count": 1})
    assert ok.status_code == 200 and ok.json() == {"p": 0.25}

    missing = client.get("/nope")
    assert missing.status_code == 404 and "/nope" in missing.json()["error"]
    api_err = client.post("/v1/echo/score", json={"value": 0.5, "count": -1})
    assert api_err.status_code == 404 and api_err.json() == {"error": "unknown count -1"}
    invalid = client.post("/v1/echo/score", json={"value": 2.0})
    body = invalid.json()
    assert invalid.status_code == 422
    assert "value" in body["error"] and "count" in body["error"]
    assert {tuple(d["loc"]) for d in body["detail"]} == {("body", "value"), ("body", "count")}
    malformed = client.post(
        "/v1/echo/score", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert malformed.status_code == 422 and "malformed JSON" in malformed.json()["error"]
    assert client.get("/v1/echo/score").status_code == 405


def test_metrics_count_requests_by_route_template_and_observe_predictions() -> None:
    slot: ModelSlot[float] = ModelSlot(1.0)
    app = create_app(Settings(), [echo_system(slot)])
    client = TestClient(app)
    for v in (0.01, 0.2, 0.9):
        client.post("/v1/echo/score", json={"value": v, "count": 1})
    client.get("/does/not/exist")
    text = client.get("/metrics").text
    assert 'mlsd_requests_total{method="POST",route="/v1/echo/score",status="200"} 3.0' in text
    assert 'mlsd_requests_total{method="GET",route="unmatched",status="404"} 1.0' in text
    assert 'mlsd_request_latency_seconds_count{route="/v1/echo/score"} 3.0' in text
    assert 'mlsd_predictions_count{system="echo"} 3.0' in text
    assert 'mlsd_predictions_bucket{le="0.1",system="echo"} 1.0' in text


def test_two_apps_in_one_process_keep_separate_metrics() -> None:
    a = TestClient(create_app(Settings(), [echo_system(ModelSlot(1.0))]))
    b = TestClient(create_app(Settings(), [echo_system(ModelSlot(1.0))]))
    a.get("/healthz")
    a.get("/healthz")
    b.get("/healthz")
    assert 'route="/healthz",status="200"} 2.0' in a.get("/metrics").text
    assert 'route="/healthz",status="200"} 1.0' in b.get("/metrics").text


def test_duplicate_system_names_are_refused() -> None:
    slot: ModelSlot[float] = ModelSlot(1.0)
    with pytest.raises(ValueError, match="unique"):
        create_app(Settings(), [echo_system(slot), echo_system(slot)])


def test_observe_predictions_accepts_arrays() -> None:
    metrics = ServingMetrics()
    metrics.observe_predictions("x", np.array([[0.1, 0.2], [0.3, 0.4]]))
    assert b'mlsd_predictions_count{system="x"} 4.0' in metrics.render()


def test_settings_read_env_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLSD_MAX_CANDIDATES", "7")
    monkeypatch.setenv("MLSD_REDIS_URL", "redis://127.0.0.1:1/0")
    settings = Settings()
    assert settings.max_candidates == 7 and settings.redis_url == "redis://127.0.0.1:1/0"
    assert Settings(port=9000).host == "127.0.0.1"


def test_model_slot_reload_swaps_or_keeps_the_previous_object() -> None:
    from mlsd.serving import ServingArtifactError

    slot: ModelSlot[str] = ModelSlot("v1")
    new, load_ms = slot.reload(lambda: "v2")
    assert (new, slot.get(), slot.version) == ("v2", "v2", 2) and load_ms >= 0

    def broken() -> str:
        raise ServingArtifactError("artifacts/model.json: hash mismatch")

    with pytest.raises(ApiError) as err:
        slot.reload(broken, what="index")
    assert err.value.status_code == 500
    assert "previous index kept" in err.value.message and "model.json" in err.value.message
    assert (slot.get(), slot.version) == ("v2", 2)
