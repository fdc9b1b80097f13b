"""Hot routes answer exactly as the FastAPI route they stand in for: the same status and body
for good and bad requests, under the same API keys, body limit and metrics."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from fastapi import APIRouter, Response
from fastapi.testclient import TestClient
from pydantic import BaseModel, ConfigDict, Field

from mlsd.api.deps import (
    ApiError,
    BoundedId,
    HotRoute,
    Observer,
    PositiveInt,
    PredictionObserver,
    ServedSystem,
)
from mlsd.api.hot import is_json
from mlsd.api.main import create_app
from mlsd.settings import Settings

PATH = "/v1/shop/score"


class Basket(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")
    user_id: BoundedId
    item_ids: list[BoundedId] = Field(min_length=1)
    k: PositiveInt | None = None


calls: list[str] = []


def shop(hot: bool) -> ServedSystem:
    router = APIRouter(prefix="/v1/shop")

    async def handle(body: Basket, observe: PredictionObserver) -> bytes:
        calls.append("handle")
        if body.user_id == 404:
            raise ApiError(404, "unknown user 404")
        observe("shop", np.full(len(body.item_ids), 0.25))
        return (
            Basket(user_id=body.user_id, item_ids=body.item_ids[: body.k])
            .model_dump_json()
            .encode()
        )

    @router.post("/score")
    async def score(body: Basket, observe: Observer) -> Response:
        calls.append("route")
        return Response(await handle(body, observe), media_type="application/json")

    routes = (HotRoute(PATH, Basket, handle),) if hot else ()
    return ServedSystem(name="shop", router=router, ready=lambda: True, hot_routes=routes)


def client(hot: bool, **settings: Any) -> TestClient:
    return TestClient(create_app(Settings(**settings), [shop(hot)]))


#: (case, body, headers, needle): with a needle, the two answers' status and the field their
#: messages name must agree (the JSON parsers word a decode error differently); without, the
#: answers must be equal.
REQUESTS: list[tuple[str, bytes, dict[str, str], str | None]] = [
    ("valid", b'{"user_id": 1, "item_ids": [3, 4, 5], "k": 2}', {}, None),
    ("integral floats", b'{"user_id": 1.0, "item_ids": [3.0]}', {}, None),
    ("handler error", b'{"user_id": 404, "item_ids": [3]}', {}, None),
    ("malformed JSON", b'{"user_id": 1,', {}, "body: malformed JSON"),
    ("empty body", b"", {}, None),
    ("wrong types", b'{"user_id": "1", "item_ids": [true, 2.5]}', {}, None),
    ("missing and extra fields", b'{"item_ids": [], "x": 1}', {}, None),
    ("id too large", b'{"user_id": 9007199254740992, "item_ids": [1]}', {}, None),
    ("k of zero", b'{"user_id": 1, "item_ids": [1], "k": 0}', {}, None),
    ("not an object", b"[1, 2]", {}, "invalid request: body: Input should be"),
    ("not UTF-8", b'{"user_id": "\xf2"}', {}, ""),
    ("another content type", b"user_id=1", {"content-type": "text/plain"}, None),
    ("no content type", b'{"user_id": 2, "item_ids": [1]}', {"content-type": ""}, None),
    (
        "JSON with a charset",
        b'{"user_id": 2, "item_ids": [1]}',
        {"content-type": "application/json; charset=utf-8"},
        None,
    ),
]


@pytest.mark.parametrize(
    ("case", "body", "headers", "needle"), REQUESTS, ids=[r[0] for r in REQUESTS]
)
def test_a_hot_route_answers_as_its_fastapi_route(
    case: str, body: bytes, headers: dict[str, str], needle: str | None
) -> None:
    sent = {k: v for k, v in ({"content-type": "application/json"} | headers).items() if v}
    calls.clear()
    slow = client(hot=False).post(PATH, content=body, headers=sent)
    calls.clear()
    fast = client(hot=True).post(PATH, content=body, headers=sent)
    assert "route" not in calls  # answered on the hot path
    assert fast.status_code == slow.status_code < 500, (case, fast.text, slow.text)
    assert fast.headers["content-type"] == "application/json"
    if needle is None:
        assert fast.json() == slow.json(), case
    else:
        assert needle in fast.json()["error"] and needle in slow.json()["error"], case


def test_hot_routes_keep_keys_limits_metrics_and_other_methods() -> None:
    keyed = client(hot=True, api_keys={"k1": "read"})
    assert keyed.post(PATH, json={"user_id": 1, "item_ids": [1]}).status_code == 401
    ok = keyed.post(PATH, json={"user_id": 1, "item_ids": [1]}, headers={"X-API-Key": "k1"})
    assert ok.status_code == 200
    small = client(hot=True, max_body_bytes=1024)
    big = small.post(PATH, json={"user_id": 1, "item_ids": list(range(1000))})
    assert big.status_code == 413
    plain = client(hot=True)
    assert plain.get(PATH).status_code == 405  # not POST: the app's own answer
    plain.post(PATH, json={"user_id": 1, "item_ids": [1, 2, 3]})
    plain.post(PATH, json={"user_id": 404, "item_ids": [1]})
    text = plain.get("/metrics").text
    assert f'mlsd_requests_total{{method="POST",route="{PATH}",status="200"}} 1.0' in text
    assert f'mlsd_requests_total{{method="POST",route="{PATH}",status="404"}} 1.0' in text
    assert 'mlsd_predictions_count{system="shop"} 3.0' in text
    assert PATH in plain.get("/openapi.json").json()["paths"]


@pytest.mark.parametrize(
    ("content_type", "expected"),
    [
        (None, False),
        ("application/json", True),
        ("Application/JSON; charset=utf-8", True),
        ("application/vnd.api+json", True),
        ("text/plain", False),
        ("multipart/form-data; boundary=x", False),
    ],
)
def test_is_json(content_type: str | None, expected: bool) -> None:
    assert is_json(content_type) is expected
