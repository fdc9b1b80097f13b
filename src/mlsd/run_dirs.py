"""Run directories: what ``--out`` may replace, and how a finished run is moved into place.

Every run directory carries a marker file, ``.mlsd-run`` (the system, the run id, when and on
which host it was made). :func:`check_out_dir` refuses an ``--out`` that is neither empty nor a
run (unless ``force``, and never the home directory, the root, or one holding the working
directory); :func:`remove_stale_work_dirs` removes the ``.{name}.tmp-<pid>`` / ``.old-<pid>``
siblings that a killed run left, once that process is gone; :func:`replace_dir` swaps a finished
run in with two renames. The runner (:mod:`mlsd.runner`) uses them around the steps.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import socket
from datetime import UTC, datetime
from pathlib import Path

from mlsd.artifacts import METRICS, RUN_MARKER, read_run_marker, write_json

log = logging.getLogger(__name__)


class RunRefusedError(ValueError):
    """A run that cannot be done as asked (e.g. a scale this machine cannot build); the CLI
    prints the message and exits 2 before anything is written."""


_WORK_DIR = re.compile(r"^\.(?P<name>.+)\.(?:tmp|old)-(?P<pid>\d+)$")


def is_run_dir(path: Path) -> bool:
    """Whether ``path`` is a directory an mlsd run wrote (it holds the ``.mlsd-run`` marker)."""
    return read_run_marker(path) is not None


def check_out_dir(out: Path, *, force: bool = False) -> None:
    """:class:`RunRefusedError` unless ``out`` may become a run directory: it does not exist, is
    an empty directory, or is an mlsd run (with ``force``: any directory); never the home
    directory, the root, or one holding the working directory."""
    if not out.exists() and not out.is_symlink():
        return
    if out.is_symlink() or not out.is_dir():  # run_pipeline resolves links first
        raise RunRefusedError(
            f"{out} exists and is not a directory (or is a link): choose another --out"
        )
    protected = _protected(out)
    if protected:
        raise RunRefusedError(f"{out} is {protected}: refusing to replace it, even with --force")
    if is_run_dir(out) or not any(out.iterdir()):
        return
    if force:
        log.warning("replacing %s, which is not an mlsd run (--force)", out)
        return
    legacy = (out / METRICS).is_file()
    hint = " (a run from before run markers: --force replaces it)" if legacy else ""
    raise RunRefusedError(
        f"{out} exists and is not an mlsd run (no {RUN_MARKER} marker){hint}: refusing to "
        "replace it; choose another --out, or pass --force to replace it"
    )


def _protected(out: Path) -> str | None:
    """Why ``out`` must never be replaced, or None."""
    home = Path.home().resolve()
    cwd = Path.cwd().resolve()
    if out == home:
        return "your home directory"
    if out == Path(out.anchor):
        return "the root of the file system"
    if out == cwd or out in cwd.parents:
        return "the working directory or one holding it"
    return None


def remove_stale_work_dirs(out: Path) -> list[Path]:
    """Remove the temporary siblings of ``out`` that earlier runs left behind (``.{name}.tmp-PID``
    and ``.{name}.old-PID`` of a process that is gone, holding the run marker or nothing);
    returns what was removed. A run killed between its two renames left the previous run as
    ``.{name}.old-PID`` and no ``out``: that one is put back instead."""
    removed: list[Path] = []
    if not out.parent.is_dir():
        return removed
    for sibling in sorted(out.parent.iterdir()):
        match = _WORK_DIR.match(sibling.name)
        if match is None or match["name"] != out.name or not sibling.is_dir():
            continue
        if _pid_alive(int(match["pid"])) or sibling.is_symlink():
            continue
        if any(sibling.iterdir()) and not _made_here(sibling):
            continue  # not a run of this machine's (another container's pids are not ours)
        if ".old-" in sibling.name and _made_here(sibling) and not out.exists():
            sibling.rename(out)
            log.info("put back %s, the run an interrupted run was replacing", out)
            continue
        shutil.rmtree(sibling, ignore_errors=True)
        log.info("removed %s, left by an interrupted run", sibling)
        removed.append(sibling)
    return removed


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True  # someone else's process (or a name we did not make): leave it
    return True


def _made_here(path: Path) -> bool:
    """Whether ``path`` holds a run marker written on this host (whose pids we can check)."""
    marker = read_run_marker(path)
    return marker is not None and marker.get("host") == socket.gethostname()


def write_marker(work: Path, system: str, run_id: str) -> None:
    created = datetime.now(UTC).isoformat(timespec="seconds")
    marker = {"system": system, "run_id": run_id, "created": created}
    write_json(work / RUN_MARKER, {**marker, "host": socket.gethostname()})


def replace_dir(src: Path, dst: Path) -> None:
    """Move ``src`` to ``dst``; an existing ``dst`` is replaced only after ``src`` is in place."""
    old = None
    if dst.exists():
        old = dst.parent / f".{dst.name}.old-{os.getpid()}"
        dst.rename(old)
    try:
        src.rename(dst)
    except BaseException:
        if old is not None:
            old.rename(dst)  # interrupted between the two renames: put the old run back
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
