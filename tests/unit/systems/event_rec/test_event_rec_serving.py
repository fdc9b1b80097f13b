"""The served ranker: artifacts as data with a manifest, filtering, timings, unknown users."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from mlsd.artifacts import pickle_protocol, verify_manifest
from mlsd.serving import ServingArtifactError
from mlsd.settings import Settings
from mlsd.systems.event_rec.features import Platform, daily_states, impression_features
from mlsd.systems.event_rec.model import ScaledLogistic, score
from mlsd.systems.event_rec.serving import (
    EventRecScorer,
    UnknownUserError,
    load_scorer,
    save_serving_artifacts,
    to_latlon,
    world_tables,
)
from mlsd.systems.event_rec.world import EventRecWorld
from mlsd.systems.event_rec.world_config import DAY_S, EventWorldConfig
from mlsd.world import Scale

CFG = EventWorldConfig.for_scale(Scale.TINY).with_(n_days=4, test_days=1, ab_days=1)


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    w = EventRecWorld(Scale.TINY, 0, CFG)
    lg = w.log()
    tables = world_tables(w, lg)
    platform = Platform(tables.users, tables.events, tables.hoods)
    days = list(range(CFG.n_days))
    states = daily_states(platform, lg, days, CFG.n_hosts, w.friends, w.follows, CFG.n_slots)
    X = impression_features(platform, states, lg.impressions)
    model = ScaledLogistic().fit(X, lg.impressions["register"].to_numpy(np.int64))
    out = tmp_path_factory.mktemp("event-rec")
    save_serving_artifacts(
        out / "artifacts",
        model,
        "logistic_regression",
        tables,
        CFG.n_days * DAY_S,
        CFG.n_hosts,
        CFG.n_slots,
    )
    return out


def test_artifacts_are_data_with_a_manifest(run: Path) -> None:
    files = verify_manifest(run / "artifacts")
    assert "serving.json" in files and any(f.startswith("model/") for f in files)
    assert not [f for f in files if pickle_protocol(run / "artifacts" / f) is not None]
    meta = json.loads((run / "artifacts" / "serving.json").read_text())
    assert meta["model_name"] == "logistic_regression"


def test_recommendations_are_filtered_ranked_and_timed(run: Path) -> None:
    scorer = load_scorer(run, Settings())
    rec = scorer.recommend(3, k=5)
    assert len(rec.events) == min(5, rec.candidates) and rec.candidates <= rec.open_events
    scores = [e.score for e in rec.events]
    assert scores == sorted(scores, reverse=True)
    assert all(e.distance_km <= 8.0 and 0 < e.hours_until <= 7 * 24 for e in rec.events)
    assert set(rec.timings_ms) == {"filtering", "features", "ranking", "total"}
    wide = scorer.recommend(3, k=500, radius_km=1000.0)
    assert wide.candidates >= rec.candidates


def test_search_around_a_point(run: Path) -> None:
    scorer = load_scorer(run, Settings())
    ev = scorer.platform.events.iloc[int(scorer.open_events[0])]
    lat, lon = to_latlon(np.array([ev["x"]]), np.array([ev["y"]]))
    rec = scorer.recommend(3, k=50, lat=float(lat[0]), lon=float(lon[0]), radius_km=1.0)
    for e in rec.events:  # every event within the radius of the point (a degree ~ 111 km)
        dy = (e.lat - lat[0]) * 111.2
        dx = (e.lon - lon[0]) * 111.2 * np.cos(np.radians(lat[0]))
        assert np.hypot(dx, dy) <= 1.0 + 1e-6


def test_unknown_user_is_an_error(run: Path) -> None:
    scorer = load_scorer(run, Settings())
    with pytest.raises(UnknownUserError, match="unknown user"):
        scorer.recommend(10**9)
    with pytest.raises(UnknownUserError):
        scorer.recommend(-1)


def test_serving_features_match_offline(run: Path) -> None:
    """The server's features are the offline function's at the serving clock."""
    scorer: EventRecScorer = load_scorer(run, Settings())
    rec = scorer.recommend(7, k=3)
    assert [e.score for e in rec.events] == pytest.approx(
        [e.score for e in scorer.recommend(7, k=3).events]
    )
    assert callable(score)


def test_a_changed_table_is_refused(run: Path, tmp_path: Path) -> None:
    import shutil

    dst = tmp_path / "run"
    shutil.copytree(run, dst)
    (dst / "artifacts" / "tables" / "users.parquet").write_bytes(b"garbage")
    with pytest.raises(ServingArtifactError, match="hash mismatch"):
        load_scorer(dst, Settings())


def test_description_vectors_travel_as_arrays(run: Path, tmp_path: Path) -> None:
    """With description embeddings, the vectors are .npy data read without pickle."""
    import pickle
    import shutil

    from mlsd.artifacts import write_manifest
    from mlsd.model_io import load_value
    from mlsd.systems.event_rec.features_text import embed_descriptions

    scorer = load_scorer(run, Settings())
    text = embed_descriptions(scorer.platform.events["description"].tolist(), "hashing")
    tables = world_tables(*_world_and_log())
    out = tmp_path / "run"
    model = load_value(run / "artifacts" / "model")
    save_serving_artifacts(
        out / "artifacts", model, "lr", tables, CFG.n_days * DAY_S, CFG.n_hosts, CFG.n_slots, text
    )
    with_text = load_scorer(out, Settings())
    assert with_text.platform.text is not None
    sims = with_text.platform.description_similarity(
        with_text.state, np.array([1, 2]), with_text.open_events[:2]
    )
    assert np.all(np.abs(sims) <= 1.0 + 1e-9)
    bad = tmp_path / "bad"
    shutil.copytree(out, bad)
    marker = tmp_path / "pwned"
    (bad / "artifacts" / "tables" / "event_vectors.npy").write_bytes(
        pickle.dumps({"x": str(marker)}, protocol=2)
    )
    write_manifest(bad / "artifacts")
    with pytest.raises(ServingArtifactError, match=r"event_vectors\.npy"):
        load_scorer(bad, Settings())


def _world_and_log() -> tuple[EventRecWorld, object]:
    w = EventRecWorld(Scale.TINY, 0, CFG)
    return w, w.log()
