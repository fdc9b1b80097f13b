"""The people-you-may-know service behind a live uvicorn: known users, unknown users, bad input,
the admin reload."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from starlette.types import ASGIApp

from mlsd.api.main import create_app
from mlsd.api.routes.people_you_may_know import make_served_system
from mlsd.settings import Settings
from mlsd.systems.people_you_may_know.datasets import world_graph
from mlsd.systems.people_you_may_know.features import Snapshot
from mlsd.systems.people_you_may_know.features_split import compute_split
from mlsd.systems.people_you_may_know.model import HeuristicScore, PairLogistic
from mlsd.systems.people_you_may_know.serving import batch_job, save_serving_artifacts
from mlsd.systems.people_you_may_know.world import PymkConfig, PymkWorld
from mlsd.world import Scale

Server = Callable[[ASGIApp], str]
ROUTE = "/v1/people-you-may-know/users"


def pymk_run(run: Path) -> Path:
    """A tiny run directory: the batch job's lists of a tiny world, logistic regression served."""
    world = PymkWorld(Scale.TINY, 0, PymkConfig.for_scale(Scale.TINY).with_(n_initial=120))
    data = world_graph(world)
    split = compute_split(data, 0, "tiny")
    model = PairLogistic().fit(split.train.X, split.train.y)
    snap = Snapshot.at(data.users, data.edges, data.n_days)
    batch = batch_job(snap, model, HeuristicScore("d_mutual").fit(split.train.X), 0)
    info = {"model": "logistic_regression", "as_of_day": data.n_days}
    save_serving_artifacts(run / "artifacts", batch.lists, data.users, data.edges, model, info)
    (run / "metrics.json").write_text("{}")
    return run


@pytest.fixture(scope="module")
def base_url(tmp_path_factory: pytest.TempPathFactory, module_live_server: Server) -> str:
    run = pymk_run(tmp_path_factory.mktemp("pymk"))
    settings = Settings()
    return module_live_server(create_app(settings, [make_served_system(run, settings)]))


def test_known_user_gets_k_ranked_people_who_are_not_friends(base_url: str) -> None:
    r = httpx.get(f"{base_url}{ROUTE}/3", params={"k": 7})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["user_id"] == 3 and body["model"] == "logistic_regression"
    people = body["people"]
    assert len(people) == 7 and 3 not in {p["user_id"] for p in people}
    scores = [p["score"] for p in people]
    assert scores == sorted(scores, reverse=True)
    assert len({p["user_id"] for p in people}) == 7


def test_default_k_is_20(base_url: str) -> None:
    r = httpx.get(f"{base_url}{ROUTE}/5")
    assert r.status_code == 200 and len(r.json()["people"]) == 20


@pytest.mark.parametrize(
    ("path", "status", "needle"),
    [
        (f"{ROUTE}/999999", 404, "unknown user_id"),
        (f"{ROUTE}/-1", 404, "unknown user_id"),
        (f"{ROUTE}/3?k=0", 422, "k"),
        (f"{ROUTE}/3?k=51", 422, "k"),
        (f"{ROUTE}/abc", 422, "user_id"),
    ],
)
def test_bad_requests_get_clear_errors(base_url: str, path: str, status: int, needle: str) -> None:
    r = httpx.get(f"{base_url}{path}")
    assert r.status_code == status, r.text
    assert needle in r.json()["error"]


def test_reload_swaps_the_lists(base_url: str) -> None:
    r = httpx.post(f"{base_url}/v1/people-you-may-know/reload")
    assert r.status_code == 200, r.text
    assert r.json()["version"] >= 2


def test_a_new_user_gets_a_list_computed_online(base_url: str) -> None:
    url = f"{base_url}/v1/people-you-may-know/new-user"
    alone = httpx.post(url, json={"school": 3, "employer": 5, "city": 1, "age": 25, "k": 10})
    assert alone.status_code == 200, alone.text
    body = alone.json()
    assert body["online"] and body["user_id"] is None and 0 < len(body["people"]) <= 10
    assert all(p["mutual_friends"] == 0 for p in body["people"])  # no friends yet
    with_friends = httpx.post(url, json={"friends": [1, 2, 2], "k": 10}).json()
    people = with_friends["people"]
    assert people and not {1, 2} & {p["user_id"] for p in people}
    assert max(p["mutual_friends"] for p in people) >= 1  # friends of their friends


@pytest.mark.parametrize(
    ("payload", "status", "needle"),
    [
        ({"friends": [999999]}, 404, "unknown friend ids"),
        ({"age": 5}, 422, "age"),
        ({"k": 0}, 422, "k"),
        ({"hobby": "chess"}, 422, "hobby"),
        ({"school": 10**12}, 200, ""),  # a school nobody attends: no one shares it
    ],
)
def test_new_user_bad_input(base_url: str, payload: dict, status: int, needle: str) -> None:
    r = httpx.post(f"{base_url}/v1/people-you-may-know/new-user", json=payload)
    assert r.status_code == status, r.text
    if needle:
        assert needle in r.json()["error"]


def test_broken_artifacts_are_refused_naming_the_file(tmp_path: Path) -> None:
    import re
    import shutil

    import pandas as pd

    from mlsd.artifacts import write_manifest
    from mlsd.model_io import save_value
    from mlsd.serving import ServingArtifactError
    from mlsd.systems.people_you_may_know.model_node2vec import Node2VecLightGBM
    from mlsd.systems.people_you_may_know.serving import load_scorer

    good = pymk_run(tmp_path / "good")
    settings = Settings()
    assert load_scorer(good, settings).rows > 0

    def broken(name: str, change: Callable[[Path], None]) -> Path:
        run = tmp_path / name
        shutil.copytree(good, run)
        change(run / "artifacts")
        write_manifest(run / "artifacts")  # the hashes match: the readers must catch it
        return run

    def drop_column(a: Path) -> None:
        lists = pd.read_parquet(a / "recommendations.parquet").drop(columns=["score"])
        lists.to_parquet(a / "recommendations.parquet")

    def wrong_model(a: Path) -> None:
        shutil.rmtree(a / "model")
        save_value(Node2VecLightGBM(), a / "model")

    def no_day(a: Path) -> None:
        meta = (a / "serving.json").read_text().replace('"as_of_day"', '"day"')
        (a / "serving.json").write_text(meta)

    def garbage_table(a: Path) -> None:
        (a / "graph_edges.parquet").write_bytes(b"not parquet")

    for name, change, needle in (
        ("column", drop_column, "recommendations.parquet: missing columns ['score']"),
        ("model", wrong_model, "holds a Node2VecLightGBM"),
        ("day", no_day, "serving.json: field 'as_of_day'"),
        ("table", garbage_table, "graph_edges.parquet: unreadable table"),
    ):
        with pytest.raises(ServingArtifactError, match=re.escape(needle)):
            load_scorer(broken(name, change), settings)
