"""Step 6 of the book, serving, without HTTP: what a system's ``serving.py`` builds on.

A system's ``serving.py`` holds its scorer (the object that answers a request in-process) and
the artifacts it loads from a run directory; the HTTP layer lives in :mod:`mlsd.api`. This module
gives them one error for a missing or unreadable artifact, so the CLI and the reload endpoints
turn it into a clear message, never a crash.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


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
