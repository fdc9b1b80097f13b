"""The indexing pipeline's edge cases: a folder of only bad images writes nothing, and indexing
the same images again stores nothing again (a content hash per image beside the index)."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from mlsd.cli import app
from mlsd.data import DataError
from mlsd.index import VectorIndex
from mlsd.systems.visual_search.model import CNNEncoder
from mlsd.systems.visual_search.serving import load_searcher, save_serving_artifacts
from mlsd.systems.visual_search.serving_ingest import HASHES_FILE, index_folder

runner = CliRunner()


def png(seed: int) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 255, size=(24, 24, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture(scope="module")
def base_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run's artifacts: an untrained CNN and a flat index of 6 catalogue images."""
    images = np.stack(
        [np.asarray(Image.open(io.BytesIO(png(s))).resize((16, 16))) for s in range(6)]
    )
    enc = CNNEncoder(dim=8, width=4, train_steps=0).fit(images, np.arange(6))
    ids = np.arange(6, dtype=np.int64) + 100
    index = VectorIndex.build("flat", enc.encode(images), ids)
    run = tmp_path_factory.mktemp("run")
    labels = {int(i): f"catalogue-{int(i)}" for i in ids}
    save_serving_artifacts(run / "artifacts", enc, "untrained_cnn", index, 16, labels)
    (run / "metrics.json").write_text("{}")
    return run


@pytest.fixture
def run(base_run: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(base_run, tmp_path / "run"))


def snapshot(run: Path) -> dict[str, bytes]:
    return {str(p.relative_to(run)): p.read_bytes() for p in run.rglob("*") if p.is_file()}


def folder_of(root: Path, files: dict[str, bytes]) -> Path:
    for name, data in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    return root


def test_replace_skip_bad_on_only_bad_images_writes_nothing(run: Path, tmp_path: Path) -> None:
    folder = folder_of(tmp_path / "bad", {"a.png": b"broken", "b.jpg": b"", "c/d.png": b"\x89PN"})
    before = snapshot(run)
    with pytest.raises(DataError, match=r"no decodable image among its 3 image files \(3 skipped"):
        index_folder(folder, run, replace=True, skip_bad=True)
    assert snapshot(run) == before
    assert len(load_searcher(run / "artifacts").index) == 6


def test_cli_refuses_only_bad_images_with_exit_2(run: Path, tmp_path: Path) -> None:
    folder = folder_of(tmp_path / "bad", {"a.png": b"broken", "b.png": b"nope"})
    before = snapshot(run)
    args = ["index-images", str(folder), "--run", str(run), "--replace", "--skip-bad"]
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and f"{folder}: no decodable image" in errors[0]
    assert "Traceback" not in result.output
    assert snapshot(run) == before


def test_indexing_the_same_folder_again_stores_nothing_again(run: Path, tmp_path: Path) -> None:
    folder = folder_of(tmp_path / "new", {"x.png": png(10), "sub/y.png": png(11)})
    first = index_folder(folder, run)
    assert (first.indexed, first.already_indexed, first.index_size) == (2, 0, 8)
    hashes = json.loads((run / "artifacts" / HASHES_FILE).read_text())
    assert sorted(hashes.values()) == [106, 107]
    before = snapshot(run)
    again = index_folder(folder, run)
    assert (again.indexed, again.already_indexed, again.index_size) == (0, 2, 8)
    assert snapshot(run) == before  # nothing rewritten
    # a copy under another name, plus one new image: only the new one is stored
    folder_of(folder, {"copy-of-x.png": png(10), "z.png": png(12)})
    third = index_folder(folder, run)
    assert (third.indexed, third.already_indexed, third.index_size) == (1, 3, 9)
    searcher = load_searcher(run / "artifacts")
    assert (
        sorted(searcher.labels.values()).count("x.png") == 1 and "z.png" in searcher.labels.values()
    )


def test_duplicates_within_one_folder_are_stored_once(run: Path, tmp_path: Path) -> None:
    folder = folder_of(tmp_path / "dup", {"a.png": png(20), "b.png": png(20), "c.png": png(21)})
    res = index_folder(folder, run, replace=True, batch_size=1)
    assert (res.indexed, res.already_indexed, res.index_size) == (2, 1, 2)


def test_replace_starts_the_hashes_afresh(run: Path, tmp_path: Path) -> None:
    folder = folder_of(tmp_path / "new", {"x.png": png(30)})
    index_folder(folder, run)
    res = index_folder(folder, run, replace=True)
    assert (res.indexed, res.already_indexed, res.index_size) == (1, 0, 1)
    assert list(json.loads((run / "artifacts" / HASHES_FILE).read_text()).values()) == [0]


def test_cli_says_how_many_were_already_indexed(run: Path, tmp_path: Path) -> None:
    folder = folder_of(tmp_path / "new", {"x.png": png(40), "y.png": png(41)})
    assert runner.invoke(app, ["index-images", str(folder), "--run", str(run)]).exit_code == 0
    result = runner.invoke(app, ["index-images", str(folder), "--run", str(run)])
    text = " ".join(result.output.split())
    assert result.exit_code == 0, result.output
    assert "indexed 0 images (0 skipped)" in text and "2 already indexed" in text
    assert "Nothing changed" in text
