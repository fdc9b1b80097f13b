"""The BEIR layout: a good small collection reads; malformed files are refused by ``mlsd run``
with exit 2 and one line naming the file, the line and the field."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from bad_file_cases import Case, RefusedRun, Specs

from mlsd.systems.video_search.datasets import read_beir

CORPUS = [
    {"_id": "d1", "title": "Guitar chords", "text": "learn three chords on the guitar"},
    {"_id": "d2", "title": "", "text": "a kitten purrs on the sofa"},
    {"_id": "d3", "title": "Soup", "text": "a warm vegetable soup recipe"},
]
QUERIES = [
    {"_id": "q1", "text": "guitar chords"},
    {"_id": "q2", "text": "kitten"},
    {"_id": "q3", "text": "a query with no relevant document"},
]
QRELS = "query-id\tcorpus-id\tscore\nq1\td1\t2\nq2\td2\t1\nq3\td3\t0\n"


def write_beir(
    d: Path, corpus: str | None = None, queries: str | None = None, qrels: str | None = None
) -> Specs:
    (d / "qrels").mkdir(parents=True, exist_ok=True)
    lines = "\n".join(json.dumps(x) for x in CORPUS) + "\n"
    (d / "corpus.jsonl").write_text(corpus if corpus is not None else lines)
    qlines = "\n".join(json.dumps(x) for x in QUERIES) + "\n"
    (d / "queries.jsonl").write_text(queries if queries is not None else qlines)
    (d / "qrels" / "test.tsv").write_text(qrels if qrels is not None else QRELS)
    return f"beir:{d}", None


def test_a_small_collection_reads(tmp_path: Path) -> None:
    write_beir(tmp_path)
    col = read_beir(f"beir:{tmp_path}")
    assert len(col.corpus) == 3 and col.corpus["title"].iat[1] == ""
    assert col.qrels == {"q1": {"d1": 2}, "q2": {"d2": 1}}
    assert col.unjudged_queries == 1 and list(col.queries["query_id"]) == ["q1", "q2"]


CASES = [
    Case(
        "bad-json",
        lambda d: write_beir(d, corpus='{"_id": "d1", "text": "x"}\n{oops\n'),
        "not a JSON object",
        "/corpus.jsonl:2",
    ),
    Case(
        "missing-text",
        lambda d: write_beir(d, corpus='{"_id": "d1", "title": "x"}\n'),
        "missing",
        "/corpus.jsonl:1: field 'text'",
    ),
    Case(
        "text-not-string",
        lambda d: write_beir(d, queries='{"_id": "q1", "text": 3}\n'),
        "not a string",
        "/queries.jsonl:1: field 'text'",
    ),
    Case(
        "duplicate-id",
        lambda d: write_beir(d, corpus='{"_id": "d1", "text": "a"}\n{"_id": "d1", "text": "b"}\n'),
        "duplicate id",
        "/corpus.jsonl:2: field '_id'",
    ),
    Case(
        "score-not-int",
        lambda d: write_beir(d, qrels="query-id\tcorpus-id\tscore\nq1\td1\tx\n"),
        "not an integer",
        "/qrels/test.tsv:2: field 'score'",
    ),
    Case(
        "unknown-doc",
        lambda d: write_beir(d, qrels="q1\tzz\t1\n"),
        "unknown document",
        "/qrels/test.tsv:1: field 'corpus-id'",
    ),
    Case(
        "no-relevant",
        lambda d: write_beir(d, qrels="q1\td1\t0\n"),
        "no relevant",
        "/qrels/test.tsv",
    ),
    Case("empty-corpus", lambda d: write_beir(d, corpus=""), "no rows", "/corpus.jsonl"),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_malformed_files_are_refused_with_one_line(case: Case, refused_run: RefusedRun) -> None:
    refused_run("video-search", case.build, case.reason, case.where)
