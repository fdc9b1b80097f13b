"""Malformed ``--data edgelist:`` files: ``mlsd run`` refuses each with exit 2 and one line
naming the file, the line and the field, before anything is written (``refused_run``)."""

from __future__ import annotations

from pathlib import Path

import pytest
from bad_file_cases import Builder, RefusedRun, Specs

GOOD = [f"{i} {i + 1} {i}" for i in range(30)]


def one_file(content: str | bytes) -> Builder:
    def build(d: Path) -> Specs:
        d.mkdir(parents=True, exist_ok=True)
        (d / "g.txt").write_bytes(content.encode() if isinstance(content, str) else content)
        return f"edgelist:{d / 'g.txt'}", None

    return build


CASES = [
    (
        "letters",
        one_file("\n".join([*GOOD, "7 x 3"])),
        "not a non-negative integer",
        "/g.txt:31: field 'v'",
    ),
    ("negative", one_file("\n".join(["-1 2 0", *GOOD])), "non-negative", "/g.txt:1: field 'u'"),
    ("one-column", one_file("\n".join([*GOOD[:3], "7"])), "columns", "/g.txt:4: field 'u'"),
    ("four-columns", one_file("1 2 3 4\n"), "columns", "/g.txt:1: field 'timestamp'"),
    (
        "mixed-ts",
        one_file("\n".join([*GOOD[:5], "1 9"])),
        "timestamp",
        "/g.txt:6: field 'timestamp'",
    ),
    (
        "bad-ts",
        one_file("\n".join([*GOOD[:5], "1 9 later"])),
        "not a number",
        "/g.txt:6: field 'timestamp'",
    ),
    (
        "nan-ts",
        one_file("\n".join([*GOOD[:5], "1 9 nan"])),
        "not a number",
        "/g.txt:6: field 'timestamp'",
    ),
    ("binary", one_file(b"1 2 3\n\xff\xfe 4\n"), "UTF-8", "/g.txt:2: field 'u'"),
    ("too-few", one_file("1 2\n2 3\n3 3\n"), "at least", "/g.txt"),
]


@pytest.mark.parametrize(("name", "build", "reason", "where"), CASES, ids=[c[0] for c in CASES])
def test_bad_edge_list_is_refused_in_one_line(
    name: str, build: Builder, reason: str, where: str, refused_run: RefusedRun
) -> None:
    refused_run("people-you-may-know", build, reason, where)
