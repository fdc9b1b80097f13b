"""Artifacts on disk: one atomic writer and one run-directory layout for every system.

A run directory holds ``blueprint.md``, ``blueprint.html``, ``metrics.json``, ``figures/`` and
``artifacts/`` (what the server loads). Every file here is written to a temporary sibling and
renamed into place, so a reader (a server reloading, a crash mid-write) never sees half a file.
Artifacts carry no code: weights as state dicts or native formats, tables as Parquet, metadata
as JSON (models through :mod:`mlsd.model_io`); nothing here writes or reads a pickle.

A finished ``artifacts/`` folder ends with ``manifest.json``: the relative path, size and
SHA-256 of every file (:func:`write_manifest`, called by each system's serving code after it
writes its artifacts). Every loader calls :func:`verify_manifest` before it reads anything
else: a file that is missing, changed, or an extra file that looks executable (a pickle, a
script, a shared library) is refused with :class:`mlsd.serving.ServingArtifactError` naming it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import shutil
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from mlsd.serving import ServingArtifactError, read_artifact_json

log = logging.getLogger(__name__)

ARTIFACTS = "artifacts"
METRICS = "metrics.json"
RUN_MARKER = ".mlsd-run"  # in every run directory: {"system", "run_id", "created", "host"}


def artifacts_dir_of(run_dir: Path) -> Path:
    """The ``artifacts/`` folder of a run directory, or ``run_dir`` itself when it is an
    artifacts folder (named ``artifacts``, or holding files but no ``artifacts/``). A missing
    folder is returned as ``run_dir/artifacts``, so the loader's error names the file it
    looked for."""
    run_dir = Path(run_dir)
    inner = run_dir / ARTIFACTS
    if inner.is_dir():
        return inner
    if run_dir.is_dir() and (
        run_dir.name == ARTIFACTS or any(p.is_file() for p in run_dir.iterdir())
    ):
        return run_dir
    return inner


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary sibling of ``path`` to write; rename it onto ``path`` on success.

    On an exception the temporary file is removed and ``path`` is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        yield tmp
        tmp.replace(path)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_bytes(path: Path, data: bytes) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return path


def write_text(path: Path, text: str) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return path


def write_json(path: Path, obj: Any) -> Path:
    """``obj`` as indented JSON (numpy values, Paths converted; NaN becomes null), atomically."""
    return write_text(path, json.dumps(to_jsonable(obj), indent=2, allow_nan=False) + "\n")


def write_npy(path: Path, array: np.ndarray) -> Path:
    with atomic_path(path) as tmp, tmp.open("wb") as fh:
        np.save(fh, array, allow_pickle=False)
    return path


@contextmanager
def atomic_dir(path: Path) -> Iterator[Path]:
    """Yield an empty temporary sibling directory of ``path`` to fill; on success it replaces
    ``path`` (an existing ``path`` is moved aside first and removed after the swap). On an
    exception the temporary directory is removed and ``path`` is left as it was."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    try:
        yield tmp
        old = None
        if path.exists():
            old = path.with_name(f".{path.name}.old-{os.getpid()}")
            path.rename(old)
        tmp.rename(path)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def read_run_marker(run_dir: Path) -> dict[str, Any] | None:
    """The ``.mlsd-run`` marker the runner writes in every run directory, or None when
    ``run_dir`` has none (not a run, or one from before markers) or it is not a JSON object."""
    try:
        marker = json.loads((Path(run_dir) / RUN_MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return marker if isinstance(marker, dict) else None


def read_run_id(run_dir: Path) -> str | None:
    """The run's id (a uuid4 hex): from its marker, else from ``metrics.json``; None for a
    directory that has neither (e.g. a run from before run ids). ``run_dir`` may also be the
    run's ``artifacts/`` folder."""
    run_dir = Path(run_dir)
    if run_dir.name == ARTIFACTS and not (run_dir / RUN_MARKER).exists():
        run_dir = run_dir.parent
    marker = read_run_marker(run_dir)
    if marker is not None and isinstance(marker.get("run_id"), str):
        return str(marker["run_id"])
    try:
        metrics = json.loads((run_dir / METRICS).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    run_id = metrics.get("run_id") if isinstance(metrics, dict) else None
    return run_id if isinstance(run_id, str) else None


def to_jsonable(value: Any) -> Any:
    """Numpy scalars and arrays, Paths and NaN made JSON-safe (NaN becomes null)."""
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return [to_jsonable(v) for v in value.tolist()]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Path):
        return str(value)
    return value


# ---- the manifest: what a run wrote, checked before anything is loaded ---------------------------

MANIFEST = "manifest.json"
MANIFEST_FORMAT = "mlsd-artifacts-manifest"
_CHUNK = 1 << 20
# names and first bytes of files that carry code (what a loader must never meet unannounced)
_CODE_SUFFIXES = frozenset(
    {".pkl", ".pickle", ".joblib", ".dill", ".pt", ".pth", ".ckpt", ".bin", ".py", ".pyc"}
    | {".so", ".dylib", ".dll", ".exe", ".sh"}
)


def sha256_of(path: Path) -> str:
    """The SHA-256 of a file's bytes, hex, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as fh:
        for chunk in iter(lambda: fh.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _head(path: Path, n: int = 4) -> bytes:
    try:
        with Path(path).open("rb") as fh:
            return fh.read(n)
    except OSError:
        return b""


def pickle_protocol(path: Path) -> int | None:
    """The protocol of the pickle ``path`` holds, judged by its first bytes (protocols 2-5
    open with ``0x80`` and the protocol number), or ``None``."""
    head = _head(path, 2)
    return head[1] if len(head) == 2 and head[0] == 0x80 and 2 <= head[1] <= 5 else None


def looks_like_code(path: Path) -> str | None:
    """Why ``path`` looks like a file that carries code (a pickle by its first bytes or its
    name, a script, an executable, a shared library), or ``None``."""
    path = Path(path)
    protocol = pickle_protocol(path)
    if protocol is not None:
        return f"a pickle (protocol {protocol})"
    head = _head(path)
    if head.startswith(b"#!"):
        return "a script"
    if head.startswith(b"\x7fELF"):
        return "an executable"
    suffix = next((s for s in path.suffixes if s.lower() in _CODE_SUFFIXES), None)
    if suffix is not None:
        return f"a {suffix} file (a format that can carry code)"
    return None


def _artifact_files(root: Path) -> list[Path]:
    """Every file under ``root`` but the manifest itself, in a stable order."""
    return sorted(p for p in root.rglob("*") if p.is_file() and p != root / MANIFEST)


def _is_temporary(rel: Path) -> bool:
    """A temporary sibling of the atomic writers (``.name.tmp-PID``, ``.name.old-PID``)."""
    return any(part.startswith(".") and (".tmp-" in part or ".old-" in part) for part in rel.parts)


def write_manifest(artifacts_dir: Path) -> Path:
    """Write ``manifest.json`` (the relative path, size and SHA-256 of every file under
    ``artifacts_dir``, temporary files of the atomic writers left out), atomically. Call it
    last, after every artifact is written."""
    root = Path(artifacts_dir)
    files = []
    for path in _artifact_files(root):
        rel = path.relative_to(root)
        if _is_temporary(rel):
            continue
        files.append(
            {"path": rel.as_posix(), "size": path.stat().st_size, "sha256": sha256_of(path)}
        )
    manifest = {"format": MANIFEST_FORMAT, "version": 1, "algorithm": "sha256", "files": files}
    return write_json(root / MANIFEST, manifest)


def manifest_hashes(artifacts_dir: Path) -> dict[str, str]:
    """``{relative path: sha256}`` of every file the manifest of ``artifacts_dir`` lists (read,
    not recomputed: :func:`verify_manifest` checks them when a loader opens the folder)."""
    entries = _manifest_entries(Path(artifacts_dir) / MANIFEST)
    return {rel: digest for rel, (_, digest) in entries.items()}


def _manifest_entries(path: Path) -> dict[str, tuple[int, str]]:
    """``{relative path: (size, sha256)}`` of a manifest, or :class:`ServingArtifactError`
    naming the field that is wrong."""
    data = read_artifact_json(path)
    if not isinstance(data, dict) or data.get("format") != MANIFEST_FORMAT:
        raise ServingArtifactError(f"{path}: field 'format' is not {MANIFEST_FORMAT!r}")
    if data.get("version") != 1 or data.get("algorithm") != "sha256":
        raise ServingArtifactError(f"{path}: unsupported version or algorithm (want 1, sha256)")
    files = data.get("files")
    if not isinstance(files, list):
        raise ServingArtifactError(f"{path}: field 'files' missing or not a list")
    entries: dict[str, tuple[int, str]] = {}
    for i, entry in enumerate(files):
        rel = entry.get("path") if isinstance(entry, dict) else None
        size = entry.get("size") if isinstance(entry, dict) else None
        digest = entry.get("sha256") if isinstance(entry, dict) else None
        if (
            not isinstance(rel, str)
            or not isinstance(size, int)
            or not isinstance(digest, str)
            or len(digest) != 64
        ):
            raise ServingArtifactError(f"{path}: files[{i}] needs 'path', 'size' and 'sha256'")
        parts = Path(rel).parts
        if not rel or Path(rel).is_absolute() or ".." in parts or rel == MANIFEST:
            raise ServingArtifactError(f"{path}: files[{i}].path {rel!r} is not inside the folder")
        entries[Path(rel).as_posix()] = (size, digest.lower())
    return entries


def verify_manifest(artifacts_dir: Path, required: Sequence[str] = ()) -> list[str]:
    """Check ``artifacts_dir`` against its ``manifest.json`` before anything in it is loaded.

    ``required`` names the files (or folders) the loader will read: each must exist and be
    covered by the manifest. Raises :class:`~mlsd.serving.ServingArtifactError` naming the
    file: a required file missing, no manifest, a listed file missing or changed (size or
    SHA-256), a symbolic link, or a file the run did not write that looks like code (a pickle,
    a script, a shared library; other extra files are logged and ignored: no loader reads
    them). Returns the verified relative paths.
    """
    root = Path(artifacts_dir)
    for name in required:
        if not (root / name).exists():
            raise ServingArtifactError(
                f"{root / name}: serving artifact missing (was the run completed?)"
            )
    manifest = root / MANIFEST
    if not manifest.is_file():
        raise ServingArtifactError(
            f"{manifest}: missing: the artifacts carry no manifest of their files (a run of an "
            "older mlsd, or one that did not finish); run it again to serve it"
        )
    entries = _manifest_entries(manifest)
    for rel, (size, digest) in entries.items():
        path = root / rel
        if path.is_symlink():
            raise ServingArtifactError(f"{path}: a symbolic link; artifacts are plain files")
        if not path.is_file():
            raise ServingArtifactError(f"{path}: serving artifact missing (listed in {MANIFEST})")
        found = sha256_of(path) if path.stat().st_size == size else None
        if found != digest:
            raise ServingArtifactError(
                f"{path}: hash mismatch with {MANIFEST} (size {path.stat().st_size} vs "
                f"{size}, sha256 {found or '-'} vs {digest}): the file changed after the run "
                "wrote it"
            )
    for name in required:
        prefix = Path(name).as_posix()
        if not any(rel == prefix or rel.startswith(prefix + "/") for rel in entries):
            raise ServingArtifactError(f"{root / name}: not listed in {MANIFEST}")
    for path in _artifact_files(root):
        rel = path.relative_to(root).as_posix()
        if rel in entries:
            continue
        reason = looks_like_code(path)
        if reason is not None:
            raise ServingArtifactError(
                f"{path}: not written by the run (absent from {MANIFEST}) and looks like "
                f"{reason}; refusing to load this folder"
            )
        if not _is_temporary(Path(rel)):
            log.warning("%s: not in %s; ignored (no loader reads it)", path, MANIFEST)
    return sorted(entries)
