"""Malformed MovieLens files in ``--data``: the bad-file table.

Each row is refused by ``mlsd run`` with exit 2 and one line naming the file (and the line and
field where there is one), before any training, with no traceback and nothing left behind (the
``refused_run`` fixture of ``tests/unit/systems/conftest.py``). Issue #17's survey found these
by hand; a new malformed case adds a row.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from bad_file_cases import Builder, Case, RefusedRun, Specs, empty_folder, one_file


# ---- MovieLens ------------------------------------------------------------------------------
def u_data(rows: list[tuple[int, int, float, int]]) -> str:
    return "".join("\t".join(str(v) for v in r) + "\n" for r in rows)


# 20 users × 5 ratings of 12 items (100 lines); the bad ones add line 101
ML_OK = u_data(
    [
        (u, 1 + (u * 3 + k * 5) % 12, float(1 + (u + k) % 5), 1000 + u * 10 + k)
        for u in range(1, 21)
        for k in range(5)
    ]
)


def movielens(content: str, name: str = "u.data", item: str | None = None) -> Builder:
    def build(d: Path) -> Specs:
        d.mkdir(parents=True, exist_ok=True)
        (d / name).write_text(content)
        if item is not None:
            (d / "u.item").write_text(item)
        return f"movielens:{d}", None

    return build


def ml_line(line: str, reason: str, where: str) -> tuple[Builder, str, str]:
    return movielens(ML_OK + line + "\n"), reason, where


FINITE = "not a finite number"
CASES: list[Case] = [
    Case("ml-one-rating", movielens("1\t10\t5\t100\n"), "too few ratings", "/u.data"),
    Case(
        "ml-nan-rating",
        *ml_line("3\t4\tnan\t99", FINITE, "/u.data:101: field 'rating'"),
    ),
    Case(
        "ml-inf-rating",
        *ml_line("3\t4\tinf\t99", FINITE, "/u.data:101: field 'rating'"),
    ),
    Case(
        "ml-text-rating",
        *ml_line("3\t4\tgood\t99", "not a number", "/u.data:101: field 'rating'"),
    ),
    Case("ml-two-fields", *ml_line("3\t4", "expected 4 fields", "/u.data:101")),
    Case("ml-five-fields", *ml_line("3\t4\t5\t6\t7", "got 5", "/u.data:101")),
    Case("ml-empty", movielens(""), "no ratings", "/u.data"),
    Case(
        "ml-user-not-int",
        *ml_line("u3\t4\t5\t99", "not a number", "/u.data:101: field 'user'"),
    ),
    Case(
        "ml-csv-no-header",
        movielens("1,2,3.5,100\n", "ratings.csv"),
        "expected the header",
        "/ratings.csv:1",
    ),
    Case(
        "ml-dat-wrong-separator",
        movielens(ML_OK, "ratings.dat"),
        "expected 4 fields separated by '::'",
        "/ratings.dat:1",
    ),
    Case(
        "ml-unknown-layout",
        one_file("r.txt", ML_OK, "movielens"),
        "unknown MovieLens layout",
        "/r.txt",
    ),
    Case("ml-no-ratings-file", empty_folder("movielens"), "no MovieLens ratings", ""),
    Case("ml-bad-item-file", movielens(ML_OK, item="10|x\n"), "expected id", "/u.item:1"),
    Case(
        "ml-item-id-not-int",
        movielens(ML_OK, item="ten|x|d||u|0\n"),
        "not an integer",
        "/u.item:1: field 'movie_id'",
    ),
    Case(
        "ml-every-item-once",
        movielens(u_data([(u, u, 4.0, 100 + u) for u in range(1, 30)])),
        "too few ratings to split: 29 ratings",
        "/u.data",
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_file_is_refused_in_one_line(case: Case, refused_run: RefusedRun) -> None:
    refused_run("video-rec", case.build, case.reason, case.where)


def test_the_table_covers_movielens() -> None:
    assert {c.id.split("-")[0] for c in CASES} == {"ml"}
    assert len(CASES) >= 15 and len({c.id for c in CASES}) == len(CASES)
