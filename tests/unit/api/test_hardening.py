"""API hardening, in process: API keys, the body limit, bounded ids and metric labels, hashed
ids in the access log, and the OpenAPI document that declares all of it."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from fastapi import APIRouter
from fastapi.testclient import TestClient
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from mlsd.api.deps import (
    MAX_ID,
    AdminOnly,
    ApiError,
    BoundedId,
    ModelSlot,
    Observer,
    PositiveInt,
    ServedSystem,
    error_responses,
)
from mlsd.api.main import create_app
from mlsd.api.metrics import IdHasher, method_label
from mlsd.settings import Settings, parse_api_keys

ADMIN, READ = "admin-key-123", "read-key-456"
KEYS = {ADMIN: "admin", READ: "read"}


class ItemsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    user_id: BoundedId
    item_ids: list[BoundedId] = Field(min_length=1)
    k: PositiveInt | None = None


def shop_system(slot: ModelSlot[float]) -> ServedSystem:
    """A small system with the three kinds of route: a body, a path id, an admin reload."""
    router = APIRouter(prefix="/v1/shop")

    @router.post("/score", responses=error_responses(404))
    def score(body: ItemsIn, observe: Observer) -> dict[str, Any]:
        if body.user_id == 404:
            raise ApiError(404, "unknown user")
        observe("shop", np.array([slot.get()]))
        return {"user_id": body.user_id, "n": len(body.item_ids), "k": body.k}

    @router.get("/users/{user_id}/items", responses=error_responses(404))
    def items(user_id: int) -> dict[str, int]:
        return {"user_id": user_id}

    @router.post("/reload", dependencies=[AdminOnly])
    def reload() -> dict[str, int]:
        slot.swap(slot.get())
        return {"version": slot.version}

    return ServedSystem(name="shop", router=router, ready=lambda: slot.ready)


def client_for(**settings: Any) -> TestClient:
    return TestClient(create_app(Settings(**settings), [shop_system(ModelSlot(0.5))]))


@pytest.fixture
def keyed() -> Iterator[TestClient]:
    yield client_for(api_keys=KEYS)


SCORE = {"user_id": 1, "item_ids": [1, 2, 3]}


# ---- API keys --------------------------------------------------------------------------------
def test_probes_and_docs_are_open_everything_else_needs_a_key(keyed: TestClient) -> None:
    for path in ("/healthz", "/readyz", "/openapi.json", "/docs"):
        assert keyed.get(path).status_code == 200, path
    for method, path in [
        ("GET", "/metrics"),
        ("POST", "/v1/shop/score"),
        ("GET", "/v1/shop/users/3/items"),
        ("POST", "/v1/shop/reload"),
        ("GET", "/no/such/route"),  # unknown paths say nothing before a key is shown
    ]:
        r = keyed.request(method, path, json=SCORE)
        assert r.status_code == 401, (method, path)
        assert r.json() == {"error": "missing API key: send it in the X-API-Key header"}
        assert r.headers["www-authenticate"].startswith("ApiKey")
    wrong = keyed.post("/v1/shop/score", json=SCORE, headers={"X-API-Key": "nope"})
    assert wrong.status_code == 401 and "unknown API key" in wrong.json()["error"]
    assert "nope" not in wrong.text


def test_read_key_reads_but_only_admin_reloads(keyed: TestClient) -> None:
    read, admin = {"X-API-Key": READ}, {"X-API-Key": ADMIN}
    assert keyed.post("/v1/shop/score", json=SCORE, headers=read).status_code == 200
    assert keyed.get("/v1/shop/users/3/items", headers=read).json() == {"user_id": 3}
    assert keyed.get("/metrics", headers=read).status_code == 200
    denied = keyed.post("/v1/shop/reload", headers=read)
    assert denied.status_code == 403
    assert denied.json() == {"error": "this route needs an API key with the admin role"}
    assert keyed.post("/v1/shop/reload", headers=admin).status_code == 200
    assert keyed.get("/no/such/route", headers=read).status_code == 404


def test_no_keys_configured_serves_openly_and_warns(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="mlsd.api.main"):
        client = client_for()
    assert "NO API keys" in caplog.text and "MLSD_API_KEYS" in caplog.text
    assert client.post("/v1/shop/score", json=SCORE).status_code == 200
    assert client.post("/v1/shop/reload").status_code == 200
    schema = client.get("/openapi.json").json()
    assert "securitySchemes" not in schema.get("components", {})
    assert "401" not in schema["paths"]["/v1/shop/score"]["post"]["responses"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("k1:admin,k2:read", {"k1": "admin", "k2": "read"}),
        (" k1 : admin , k2:read ", {"k1": "admin", "k2": "read"}),
        ('{"k1": "read"}', {"k1": "read"}),
        ("", {}),
    ],
)
def test_api_keys_parse_both_formats(text: str, expected: dict[str, str]) -> None:
    assert parse_api_keys(text) == expected


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("secret-key", "entry 1 is not 'key:role'"),
        ("ok:read,secret-key:root", "entry 2 has role 'root'"),
        (":admin", "entry 1 has an empty key"),
        ('{"secret-key": ', "malformed JSON"),
        ('["secret-key"]', "JSON must be an object"),
    ],
)
def test_bad_api_keys_are_refused_without_echoing_the_key(
    text: str, needle: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLSD_API_KEYS", text)
    with pytest.raises(ValidationError) as err:
        Settings()
    assert needle in str(err.value) and "secret-key" not in str(err.value)


def test_settings_read_api_keys_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLSD_API_KEYS", "a1:admin,r1:read")
    settings = Settings()
    assert settings.api_keys == {"a1": "admin", "r1": "read"}
    assert "a1" not in repr(settings)


# ---- body limit, content type, bounded ids ----------------------------------------------------
def test_a_body_over_the_limit_is_a_413_before_it_is_read() -> None:
    client = client_for(max_body_bytes=2048)
    big = {"user_id": 1, "item_ids": list(range(1000))}  # ~5 KB of JSON
    r = client.post("/v1/shop/score", json=big)
    assert r.status_code == 413 and r.json() == {"error": "request body exceeds 2048 bytes"}

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted while it streams
        yield b'{"user_id": 1, "item_ids": ['
        for _ in range(200):
            yield b"1234567, " * 4
        yield b"1]}"

    streamed = client.post(
        "/v1/shop/score", content=chunks(), headers={"content-type": "application/json"}
    )
    assert streamed.status_code == 413
    assert client.post("/v1/shop/score", json=SCORE).status_code == 200


def test_a_body_that_is_not_json_is_a_415_or_400() -> None:
    client = client_for()
    r = client.post("/v1/shop/score", content=b"user_id=1", headers={"content-type": "text/plain"})
    assert r.status_code == 415 and "application/json" in r.json()["error"]
    r = client.post("/v1/shop/score", content=b"\xf2", headers={"content-type": "application/json"})
    assert r.status_code == 400 and "error" in r.json()


@pytest.mark.parametrize(
    ("body", "status", "needle"),
    [
        ({"user_id": 2**63, "item_ids": [1]}, 422, "user_id"),  # was an OverflowError, a 500
        ({"user_id": 1, "item_ids": [-(2**64)]}, 422, "item_ids.0"),
        ({"user_id": MAX_ID + 1, "item_ids": [1]}, 422, "user_id"),
        ({"user_id": "1", "item_ids": [1]}, 422, "user_id"),
        ({"user_id": True, "item_ids": [1]}, 422, "user_id"),
        ({"user_id": 1.5, "item_ids": [1]}, 422, "user_id"),
        ({"user_id": 1, "item_ids": [1], "k": 0}, 422, "k"),
        ({"user_id": 3.0, "item_ids": [MAX_ID, -MAX_ID], "k": 2.0}, 200, ""),
    ],
)
def test_ids_are_bounded_json_integers(body: dict[str, Any], status: int, needle: str) -> None:
    r = client_for().post("/v1/shop/score", json=body)
    assert r.status_code == status, r.text
    if status == 200:
        assert r.json() == {"user_id": 3, "n": 2, "k": 2}
    else:
        assert needle in r.json()["error"]


# ---- metrics labels and the access log ----------------------------------------------------------
def series(client: TestClient) -> list[str]:
    text = client.get("/metrics", headers={"X-API-Key": ADMIN}).text
    return [line for line in text.splitlines() if line.startswith("mlsd_requests_total")]


def test_junk_methods_and_paths_do_not_grow_the_metrics(keyed: TestClient) -> None:
    rng = np.random.default_rng(0)
    headers = {"X-API-Key": ADMIN}

    def junk(n: int) -> None:
        for i in range(n):
            method = "".join(rng.choice(list("ABCDEFGHIJKLMNOPQRSTUVWXYZ"), 6))
            keyed.request(method, f"/junk/{i}/{rng.integers(1 << 30)}", headers=headers)
            keyed.request(method, "/v1/shop/score", headers=headers)
            keyed.get(f"/v1/shop/users/{i}/items")  # no key: 401 on the route's template

    series(keyed)  # the scrape's own series, once
    junk(20)
    after_20 = series(keyed)
    junk(200)
    after_220 = series(keyed)
    assert len(after_220) == len(after_20) <= 6
    labels = {re.search(r'method="([^"]+)"', s).group(1) for s in after_220}  # type: ignore[union-attr]
    routes = {re.search(r'route="([^"]+)"', s).group(1) for s in after_220}  # type: ignore[union-attr]
    assert labels <= {"other", "GET"}
    assert routes <= {"unmatched", "/v1/shop/score", "/v1/shop/users/{user_id}/items", "/metrics"}
    assert any('route="/v1/shop/users/{user_id}/items",status="401"' in s for s in after_220)


def test_method_labels_are_a_fixed_set() -> None:
    assert method_label("GET") == "GET" and method_label("PATCH") == "PATCH"
    assert method_label("FOO") == method_label("get") == method_label("") == "other"


def test_the_access_log_hashes_ids(caplog: pytest.LogCaptureFixture) -> None:
    client = client_for(log_id_salt="pepper")
    with caplog.at_level(logging.INFO, logger="mlsd.access"):
        client.get("/v1/shop/users/987654321/items")
        client.get("/secret-987654321")
    lines = [r.getMessage() for r in caplog.records if r.name == "mlsd.access"]
    assert len(lines) == 2 and "987654321" not in "\n".join(lines)
    hashed = IdHasher("pepper")
    assert lines[0] == (
        f"GET /v1/shop/users/{{user_id}}/items user_id={hashed('987654321')} 200 "
        + lines[0].rsplit(" ", 1)[1]
    )
    assert f"path={hashed('/secret-987654321')} 404" in lines[1]
    assert IdHasher("a")("1") != IdHasher("b")("1") and IdHasher()("1") != IdHasher()("1")


def test_metrics_content_type_is_prometheus_text_and_documented(keyed: TestClient) -> None:
    r = keyed.get("/metrics", headers={"X-API-Key": READ})
    assert r.headers["content-type"].startswith("text/plain")
    doc = keyed.get("/openapi.json").json()["paths"]["/metrics"]["get"]["responses"]["200"]
    assert list(doc["content"]) == ["text/plain"]


# ---- the OpenAPI document ------------------------------------------------------------------------
def test_openapi_declares_every_answer_and_the_security_scheme(keyed: TestClient) -> None:
    doc = keyed.get("/openapi.json").json()
    scheme = doc["components"]["securitySchemes"]["ApiKeyAuth"]
    assert scheme == {**scheme, "type": "apiKey", "in": "header", "name": "X-API-Key"}

    def codes(path: str, method: str) -> set[str]:
        return set(doc["paths"][path][method]["responses"])

    score_codes = {"200", "400", "401", "404", "413", "415", "422", "503"}
    assert codes("/v1/shop/score", "post") == score_codes
    assert codes("/v1/shop/users/{user_id}/items", "get") == {"200", "401", "404", "422", "503"}
    assert codes("/v1/shop/reload", "post") == {"200", "401", "403", "413", "503"}
    assert codes("/readyz", "get") == {"200", "503"} and codes("/healthz", "get") == {"200"}
    assert "security" not in doc["paths"]["/healthz"]["get"]
    assert doc["paths"]["/v1/shop/score"]["post"]["security"] == [{"ApiKeyAuth": []}]
    error = doc["paths"]["/v1/shop/score"]["post"]["responses"]["422"]["content"]
    assert error["application/json"]["schema"] == {"$ref": "#/components/schemas/ErrorResponse"}
    assert "HTTPValidationError" not in doc["components"]["schemas"]
    user_id = doc["components"]["schemas"]["ItemsIn"]["properties"]["user_id"]
    assert (user_id["minimum"], user_id["maximum"]) == (-MAX_ID, MAX_ID)
