"""Step 6 of the book, serving, without HTTP: what a system's ``serving.py`` builds on.

A system's ``serving.py`` holds its scorer (the object that answers a request in-process) and
the artifacts it loads from a run directory; the HTTP layer lives in :mod:`mlsd.api`. This module
gives them one error for a missing or unreadable artifact, so the CLI and the reload endpoints
turn it into a clear message, never a crash.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd


class ServingArtifactError(ValueError):
    """A serving artifact of a run directory is missing or unreadable; the message names the
    file. The CLI and the reload endpoints turn it into a clear error, never a crash."""


def read_artifact_json(path: Path) -> Any:
    """A JSON artifact of a run directory, or :class:`ServingArtifactError` naming the file."""
    if not path.is_file():
        raise ServingArtifactError(f"{path}: serving artifact missing (was the run completed?)")
    try:
        return json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ServingArtifactError(f"{path}: unreadable serving artifact: {exc}") from exc


def artifact_count(meta: dict[str, Any], key: str, path: Path) -> int:
    """Field ``key`` of the JSON artifact ``meta`` (read from ``path``): a non-negative integer,
    or :class:`ServingArtifactError` naming the file and the field."""
    v = meta.get(key)
    if not isinstance(v, int) or isinstance(v, bool) or v < 0:
        raise ServingArtifactError(f"{path}: field {key!r} missing or not a non-negative integer")
    return v


def read_artifact_model(path: Path, kinds: tuple[type, ...]) -> Any:
    """A model saved as data (:mod:`mlsd.model_io`) that must be one of ``kinds``, or
    :class:`ServingArtifactError` naming the folder."""
    from mlsd.model_io import ModelFileError, load_value

    try:
        model = load_value(path)
    except (ModelFileError, OSError) as exc:
        raise ServingArtifactError(f"{path}: unreadable model: {exc}") from exc
    if not isinstance(model, kinds):
        names = " or ".join(k.__name__ for k in kinds)
        raise ServingArtifactError(f"{path}: holds a {type(model).__name__}, not a {names}")
    return model


def read_artifact_tables(folder: Path, names: Sequence[str]) -> dict[str, pd.DataFrame]:
    """``folder/<name>.parquet`` for every name, or :class:`ServingArtifactError` naming the
    unreadable file."""
    from mlsd.data import read_parquet

    frames = {}
    for name in names:
        p = folder / f"{name}.parquet"
        try:
            frames[name] = read_parquet(p)
        except Exception as exc:  # pyarrow raises several types for a bad file
            raise ServingArtifactError(f"{p}: unreadable table: {exc}") from exc
    return frames
