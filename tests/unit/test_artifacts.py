"""Atomic writes and the run-directory layout."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from mlsd.artifacts import (
    artifacts_dir_of,
    atomic_path,
    to_jsonable,
    write_json,
    write_npy,
    write_text,
)


def test_to_jsonable_handles_numpy_and_nan() -> None:
    obj = {"a": np.int64(3), "b": np.array([1.5, np.nan]), "c": float("inf"), "d": (1, 2)}
    assert to_jsonable(obj) == {"a": 3, "b": [1.5, None], "c": None, "d": [1, 2]}


def test_writes_land_whole_and_leave_no_temp_files(tmp_path: Path) -> None:
    write_json(tmp_path / "m.json", {"x": np.float32(0.5)})
    write_text(tmp_path / "sub" / "t.txt", "hi")
    write_npy(tmp_path / "a.npy", np.arange(3))
    assert json.loads((tmp_path / "m.json").read_text()) == {"x": 0.5}
    assert (tmp_path / "sub" / "t.txt").read_text() == "hi"
    np.testing.assert_array_equal(np.load(tmp_path / "a.npy"), np.arange(3))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.npy", "m.json", "sub"]


def test_a_failed_write_keeps_the_old_file(tmp_path: Path) -> None:
    path = write_text(tmp_path / "t.txt", "old")
    with pytest.raises(RuntimeError), atomic_path(path) as tmp:
        tmp.write_text("half")
        raise RuntimeError("crash mid-write")
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["t.txt"]


def test_artifacts_dir_of_a_run_a_bare_folder_and_a_missing_one(tmp_path: Path) -> None:
    run = tmp_path / "run"
    (run / "artifacts").mkdir(parents=True)
    (run / "metrics.json").write_text("{}")
    assert artifacts_dir_of(run) == run / "artifacts"
    assert artifacts_dir_of(run / "artifacts") == run / "artifacts"
    bare = tmp_path / "bare"
    bare.mkdir()
    (bare / "model.pkl").write_bytes(b"x")
    assert artifacts_dir_of(bare) == bare
    assert artifacts_dir_of(tmp_path / "nope") == tmp_path / "nope" / "artifacts"
