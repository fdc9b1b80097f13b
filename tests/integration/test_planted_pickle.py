"""A planted pickle never runs: every system's loading path refuses it (issue #17, defect 6).

For every system that runs, a tiny run directory is written with the system's own serving code;
then a malicious pickle (unpickling it creates a marker file) is planted

* in place of every file the run wrote (each file of the manifest: model files, weights,
  tables, metadata), with the manifest left alone (a hash mismatch) and with the manifest
  rewritten to bless it (the attacker's best case: the loader reads data formats only),
* in place of the model's directory, and under the names the loaders read before (``*.pkl``),

and ``load_scorer`` (what ``mlsd serve`` and the reload endpoints call) must refuse it with a
:class:`~mlsd.serving.ServingArtifactError` while the marker file never appears. ``mlsd serve``
itself exits with a one-line error before any server starts.
"""

from __future__ import annotations

import contextlib
import pickle
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

from mlsd.artifacts import MANIFEST, verify_manifest, write_manifest
from mlsd.serving import ServingArtifactError
from mlsd.settings import Settings
from mlsd.systems import SYSTEMS, get_system

torch.set_num_threads(1)


class Plant:
    """Unpickling this creates ``marker`` (a shell command would do the same harm)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (Path.touch, (self.marker,))


# ---- one tiny run directory per system, written by the system's own serving code -------------
def _ad_click(run: Path) -> None:
    from mlsd.models import LightGBMClick, NegativeDownsampled
    from mlsd.systems.ad_click import features as feats
    from mlsd.systems.ad_click.serving import save_serving_artifacts
    from mlsd.systems.ad_click.world import AdClickWorld
    from mlsd.world import Scale

    world = AdClickWorld(Scale.TINY, seed=0)
    log = pd.concat(list(world.iter_log()), ignore_index=True)
    X = feats.offline_features(log, world.users, world.ads)
    y = log["click"].to_numpy(dtype=np.int64)
    gbdt = LightGBMClick(n_estimators=10, num_leaves=7, num_threads=1, random_state=0)
    model = NegativeDownsampled(gbdt, rate=0.5).fit(X, y)
    tables = feats.online_tables(log, world.users, world.ads)
    save_serving_artifacts(run / "artifacts", model, "lightgbm", tables)


def _video_rec(run: Path) -> None:
    from mlsd.systems.video_rec.features import Catalogue
    from mlsd.systems.video_rec.features_titles import make_encoder
    from mlsd.systems.video_rec.model import FitConfig, fit_recommender
    from mlsd.systems.video_rec.serving import save_recommender
    from mlsd.systems.video_rec.world import VideoRecWorld
    from mlsd.systems.video_rec.world_entities import CATEGORIES, VideoWorldConfig
    from mlsd.world import Scale

    cfg = VideoWorldConfig(
        n_users=60, n_videos=80, n_days=3, new_users_per_day=2, new_videos_per_day=4
    )
    w = VideoRecWorld(Scale.TINY, 0, config=cfg)
    log = w.log()  # the catalogue grows while the world logs
    titles = make_encoder("hashing").encode(w.videos["title"].tolist())
    cat = Catalogue(w.videos, titles, list(CATEGORIES))
    rec, _ = fit_recommender(cat, w.users, log, FitConfig(tower_epochs=1, ranker_trees=10))
    save_recommender(run / "artifacts", rec, {})


def _visual_search(run: Path) -> None:
    from mlsd.index import VectorIndex
    from mlsd.systems.visual_search.model import CNNEncoder
    from mlsd.systems.visual_search.serving import save_serving_artifacts
    from mlsd.systems.visual_search.world import VisualSearchWorld, VisualWorldConfig
    from mlsd.world import Scale

    cfg = VisualWorldConfig.for_scale(Scale.TINY).with_(
        n_train_products=2, n_eval_products=3, photos_per_product=2
    )
    world = VisualSearchWorld(Scale.TINY, 0, cfg)
    pids, idx = world.catalog("eval")
    images = world.photos(pids, idx)
    enc = CNNEncoder(dim=8, width=4, train_steps=0).fit(images, pids)
    index = VectorIndex.build("flat", enc.encode(images), np.arange(len(images)))
    save_serving_artifacts(run / "artifacts", enc, "untrained_cnn", index, 32, {0: "first"})


def _people_you_may_know(run: Path) -> None:
    from mlsd.systems.people_you_may_know.datasets import world_graph
    from mlsd.systems.people_you_may_know.features import Snapshot
    from mlsd.systems.people_you_may_know.features_split import compute_split
    from mlsd.systems.people_you_may_know.model import HeuristicScore, PairLogistic
    from mlsd.systems.people_you_may_know.serving import batch_job, save_serving_artifacts
    from mlsd.systems.people_you_may_know.world import PymkConfig, PymkWorld
    from mlsd.world import Scale

    world = PymkWorld(Scale.TINY, 0, PymkConfig.for_scale(Scale.TINY).with_(n_initial=120))
    data = world_graph(world)
    split = compute_split(data, 0, "tiny")
    model = PairLogistic().fit(split.train.X, split.train.y)
    snap = Snapshot.at(data.users, data.edges, data.n_days)
    batch = batch_job(snap, model, HeuristicScore("d_mutual").fit(split.train.X), 0)
    info = {"model": "lr", "as_of_day": data.n_days}
    save_serving_artifacts(run / "artifacts", batch.lists, data.users, data.edges, model, info)


def _similar_listings(run: Path) -> None:
    from mlsd.systems.similar_listings.model import AttributeSimilarity
    from mlsd.systems.similar_listings.serving import (
        ListingVectors,
        build_indexes,
        save_serving_artifacts,
    )
    from mlsd.systems.similar_listings.world import SimilarListingsConfig, SimilarListingsWorld

    cfg = SimilarListingsConfig(n_regions=2, listings_per_region=20, n_days=1)
    listings = SimilarListingsWorld("tiny", 0, cfg).listings.reset_index(drop=True)
    listings.insert(0, "listing_id", np.arange(len(listings), dtype=np.int64))
    vectors = AttributeSimilarity().fit(listings).vectors()
    ids = listings["listing_id"].to_numpy()
    indexes = build_indexes(vectors, ids, listings["region"].to_numpy())
    save_serving_artifacts(
        run / "artifacts", ListingVectors(ids, vectors, "attributes"), listings, indexes
    )


def _event_rec(run: Path) -> None:
    from mlsd.systems.event_rec.features import Platform, daily_states, impression_features
    from mlsd.systems.event_rec.model import LambdaRank
    from mlsd.systems.event_rec.serving import save_serving_artifacts, world_tables
    from mlsd.systems.event_rec.world import EventRecWorld
    from mlsd.systems.event_rec.world_config import DAY_S, EventWorldConfig
    from mlsd.world import Scale

    cfg = EventWorldConfig.for_scale(Scale.TINY).with_(n_days=3, test_days=1, ab_days=1)
    w = EventRecWorld(Scale.TINY, 0, cfg)
    lg = w.log()
    tables = world_tables(w, lg)
    platform = Platform(tables.users, tables.events, tables.hoods)
    days = list(range(cfg.n_days))
    states = daily_states(platform, lg, days, cfg.n_hosts, w.friends, w.follows, cfg.n_slots)
    X = impression_features(platform, states, lg.impressions)
    y = lg.impressions["register"].to_numpy(np.int64)
    model = LambdaRank(n_estimators=5).fit(X, y, lg.impressions["session_id"].to_numpy())
    clock = cfg.n_days * DAY_S
    save_serving_artifacts(run / "artifacts", model, "lr", tables, clock, cfg.n_hosts, cfg.n_slots)


BUILDERS: dict[str, Callable[[Path], None]] = {
    "event-rec": _event_rec,
    "similar-listings": _similar_listings,
    "people-you-may-know": _people_you_may_know,
    "ad-click": _ad_click,
    "video-rec": _video_rec,
    "visual-search": _visual_search,
}
# the directory (or file) each system's model lives in, and the pickle names loaders once read
MODEL_PATHS = {
    "event-rec": "model",
    "similar-listings": "embeddings",
    "ad-click": "model",
    "video-rec": "recommender",
    "visual-search": "encoder",
    "people-you-may-know": "model",
}
OLD_PICKLES = {
    "event-rec": "model.pkl",
    "similar-listings": "embeddings.pkl",
    "people-you-may-know": "model.pkl",
    "ad-click": "model.pkl",
    "video-rec": "recommender.pkl",
    "visual-search": "encoder.pkl",
}
RUNNING = sorted(name for name, info in SYSTEMS.items() if info.package is not None)


def test_every_running_system_is_covered() -> None:
    assert sorted(BUILDERS) == RUNNING, "a new system needs a tiny run in BUILDERS"


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = {}
    for name, build in BUILDERS.items():
        run = tmp_path_factory.mktemp(name)
        build(run)
        (run / "metrics.json").write_text("{}")
        out[name] = run
    return out


def _copy(run: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "run"
    shutil.copytree(run, dst)
    return dst


def _plant(path: Path, marker: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path)
    path.write_bytes(pickle.dumps(Plant(marker), protocol=2))


def _load(name: str, run: Path) -> Any:
    return get_system(name).load_scorer(run, Settings())


def test_the_payload_is_live(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    pickle.loads(pickle.dumps(Plant(marker), protocol=2))  # what a pickle loader would do
    assert marker.exists()


@pytest.mark.parametrize("name", RUNNING)
def test_a_pickle_in_place_of_any_artifact_never_runs(
    name: str, runs: dict[str, Path], tmp_path: Path
) -> None:
    assert _load(name, runs[name]) is not None  # the untouched run loads
    files = verify_manifest(runs[name] / "artifacts")
    assert any(f.startswith(MODEL_PATHS[name] + "/") for f in files)
    marker = tmp_path / "pwned"
    for rel in files:
        run = _copy(runs[name], tmp_path / rel.replace("/", "_"))
        _plant(run / "artifacts" / rel, marker)
        with pytest.raises(ServingArtifactError, match=f"{rel}: hash mismatch"):
            _load(name, run)
        write_manifest(run / "artifacts")  # the attacker rewrites the manifest as well
        with contextlib.suppress(ServingArtifactError):
            _load(name, run)  # a file no loader reads may load; a file it reads is refused
        assert not marker.exists(), rel


@pytest.mark.parametrize("name", RUNNING)
def test_a_pickle_in_place_of_the_model_or_under_an_old_name_is_refused(
    name: str, runs: dict[str, Path], tmp_path: Path
) -> None:
    marker = tmp_path / "pwned"
    run = _copy(runs[name], tmp_path / "a")
    _plant(run / "artifacts" / MODEL_PATHS[name], marker)  # the model directory, now a pickle
    for _manifest in ("as written", "rewritten"):
        with pytest.raises(ServingArtifactError):
            _load(name, run)
        write_manifest(run / "artifacts")
    assert not marker.exists()
    for planted in (OLD_PICKLES[name], f"{MODEL_PATHS[name]}/model.pkl", "data.bin"):
        run = _copy(runs[name], tmp_path / planted.replace("/", "_"))
        _plant(run / "artifacts" / planted, marker)
        with pytest.raises(ServingArtifactError, match="not written by the run"):
            _load(name, run)
        assert not marker.exists()
    run = _copy(runs[name], tmp_path / "no-manifest")
    (run / "artifacts" / MANIFEST).unlink()
    with pytest.raises(ServingArtifactError, match="manifest"):
        _load(name, run)


@pytest.mark.parametrize("name", RUNNING)
def test_mlsd_serve_refuses_a_planted_pickle_before_serving(
    name: str, runs: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import uvicorn

    from mlsd.cli import app

    def no_server(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("a server started on planted artifacts")

    monkeypatch.setattr(uvicorn, "run", no_server)
    marker = tmp_path / "pwned"
    run = _copy(runs[name], tmp_path / "a")
    files = verify_manifest(run / "artifacts")
    target = next(f for f in files if f.startswith(MODEL_PATHS[name] + "/"))
    _plant(run / "artifacts" / target, marker)
    result = CliRunner().invoke(app, ["serve", name, "--run", str(run)])
    assert result.exit_code == 2, result.output
    assert "hash mismatch" in result.output and not marker.exists()
