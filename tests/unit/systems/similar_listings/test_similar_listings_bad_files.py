"""Malformed session logs are refused: exit 2, one line naming the file, line and field."""

from __future__ import annotations

from pathlib import Path

import pytest
from bad_file_cases import Builder, RefusedRun, Specs


def _file(text: str) -> Builder:
    def build(folder: Path) -> Specs:
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / "log.csv"
        path.write_text(text)
        return f"sessions:{path}", None

    return build


GOOD = "".join(f"{s},{i},{s * 10 + i}\n" for s in range(1, 4) for i in range(1, 4))
CASES = [
    ("session_id,item_id,timestamp\n1,5,100\n1,,101\n", "empty", "/log.csv:3: field 'item_id'"),
    (
        "session_id,item_id,timestamp\n1,5,100\n1,6,soon\n",
        "neither a number nor a date",
        "/log.csv:3: field 'time'",
    ),
    ("session_id,item_id\n1,5\n2\n", "columns, expected", "/log.csv:3"),
    ("sessionid,timestamp\n1,100\n", "no column for", "/log.csv:1"),
    ("", "empty file", "/log.csv"),
    (GOOD, "no session of 2\\+ clicks", "/log.csv"),
]


@pytest.mark.parametrize(("text", "reason", "where"), CASES)
def test_malformed_session_logs_are_refused(
    refused_run: RefusedRun, text: str, reason: str, where: str
) -> None:
    refused_run("similar-listings", _file(text), reason, where)
