"""Malformed click files (Criteo, libFM/libSVM) in ``--data``: the bad-file table.

Each row is refused by ``mlsd run`` with exit 2 and one line naming the file (and the line and
field where there is one), before any training, with no traceback and nothing left behind (the
``refused_run`` fixture of ``tests/unit/systems/conftest.py``). Issue #17's survey found these
by hand; a new malformed case adds a row.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest
from bad_file_cases import Builder, Case, RefusedRun, Specs, empty_folder, one_file


def data_and_test(data: str | bytes, test_name: str, test: str | bytes, fmt: str) -> Builder:
    def build(d: Path) -> Specs:
        spec, _ = one_file("train.txt", data, fmt)(d)
        test_spec, _ = one_file(test_name, test, fmt)(d)
        return spec, test_spec

    return build


def truncated_gz(content: str) -> bytes:
    whole = gzip.compress(content.encode())
    return whole[: len(whole) // 2]


# ---- Criteo ---------------------------------------------------------------------------------
def criteo_row(label: str, i: int = 0) -> str:
    ints = [str((i * 7 + k) % 50) for k in range(13)]
    cats = [f"{(i * 31 + k) % 9:08x}" for k in range(26)]
    return "\t".join([label, *ints, *cats])


def criteo_rows(labels: list[int]) -> str:
    return "".join(criteo_row(str(y), i) + "\n" for i, y in enumerate(labels))


def quarter_clicks(n: int) -> list[int]:
    return [int(i % 4 == 0) for i in range(n)]


CRITEO_OK = criteo_rows(quarter_clicks(200))  # a good file; the bad ones add line 201
HEADER = "label\t" + "\t".join(f"I{k}" for k in range(1, 14)) + "\n"


def criteo(name: str, content: str | bytes) -> Builder:
    return one_file(name, content, "criteo")


CRITEO: list[Case] = [
    Case("criteo-empty", criteo("d.txt", ""), "empty", "/d.txt"),
    Case("criteo-blank-lines", criteo("d.txt", "\n \n\t\n"), "empty", "/d.txt"),
    Case(
        "criteo-truncated-gz",
        criteo("d.txt.gz", truncated_gz(CRITEO_OK)),
        "truncated gzip",
        "/d.txt.gz",
    ),
    Case("criteo-not-gzip-gz", criteo("d.txt.gz", CRITEO_OK), "not a gzip", "/d.txt.gz"),
    Case(
        "criteo-binary",
        criteo("d.txt", bytes(range(256)) * 8),
        "label must be 0 or 1",
        "/d.txt:1: field 'label'",
    ),
    Case(
        "criteo-41-fields",
        criteo("d.txt", CRITEO_OK + criteo_row("0") + "\textra\n"),
        "41 tab-separated fields",
        "/d.txt:201",
    ),
    Case(
        "criteo-label-2",
        criteo("d.txt", CRITEO_OK + criteo_row("2") + "\n"),
        "label must be 0 or 1",
        "/d.txt:201: field 'label'",
    ),
    Case(
        "criteo-header-row",
        criteo("d.txt", HEADER + CRITEO_OK),
        "label must be 0 or 1",
        "/d.txt:1: field 'label'",
    ),
    Case(
        "criteo-non-integer",
        criteo("d.txt", CRITEO_OK + criteo_row("1").replace("\t0\t", "\tabc\t", 1) + "\n"),
        "expected an integer",
        "/d.txt:201: field 'I1'",
    ),
    Case(
        "criteo-float-count",
        criteo("d.txt", CRITEO_OK + criteo_row("0").replace("\t0\t", "\t1.5\t", 1) + "\n"),
        "expected an integer",
        "/d.txt:201: field 'I1'",
    ),
    Case(
        "criteo-space-separated",
        criteo("d.txt", CRITEO_OK.replace("\t", " ")),
        "label must be 0 or 1",
        "/d.txt:1: field 'label'",
    ),
    Case(
        "criteo-tiny",
        criteo("d.txt", criteo_rows([0, 1, 0, 1, 0])),
        "too few rows to split: 5",
        "/d.txt",
    ),
    Case(
        "criteo-one-class",
        criteo("d.txt", criteo_rows([0] * 200)),
        "one class only: all 200 rows are non-clicks",
        "/d.txt",
    ),
    Case(
        "criteo-all-clicks",
        criteo("d.txt", criteo_rows([1] * 200)),
        "one class only: all 200 rows are clicks",
        "/d.txt",
    ),
    Case(
        "criteo-one-click",
        criteo("d.txt", criteo_rows([1] + [0] * 199)),
        "too few clicks to split: the (validation|test) part",
        "/d.txt",
    ),
    Case(
        "criteo-test-one-class",
        data_and_test(CRITEO_OK, "test.txt", criteo_rows([0] * 50), "criteo"),
        "one class only",
        "/test.txt",
    ),
    Case(
        "criteo-test-truncated-gz",
        data_and_test(CRITEO_OK, "t.gz", truncated_gz(CRITEO_OK), "criteo"),
        "truncated gzip",
        "/t.gz",
    ),
    Case("criteo-directory", empty_folder("criteo"), "no such file", ""),
]


# ---- libFM / libSVM -------------------------------------------------------------------------
def libfm_rows(labels: list[int], negative: str = "0") -> str:
    return "".join(
        f"{y if y else negative} {i % 17}:1 {20 + i % 5}:1 40:{i % 3 + 0.5}\n"
        for i, y in enumerate(labels)
    )


LIBFM_OK = libfm_rows(quarter_clicks(200))


def libfm(content: str | bytes, name: str = "d.libfm", fmt: str = "libfm") -> Builder:
    return one_file(name, content, fmt)


def libfm_line(line: str, reason: str, where: str) -> tuple[Builder, str, str]:
    return libfm(LIBFM_OK + line + "\n"), reason, where


IDX_VALUE = "expected idx:value"
LIBFM: list[Case] = [
    Case("libfm-empty", libfm(""), "empty", "/d.libfm"),
    Case(
        "libfm-label-2",
        *libfm_line("2 1:1", "label must be", "/d.libfm:201: field 'label'"),
    ),
    Case("libfm-no-colon", *libfm_line("1 5 6:1", IDX_VALUE, "/d.libfm:201: field 'f0'")),
    Case("libfm-text-idx", *libfm_line("1 a:1", IDX_VALUE, "/d.libfm:201: field 'f0'")),
    Case("libfm-text-value", *libfm_line("0 3:x", IDX_VALUE, "/d.libfm:201: field 'f0'")),
    Case(
        "libfm-nan-value",
        *libfm_line("0 3:1 4:nan", IDX_VALUE, "/d.libfm:201: field 'f1'"),
    ),
    Case("libfm-inf-value", *libfm_line("0 3:inf", IDX_VALUE, "/d.libfm:201: field 'f0'")),
    Case(
        "libfm-huge-idx",
        *libfm_line("0 99999999999999999999999:1", "at most 15 digits", "/d.libfm:201: field 'f0'"),
    ),
    Case("libfm-labels-only", libfm("1\n0\n" * 100), "no features", "/d.libfm"),
    Case("libfm-tiny", libfm(libfm_rows([1, 0, 1])), "too few rows", "/d.libfm"),
    Case("libfm-one-class", libfm(libfm_rows([0] * 200)), "one class only", "/d.libfm"),
    Case(
        "libsvm-minus-one-only",
        libfm(libfm_rows([0] * 200, negative="-1"), "d.svm", "libsvm"),
        "one class only",
        "/d.svm",
    ),
    Case(
        "libfm-truncated-gz",
        libfm(truncated_gz(LIBFM_OK), "d.gz"),
        "truncated",
        "/d.gz",
    ),
    Case("libfm-not-gzip-gz", libfm(LIBFM_OK, "d.gz"), "not a gzip", "/d.gz"),
    Case(
        "libfm-unknown-format",
        libfm(LIBFM_OK, fmt="libffm"),
        "unknown data format 'libffm'",
        "/d.libfm",
    ),
]


CASES = CRITEO + LIBFM


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_file_is_refused_in_one_line(case: Case, refused_run: RefusedRun) -> None:
    refused_run("ad-click", case.build, case.reason, case.where)


def test_the_table_covers_criteo_and_libfm() -> None:
    assert {c.id.split("-")[0] for c in CASES} == {"criteo", "libfm", "libsvm"}
    assert len(CASES) >= 30 and len({c.id for c in CASES}) == len(CASES)
