"""The public IR benchmark layout (BEIR): ``--data beir:DIR`` with

* ``DIR/corpus.jsonl``: one JSON object a line, ``_id`` (string), ``title`` (string, may be
  empty or absent), ``text`` (string);
* ``DIR/queries.jsonl``: ``_id``, ``text``;
* ``DIR/qrels/test.tsv``: a header line, then ``query-id``, ``corpus-id``, ``score`` (an
  integer) separated by tabs. Graded scores are kept as gains; a score <= 0 is not relevant.

Every problem is a :class:`~mlsd.data.DataError` naming the file, the line and the field.
Queries without a relevant document are kept and reported (they count in no mean).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from mlsd.data import DataError

FORMAT = "beir"
FILES = ("corpus.jsonl", "queries.jsonl", "qrels/test.tsv")


@dataclass(frozen=True)
class BeirCollection:
    root: Path
    corpus: pd.DataFrame  # doc_id, title, text
    queries: pd.DataFrame  # query_id, text
    qrels: dict[str, dict[str, int]]  # query id -> doc id -> grade (> 0 only)
    unjudged_queries: int  # queries with no relevant document


def parse_spec(spec: str) -> Path:
    fmt, sep, rest = spec.partition(":")
    if not sep or fmt.strip().lower() != FORMAT:
        raise DataError(spec, f"unknown data format {fmt!r}: video-search reads {FORMAT}:DIR")
    root = Path(rest).expanduser()
    if not root.is_dir():
        raise DataError(root, f"no such directory (from data spec {spec!r})")
    for name in FILES:
        if not (root / name).is_file():
            raise DataError(root / name, "no such file (the beir layout needs it)")
    return root


def _jsonl(path: Path, fields: dict[str, bool]) -> list[dict[str, str]]:
    """Rows of a JSON-lines file; ``fields`` maps a field to whether it is required."""
    out: list[dict[str, str]] = []
    seen: set[str] = set()
    with path.open("rb") as f:
        for i, raw in enumerate(f, start=1):
            if not raw.strip():
                continue
            try:
                obj: Any = json.loads(raw.decode("utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError) as exc:
                raise DataError(path, f"not a JSON object: {exc}", line=i) from exc
            if not isinstance(obj, dict):
                raise DataError(path, "not a JSON object", line=i)
            row = {}
            for name, required in fields.items():
                v = obj.get(name)
                if v is None and not required:
                    v = ""
                if not isinstance(v, str):
                    what = "missing" if v is None else f"not a string: {v!r}"[:80]
                    raise DataError(path, what, line=i, field=name)
                row[name] = v
            if not row["_id"].strip():
                raise DataError(path, "empty id", line=i, field="_id")
            if row["_id"] in seen:
                raise DataError(path, f"duplicate id {row['_id']!r}", line=i, field="_id")
            seen.add(row["_id"])
            out.append(row)
    if not out:
        raise DataError(path, "no rows")
    return out


def _qrels(path: Path, docs: set[str], queries: set[str]) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    with path.open("rb") as f:
        for i, raw in enumerate(f, start=1):
            try:
                line = raw.decode("utf-8").rstrip("\r\n")
            except UnicodeDecodeError as exc:
                raise DataError(path, f"not UTF-8 text: {exc}", line=i) from exc
            if i == 1 and line.lower().startswith("query-id"):
                continue
            if not line.strip():
                continue
            parts = line.split("\t")
            if len(parts) != 3:
                raise DataError(path, f"{len(parts)} tab-separated fields, expected 3", line=i)
            q, d, s = parts
            if q not in queries:
                raise DataError(path, f"unknown query {q!r}", line=i, field="query-id")
            if d not in docs:
                raise DataError(path, f"unknown document {d!r}", line=i, field="corpus-id")
            try:
                score = int(s)
            except ValueError as exc:
                raise DataError(path, f"not an integer: {s!r}", line=i, field="score") from exc
            if score > 0:
                out.setdefault(q, {})[d] = score
    return out


def read_beir(spec: str) -> BeirCollection:
    root = parse_spec(spec)
    corpus = _jsonl(root / "corpus.jsonl", {"_id": True, "title": False, "text": True})
    queries = _jsonl(root / "queries.jsonl", {"_id": True, "text": True})
    cdf = pd.DataFrame(corpus).rename(columns={"_id": "doc_id"})
    qdf = pd.DataFrame(queries).rename(columns={"_id": "query_id"})
    qrels = _qrels(root / "qrels/test.tsv", set(cdf["doc_id"]), set(qdf["query_id"]))
    if not qrels:
        raise DataError(root / "qrels/test.tsv", "no relevant (score > 0) judgement")
    judged = qdf[qdf["query_id"].isin(qrels.keys())].reset_index(drop=True)
    return BeirCollection(root, cdf, judged, qrels, len(qdf) - len(judged))
