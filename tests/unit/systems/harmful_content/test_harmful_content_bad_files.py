"""Malformed --data files are refused with one line naming the file, the line and the field."""

from __future__ import annotations

from pathlib import Path

import pytest
from bad_file_cases import Builder, Case, RefusedRun, Specs, one_file


def with_columns(content: str, query: str) -> Builder:
    """``d.csv`` passed as ``--data csv:PATH?QUERY`` (the columns named in the spec)."""

    def build(d: Path) -> Specs:
        d.mkdir(parents=True, exist_ok=True)
        (d / "d.csv").write_text(content)
        return f"csv:{d / 'd.csv'}?{query}", None

    return build


OK_ROWS = "".join(f"post {i},{'spam' if i % 2 else 'benign'}\n" for i in range(20))
CASES = [
    Case(
        "missing column",
        one_file("d.csv", "body,label\nhi,spam\n", "csv"),
        "no such column",
        "/d.csv: field 'text'",
    ),
    Case("empty file", one_file("d.csv", "", "csv"), "empty file", "/d.csv"),
    Case(
        "not utf-8",
        one_file("d.csv", b"text,label\nhi,spam\n\xff\xfe,spam\n", "csv"),
        "not UTF-8",
        "/d.csv:3",
    ),
    Case(
        "empty label",
        one_file("d.csv", "text,label\n" + OK_ROWS + "hello,\n", "csv"),
        "empty label",
        "/d.csv:22: field 'label'",
    ),
    Case(
        "ragged row",
        one_file("d.csv", "text,label\n" + OK_ROWS + "a,b,c\n", "csv"),
        "3 fields",
        "/d.csv:22",
    ),
    Case(
        "one class",
        one_file("d.csv", "text,label\n" + "x,spam\n" * 12, "csv"),
        "only one class",
        "/d.csv: field 'label'",
    ),
    Case(
        "multi-label not 0/1",
        with_columns("text,a,b\n" + "x,0,1\n" * 12 + "y,2,0\n", "label=a,b"),
        "not 0 or 1",
        "/d.csv:14: field 'a'",
    ),
    Case(
        "too few rows",
        one_file("d.csv", "text,label\nx,spam\ny,benign\n", "csv"),
        "too few",
        "/d.csv",
    ),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_bad_file_is_refused(case: Case, refused_run: RefusedRun) -> None:
    refused_run("harmful-content", case.build, case.reason, case.where)
