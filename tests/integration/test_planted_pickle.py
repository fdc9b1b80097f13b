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
from pathlib import Path
from typing import Any

import pytest
import torch
from tiny_runs import TINY_RUNS
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


BUILDERS = TINY_RUNS
# the directory (or file) each system's model lives in, and the pickle names loaders once read
MODEL_PATHS = {
    "street-view-blur": "detector",
    "event-rec": "model",
    "similar-listings": "embeddings",
    "ad-click": "model",
    "video-rec": "recommender",
    "visual-search": "encoder",
    "video-search": "fusion",
    "people-you-may-know": "model",
    "news-feed": "model",
    "harmful-content": "models",
}
OLD_PICKLES = {
    "street-view-blur": "detector.pkl",
    "event-rec": "model.pkl",
    "similar-listings": "embeddings.pkl",
    "people-you-may-know": "model.pkl",
    "ad-click": "model.pkl",
    "video-rec": "recommender.pkl",
    "visual-search": "encoder.pkl",
    "video-search": "searcher.pkl",
    "news-feed": "model.pkl",
    "harmful-content": "model.pkl",
}
RUNNING = sorted(name for name, info in SYSTEMS.items() if info.package is not None)


def test_every_running_system_is_covered() -> None:
    assert sorted(BUILDERS) == RUNNING, "a new system needs a tiny run in BUILDERS"


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = {}
    for name, build in BUILDERS.items():
        run = tmp_path_factory.mktemp(name)
        out[name] = build(run)
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
