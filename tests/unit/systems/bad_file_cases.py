"""The pieces every bad-file table shares: a case, and builders of malformed ``--data`` inputs.

Imported by the tables (``test_*_bad_files.py``) and by ``conftest.py`` beside this file (pytest
puts this folder on ``sys.path`` for its conftest, as there is no ``__init__.py``)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

Specs = tuple[str, str | None]  # (--data, --test-data or None)
Builder = Callable[[Path], Specs]  # writes the files under a folder, returns the specs
RefusedRun = Callable[[str, Builder, str, str], str]


@dataclass(frozen=True)
class Case:
    id: str
    build: Builder
    reason: str  # a regex the error must match: why the file is refused
    where: str  # after the input folder's path: the file, ":line", ": field 'x'" ("" = folder)


def one_file(name: str, content: str | bytes, fmt: str) -> Builder:
    """One file ``name`` holding ``content``, passed as ``--data fmt:path``."""

    def build(d: Path) -> Specs:
        d.mkdir(parents=True, exist_ok=True)
        (d / name).write_bytes(content.encode() if isinstance(content, str) else content)
        return f"{fmt}:{d / name}", None

    return build


def empty_folder(fmt: str) -> Builder:
    """An empty folder, passed as ``--data fmt:folder``."""

    def build(d: Path) -> Specs:
        d.mkdir(parents=True)
        return f"{fmt}:{d}", None

    return build
