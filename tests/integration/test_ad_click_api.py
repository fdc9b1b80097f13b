"""The ad-click scoring service end to end: a tiny world's run directory behind a live uvicorn."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
from starlette.types import ASGIApp

from mlsd.api.main import create_app
from mlsd.api.routes.ad_click import make_served_system
from mlsd.artifacts import write_manifest
from mlsd.features import InProcessStore
from mlsd.models import ClickEstimator, HistoricalCTR, LightGBMClick
from mlsd.serving import ServingArtifactError
from mlsd.settings import Settings
from mlsd.stores import FrameStore
from mlsd.systems.ad_click import features as feats
from mlsd.systems.ad_click.serving import (
    AdClickScorer,
    CandidateError,
    load_scorer,
    save_serving_artifacts,
)
from mlsd.systems.ad_click.serving_store import Snapshot, snapshot_run_id
from mlsd.systems.ad_click.world import AdClickWorld
from mlsd.world import Scale

SCORE = "/v1/ad-click/score"
RELOAD = "/v1/ad-click/reload"
Server = Callable[[ASGIApp], str]


@dataclass
class TinyRun:
    """A tiny world's tables and two quickly fitted models, shared by the module's tests."""

    users: pd.DataFrame
    ads: pd.DataFrame
    tables: dict[str, pd.DataFrame]
    baseline: ClickEstimator
    gbdt: ClickEstimator


@pytest.fixture(scope="module")
def tiny() -> TinyRun:
    world = AdClickWorld(Scale.TINY, seed=0)
    log = pd.concat(list(world.iter_log()), ignore_index=True)
    X = feats.offline_features(log, world.users, world.ads)
    y = log["click"].to_numpy(dtype=np.int64)
    baseline = HistoricalCTR(key="c_ad_id").fit(X, y)
    gbdt = LightGBMClick(n_estimators=20, num_leaves=15, num_threads=1, random_state=0).fit(X, y)
    tables = feats.online_tables(log, world.users, world.ads)
    return TinyRun(world.users, world.ads, tables, baseline, gbdt)


def write_run(run_dir: Path, tiny: TinyRun, which: str = "lightgbm") -> Path:
    model = tiny.gbdt if which == "lightgbm" else tiny.baseline
    save_serving_artifacts(run_dir / "artifacts", model, which, tiny.tables)
    (run_dir / "metrics.json").write_text("{}")
    return run_dir


@pytest.fixture(scope="module")
def run_dir(tiny: TinyRun, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_run(tmp_path_factory.mktemp("run"), tiny)


@pytest.fixture(scope="module")
def base_url(run_dir: Path, module_live_server: Server) -> str:
    settings = Settings(max_candidates=500)
    return module_live_server(create_app(settings, [make_served_system(run_dir, settings)]))


def some_ids(tiny: TinyRun, n_ads: int = 20) -> tuple[int, list[int]]:
    return int(tiny.users["user_id"].iloc[3]), [int(a) for a in tiny.ads["ad_id"].iloc[:n_ads]]


def payload(user_id: Any, ad_ids: list[Any], **extra: Any) -> dict[str, Any]:
    return {"user_id": user_id, "context": {"hour": 20, "device": "ios"}, "ad_ids": ad_ids, **extra}


def test_score_ranks_candidates_by_expected_value(base_url: str, tiny: TinyRun) -> None:
    user, ads = some_ids(tiny)
    with httpx.Client(base_url=base_url, timeout=10.0) as client:
        resp = client.post(SCORE, json=payload(user, ads))
        top3 = client.post(SCORE, json=payload(user, ads, k=3)).json()
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["model"] == "lightgbm" and body["user_id"] == user
    assert sorted(a["ad_id"] for a in body["ads"]) == sorted(ads)
    values = [a["expected_value"] for a in body["ads"]]
    assert values == sorted(values, reverse=True)
    bids = tiny.ads.set_index("ad_id")["bid"]
    for a in body["ads"]:
        assert 0.0 < a["p_click"] < 1.0
        assert a["bid"] == pytest.approx(float(bids[a["ad_id"]]))
        assert a["expected_value"] == pytest.approx(a["p_click"] * a["bid"])
    assert set(body["timings_ms"]) >= {"features", "model", "total"}
    assert top3["ads"] == body["ads"][:3]


def test_answers_say_whether_they_are_degraded_and_openapi_documents_it(
    base_url: str, tiny: TinyRun
) -> None:
    user, ads = some_ids(tiny, 5)
    with httpx.Client(base_url=base_url, timeout=10.0) as client:
        body = client.post(SCORE, json=payload(user, ads)).json()
        schema = client.get("/openapi.json").json()
    assert body["degraded"] is False and body["degraded_reason"] is None
    fields = schema["components"]["schemas"]["ScoreResponse"]["properties"]
    assert "snapshot" in fields["degraded"]["description"]
    assert "degraded_reason" in fields
    assert "degraded" in schema["paths"][SCORE]["post"]["description"]


def test_snapshot_run_id_and_the_degraded_fallback(tiny: TinyRun, tmp_path: Path) -> None:
    namespaces = sorted(tiny.tables)
    a = write_run(tmp_path / "a", tiny) / "artifacts"
    b = write_run(tmp_path / "b", tiny, "historical_ctr") / "artifacts"
    run_id = snapshot_run_id(a, namespaces)
    assert re.fullmatch(r"[0-9a-f]{16}", run_id)
    assert snapshot_run_id(b, namespaces) == run_id  # same tables, same id (whatever the model)
    glob = tiny.tables["global"].assign(imps=tiny.tables["global"]["imps"] + 1)
    c = tmp_path / "c" / "artifacts"
    save_serving_artifacts(c, tiny.gbdt, "lightgbm", tiny.tables | {"global": glob})
    assert snapshot_run_id(c, namespaces) != run_id

    fallback = Snapshot(a, namespaces).fallback()
    first_ad = str(tiny.ads["ad_id"].iloc[0])
    users = fallback.get_many("user", ["1", "999999999"])
    assert users[0] == users[1] and users[0] is not None
    assert users[0]["imps"] == 0 and users[0]["clicks"] == 0
    assert users[0]["gender"] in set(tiny.users["gender"])
    assert fallback.get_many("ad", [first_ad, "-5"])[1] is None
    assert fallback.get_many("user_ad", ["1:1"]) == [None]  # no history: zero counts
    assert fallback.get_many("global", ["all"])[0] is not None


def test_http_scores_equal_in_process_batch_scores(
    base_url: str, tiny: TinyRun, run_dir: Path
) -> None:
    user, ads = some_ids(tiny, 12)
    with httpx.Client(base_url=base_url, timeout=10.0) as client:
        served = {
            a["ad_id"]: a["p_click"]
            for a in client.post(SCORE, json=payload(user, ads)).json()["ads"]
        }
    scorer = load_scorer(run_dir / "artifacts", Settings())
    requests = pd.DataFrame({"user_id": user, "hour": 20, "device": "ios", "ad_id": ads})
    batch = scorer.score_frame(requests)
    np.testing.assert_allclose([served[a] for a in ads], batch, rtol=1e-9)


def with_context(user: Any, ads: list[Any], hour: int, device: str) -> dict[str, Any]:
    return {**payload(user, ads), "context": {"hour": hour, "device": device}}


BAD_REQUESTS: list[tuple[str, Any, int, str]] = [
    ("unknown user", lambda u, a: payload(10**9, a), 404, "unknown user ids: [1000000000]"),
    ("unknown ad", lambda u, a: payload(u, [*a, 987654321]), 404, "unknown ad ids: [987654321]"),
    ("empty list", lambda u, a: payload(u, []), 422, "ad_ids"),
    ("501 ads", lambda u, a: payload(u, list(range(501))), 422, "at most 500"),
    ("duplicates", lambda u, a: payload(u, [a[0], a[1], a[0]]), 422, "duplicate"),
    ("user as text", lambda u, a: payload("bob", a), 422, "user_id"),
    ("ad ids as text", lambda u, a: payload(u, ["x", "y"]), 422, "ad_ids.0"),
    (
        "missing user",
        lambda u, a: {"context": {"hour": 1, "device": "ios"}, "ad_ids": a},
        422,
        "user_id: Field required",
    ),
    ("missing context", lambda u, a: {"user_id": u, "ad_ids": a}, 422, "context"),
    ("hour 24", lambda u, a: with_context(u, a, 24, "ios"), 422, "context.hour"),
    ("bad device", lambda u, a: with_context(u, a, 1, "tv"), 422, "context.device"),
    ("k zero", lambda u, a: payload(u, a, k=0), 422, "k:"),
    ("not an object", lambda u, a: [1, 2, 3], 422, "invalid request"),
]


@pytest.mark.parametrize(
    ("case", "make", "status", "message"), BAD_REQUESTS, ids=[c[0] for c in BAD_REQUESTS]
)
def test_bad_input_is_a_4xx_with_a_message(
    base_url: str, tiny: TinyRun, case: str, make: Any, status: int, message: str
) -> None:
    user, ads = some_ids(tiny, 5)
    with httpx.Client(base_url=base_url, timeout=10.0) as client:
        resp = client.post(SCORE, json=make(user, ads))
    assert resp.status_code == status, (case, resp.text)
    assert message in resp.json()["error"], (case, resp.text)


def test_malformed_json_and_wrong_method(base_url: str) -> None:
    with httpx.Client(base_url=base_url, timeout=10.0) as client:
        bad = client.post(
            SCORE, content=b'{"user_id": 1,', headers={"content-type": "application/json"}
        )
        get = client.get(SCORE)
        missing = client.post("/v1/ad-click/nope", json={})
    assert bad.status_code == 422 and "malformed JSON" in bad.json()["error"]
    assert get.status_code == 405 and "error" in get.json()
    assert missing.status_code == 404 and "error" in missing.json()


def test_ops_routes_and_prometheus_after_requests(base_url: str, tiny: TinyRun) -> None:
    user, ads = some_ids(tiny, 7)
    with httpx.Client(base_url=base_url, timeout=10.0) as client:
        assert client.get("/healthz").status_code == 200
        ready = client.get("/readyz")
        client.post(SCORE, json=payload(user, ads))
        client.post(SCORE, json=payload(10**9, ads))
        text = client.get("/metrics").text
    assert ready.status_code == 200 and ready.json()["systems"] == {"ad-click": True}
    assert f'mlsd_requests_total{{method="POST",route="{SCORE}",status="200"}}' in text
    assert f'mlsd_requests_total{{method="POST",route="{SCORE}",status="404"}}' in text
    prefix = 'mlsd_predictions_count{system="ad-click"}'
    count = next(line for line in text.splitlines() if line.startswith(prefix))
    assert float(count.split()[-1]) >= 7


def test_reload_swaps_the_model_and_keeps_it_on_failure(
    tiny: TinyRun, tmp_path: Path, live_server: Server
) -> None:
    run = write_run(tmp_path / "run", tiny, "lightgbm")
    settings = Settings()
    base = live_server(create_app(settings, [make_served_system(run, settings, load=False)]))
    user, ads = some_ids(tiny, 10)
    with httpx.Client(base_url=base, timeout=10.0) as client:
        assert client.get("/readyz").status_code == 503
        assert client.post(SCORE, json=payload(user, ads)).status_code == 503
        first = client.post(RELOAD)
        assert first.status_code == 200 and first.json()["model"] == "lightgbm"
        assert client.get("/readyz").status_code == 200
        before = client.post(SCORE, json=payload(user, ads)).json()

        write_run(run, tiny, "historical_ctr")  # a new model lands in the run directory
        second = client.post(RELOAD).json()
        after = client.post(SCORE, json=payload(user, ads)).json()
        assert second["model"] == "historical_ctr" and second["version"] == 2
        assert after["model"] == "historical_ctr"
        assert [a["p_click"] for a in after["ads"]] != [a["p_click"] for a in before["ads"]]

        (run / "artifacts" / "serving.json").write_text("{ not json")
        failed = client.post(RELOAD)
        assert failed.status_code == 500 and "serving.json" in failed.json()["error"]
        assert client.post(SCORE, json=payload(user, ads)).json()["model"] == "historical_ctr"


def test_scorer_in_process(tiny: TinyRun) -> None:
    store = InProcessStore()
    feats.load_online_store(store, tiny.tables)
    scorer = AdClickScorer(tiny.gbdt, store, "lightgbm")
    user, ads = some_ids(tiny, 10)
    result = scorer.score(user, 9, "web", ads)
    assert [a.ad_id for a in result.ads] != [] and result.features_ms > 0 and result.model_ms > 0
    assert len(scorer.score(user, 9, "web", ads, k=4).ads) == 4
    with pytest.raises(CandidateError, match=re.escape(f"duplicate ad ids [{ads[0]}]")):
        scorer.score(user, 9, "web", [ads[0], ads[0]])
    with pytest.raises(CandidateError, match=re.escape("at least one")):
        scorer.score(user, 9, "web", [])
    with pytest.raises(feats.UnknownIdError):
        scorer.score(user, 9, "web", [-5])


def test_load_scorer_names_the_missing_or_corrupt_file(tiny: TinyRun, tmp_path: Path) -> None:
    art = write_run(tmp_path / "run", tiny) / "artifacts"
    meta = json.loads((art / "serving.json").read_text())
    assert meta["model_name"] == "lightgbm" and meta["feature_columns"]
    assert list(meta["feature_columns"]) == list(feats.FEATURE_COLUMNS)
    # a run directory and its bare artifacts folder load the same scorer
    assert load_scorer(art.parent, Settings()).model_name == "lightgbm"
    # a changed file is refused by the manifest; with the manifest rewritten (the loader's own
    # checks then answer), the model is unreadable data
    model_json = art / "model" / "model.json"
    good_model = model_json.read_bytes()
    model_json.write_bytes(b"garbage")
    with pytest.raises(ServingArtifactError, match=re.escape("model.json: hash mismatch")):
        load_scorer(art, Settings())
    write_manifest(art)
    with pytest.raises(ServingArtifactError, match=re.escape("model: unreadable model")):
        load_scorer(art, Settings())
    model_json.write_bytes(good_model)
    write_manifest(art)
    assert sorted(p.name for p in (art / "online").iterdir()) == sorted(
        f"{ns}.parquet" for ns in tiny.tables
    )
    assert isinstance(load_scorer(art, Settings()).store, FrameStore)
    (art / "online" / "user.parquet").write_bytes(b"not parquet")
    with pytest.raises(ServingArtifactError, match=re.escape("user.parquet: hash mismatch")):
        load_scorer(art, Settings())
    write_manifest(art)
    with pytest.raises(ServingArtifactError, match=re.escape("user.parquet: unreadable")):
        load_scorer(art, Settings())
    (art / "online" / "user.parquet").unlink()
    with pytest.raises(
        ServingArtifactError, match=re.escape("user.parquet: serving artifact missing")
    ):
        load_scorer(art, Settings())
    write_manifest(art)
    (art / "serving.json").write_text(json.dumps(meta | {"namespaces": {"user": 1}}))
    write_manifest(art)
    with pytest.raises(ServingArtifactError, match=re.escape("serving.json: field 'namespaces'")):
        load_scorer(art, Settings())
    (art / "serving.json").unlink()
    with pytest.raises(
        ServingArtifactError, match=re.escape("serving.json: serving artifact missing")
    ):
        load_scorer(art, Settings())
    with pytest.raises(ServingArtifactError, match=re.escape("serving.json")):
        make_served_system(tmp_path / "nowhere", Settings())


@pytest.mark.redis
def test_scoring_against_a_real_redis(
    tiny: TinyRun, run_dir: Path, redis_url: str, live_server: Server
) -> None:
    redis_settings = Settings(redis_url=redis_url)
    base = live_server(create_app(redis_settings, [make_served_system(run_dir, redis_settings)]))
    in_process = load_scorer(run_dir / "artifacts", Settings())
    user, ads = some_ids(tiny, 15)
    with httpx.Client(base_url=base, timeout=10.0) as client:
        resp = client.post(SCORE, json=payload(user, ads))
        unknown = client.post(SCORE, json=payload(user, [*ads, 987654321]))
    assert resp.status_code == 200, resp.text
    expected = in_process.score(user, 20, "ios", ads)
    assert [a["ad_id"] for a in resp.json()["ads"]] == [a.ad_id for a in expected.ads]
    np.testing.assert_allclose(
        [a["p_click"] for a in resp.json()["ads"]], [a.p_click for a in expected.ads], rtol=1e-9
    )
    assert unknown.status_code == 404 and "987654321" in unknown.json()["error"]


def test_unreachable_redis_is_a_clear_connection_error(run_dir: Path) -> None:
    with pytest.raises(ConnectionError, match=re.escape("redis://127.0.0.1:1/0")):
        make_served_system(run_dir, Settings(redis_url="redis://127.0.0.1:1/0"))
