"""Atomic writes, the run-directory layout and the manifest checked before anything loads."""

from __future__ import annotations

import hashlib
import json
import pickle
import re
from pathlib import Path

import numpy as np
import pytest

from mlsd.artifacts import (
    MANIFEST,
    artifacts_dir_of,
    atomic_dir,
    atomic_path,
    looks_like_code,
    pickle_protocol,
    to_jsonable,
    verify_manifest,
    write_json,
    write_manifest,
    write_npy,
    write_text,
)
from mlsd.serving import ServingArtifactError


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
    (bare / "serving.json").write_bytes(b"{}")
    assert artifacts_dir_of(bare) == bare
    assert artifacts_dir_of(tmp_path / "nope") == tmp_path / "nope" / "artifacts"


# ---- atomic directories -------------------------------------------------------------------------
def test_atomic_dir_replaces_a_folder_whole_or_not_at_all(tmp_path: Path) -> None:
    target = tmp_path / "model"
    with atomic_dir(target) as tmp:
        (tmp / "a.json").write_text("1")
    with pytest.raises(RuntimeError), atomic_dir(target) as tmp:
        (tmp / "b.json").write_text("half")
        raise RuntimeError("crash mid-write")
    assert [p.name for p in target.iterdir()] == ["a.json"]
    with atomic_dir(target) as tmp:
        (tmp / "c.json").write_text("2")
    assert [p.name for p in target.iterdir()] == ["c.json"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]  # no temporary left


# ---- the manifest -------------------------------------------------------------------------------
PICKLE = pickle.dumps({"x": 1}, protocol=4)


def _artifacts(root: Path) -> Path:
    write_json(root / "serving.json", {"model_name": "m"})
    write_npy(root / "model" / "arrays.npy", np.arange(4))
    write_text(root / "online" / "user.parquet", "table")
    return root


def test_write_manifest_lists_every_file_with_its_size_and_hash(tmp_path: Path) -> None:
    root = _artifacts(tmp_path / "artifacts")
    (root / ".serving.json.tmp-123").write_text("a temporary of an atomic write")
    write_manifest(root)
    doc = json.loads((root / MANIFEST).read_text())
    assert doc["format"] == "mlsd-artifacts-manifest" and doc["algorithm"] == "sha256"
    files = {f["path"]: f for f in doc["files"]}
    assert set(files) == {"model/arrays.npy", "online/user.parquet", "serving.json"}
    entry = files["serving.json"]
    data = (root / "serving.json").read_bytes()
    assert entry["size"] == len(data) and entry["sha256"] == hashlib.sha256(data).hexdigest()
    assert verify_manifest(root, required=("serving.json", "model")) == sorted(files)


def test_verify_refuses_a_changed_or_missing_file_and_names_it(tmp_path: Path) -> None:
    root = _artifacts(tmp_path / "artifacts")
    write_manifest(root)
    (root / "online" / "user.parquet").write_text("tablf")  # same size, other bytes
    with pytest.raises(ServingArtifactError, match=r"online/user\.parquet: hash mismatch"):
        verify_manifest(root)
    write_manifest(root)
    (root / "model" / "arrays.npy").write_bytes(PICKLE)  # a model file replaced by a pickle
    with pytest.raises(ServingArtifactError, match=r"model/arrays\.npy: hash mismatch"):
        verify_manifest(root)
    (root / "model" / "arrays.npy").unlink()
    with pytest.raises(ServingArtifactError, match=r"arrays\.npy: serving artifact missing"):
        verify_manifest(root)


def test_verify_refuses_an_extra_file_that_looks_like_code(tmp_path: Path) -> None:
    root = _artifacts(tmp_path / "artifacts")
    write_manifest(root)
    (root / "notes.txt").write_text("an extra file no loader reads is only logged")
    verify_manifest(root)
    for name, content in [
        ("model.pkl", b"anything"),
        ("model/weights", PICKLE),
        ("hook.sh", b"echo"),
        ("run", b"#!/bin/sh\n"),
        (".x.tmp-1", PICKLE),
    ]:
        path = root / name
        path.write_bytes(content)
        with pytest.raises(ServingArtifactError, match=re.escape(f"{path}: not written by")):
            verify_manifest(root)
        path.unlink()
    verify_manifest(root)


def test_verify_needs_a_sound_manifest_covering_what_the_loader_reads(tmp_path: Path) -> None:
    root = _artifacts(tmp_path / "artifacts")
    with pytest.raises(ServingArtifactError, match=r"serving\.json: serving artifact missing"):
        verify_manifest(tmp_path / "empty", required=("serving.json",))
    with pytest.raises(ServingArtifactError, match=r"manifest\.json: missing"):
        verify_manifest(root)
    write_manifest(root)
    write_text(root / "encoder" / "model.json", "{}")  # written after the manifest
    with pytest.raises(ServingArtifactError, match=r"encoder: not listed in manifest\.json"):
        verify_manifest(root, required=("encoder",))
    doc = json.loads((root / MANIFEST).read_text())
    for bad, field in [
        ({**doc, "format": "x"}, "'format'"),
        ({**doc, "files": {}}, "'files'"),
        ({**doc, "files": [{"path": "a"}]}, r"files\[0\]"),
        ({**doc, "files": [{**doc["files"][0], "path": "../etc/passwd"}]}, "not inside"),
    ]:
        write_json(root / MANIFEST, bad)
        with pytest.raises(ServingArtifactError, match=field):
            verify_manifest(root)
    (root / MANIFEST).write_text("{not json")
    with pytest.raises(ServingArtifactError, match="unreadable"):
        verify_manifest(root)


def test_verify_refuses_a_symbolic_link(tmp_path: Path) -> None:
    root = _artifacts(tmp_path / "artifacts")
    write_manifest(root)
    target = root / "serving.json"
    moved = tmp_path / "elsewhere.json"
    target.rename(moved)
    target.symlink_to(moved)
    with pytest.raises(ServingArtifactError, match="symbolic link"):
        verify_manifest(root)


def test_looks_like_code_by_first_bytes_and_name(tmp_path: Path) -> None:
    cases = {
        "a.bin.npy": (PICKLE, "a pickle (protocol 4)"),
        "model.joblib": (b"", "a .joblib file"),
        "exe": (b"\x7fELF\x02", "an executable"),
        "table.parquet": (b"PAR1", None),
        "weights.npz": (b"PK\x03\x04", None),
    }
    for name, (content, why) in cases.items():
        (tmp_path / name).write_bytes(content)
        reason = looks_like_code(tmp_path / name)
        assert (reason is None) if why is None else (reason or "").startswith(why), name
    assert pickle_protocol(tmp_path / "a.bin.npy") == 4
    assert pickle_protocol(tmp_path / "table.parquet") is None


def test_manifest_hashes_lists_what_the_manifest_holds(tmp_path: Path) -> None:
    from mlsd.artifacts import manifest_hashes, sha256_of, write_manifest

    write_text(tmp_path / "online" / "t.parquet", "rows")
    write_manifest(tmp_path)
    assert manifest_hashes(tmp_path) == {
        "online/t.parquet": sha256_of(tmp_path / "online" / "t.parquet")
    }
