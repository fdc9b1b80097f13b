"""Step 3's sources: the simulated platform, or a labelled text CSV (``--data csv:PATH``).

A CSV has a text column and one or more label columns, chosen in the spec:
``csv:PATH?text=COLUMN&label=COLUMN[,COLUMN...]`` (defaults: ``text`` and ``label``), or on the
command line ``--data csv:PATH --text-column COLUMN --label-column COLUMN [--label-column ...]``
(:func:`columns_spec`). One label column holds a class name or index per row (multi-class; a
class named benign, none, neutral, normal, clean or ok, or index 0 when the labels are numbers,
is the benign class); several hold 0/1 each (multi-label). Text is HTML-unescaped; an empty
text is kept (it is a post too). With no ``--test-data`` the split is that of published
text-classification baselines:
``train_test_split(row_indices, test_size=0.2, stratify=labels, random_state=seed)`` over the
rows in file order; validation (early stopping, thresholds) is a stratified tenth of the
training rows. Every problem is a :class:`~mlsd.data.DataError` naming the file, the line (the
physical line a record starts on) and the field.
"""

from __future__ import annotations

import csv
import html
import io
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlencode

import numpy as np
from sklearn.model_selection import train_test_split

from mlsd.data import DataError

BENIGN_NAMES = {"benign", "none", "neutral", "normal", "clean", "ok", "not_harmful", "safe"}
MAX_FIELD = 1_000_000


@dataclass(frozen=True)
class TextFile:
    """A labelled text file: texts, the label matrix and the split."""

    source: str
    texts: list[str]
    Y: np.ndarray  # (n, K) 0/1
    classes: tuple[str, ...]
    benign: int | None  # the benign class's column (multi-class), or None
    multilabel: bool
    train: np.ndarray
    val: np.ndarray
    test: np.ndarray

    @property
    def harm_classes(self) -> list[int]:
        return [k for k in range(len(self.classes)) if k != self.benign]


def columns_spec(spec: str | None, text_column: str | None, label_columns: list[str]) -> str:
    """``--data csv:PATH`` with ``--text-column`` / ``--label-column`` (repeatable: several make
    the file multi-label) as the one spec :func:`parse_spec` reads: ``csv:PATH?text=..&label=..``
    (the defaults ``text`` and ``label`` for the one not given)."""
    if spec is None:
        raise DataError("--text-column", "--text-column and --label-column need --data csv:PATH")
    fmt, _, rest = spec.partition(":")
    if fmt != "csv" or not rest:
        raise DataError(spec, "--text-column and --label-column apply to --data csv:PATH only")
    if "?" in rest:
        raise DataError(
            spec, "name the columns either in the spec (?text=..&label=..) or with the options"
        )
    for col in [text_column, *label_columns]:
        if col is not None and not col.strip():
            raise DataError(spec, "a column name is empty")
    query = urlencode({"text": text_column or "text", "label": label_columns or ["label"]}, True)
    return f"csv:{rest}?{query}"


def parse_spec(spec: str) -> tuple[str, Path, str, list[str]]:
    fmt, _, rest = spec.partition(":")
    if fmt != "csv" or not rest:
        raise DataError(spec, "harmful-content reads --data csv:PATH[?text=COL&label=COL,...]")
    path_s, _, query = rest.partition("?")
    q = parse_qs(query)
    text = q.get("text", ["text"])[0]
    labels = [c for v in q.get("label", ["label"]) for c in v.split(",") if c]
    return fmt, Path(path_s), text, labels


def _read_rows(
    path: Path, text_col: str, label_cols: list[str]
) -> tuple[list[str], list[list[str]], list[int]]:
    if not path.is_file():
        raise DataError(path, "no such file")
    raw = path.read_bytes()
    try:
        content = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise DataError(path, f"not UTF-8 text ({exc.reason})", line=line) from exc
    if not content.strip():
        raise DataError(path, "empty file: no header and no rows")
    csv.field_size_limit(MAX_FIELD)
    reader = csv.reader(io.StringIO(content, newline=""))
    try:
        header = next(reader)
    except csv.Error as exc:
        raise DataError(path, f"malformed CSV header: {exc}", line=1) from exc
    names = [h.strip() for h in header]
    for col in [text_col, *label_cols]:
        if col not in names:
            raise DataError(path, f"no such column (the header has {names})", field=col)
    ti, li = names.index(text_col), [names.index(c) for c in label_cols]
    texts: list[str] = []
    labels: list[list[str]] = []
    lines: list[int] = []
    start = reader.line_num + 1
    while True:
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            raise DataError(path, f"malformed CSV: {exc}", line=start) from exc
        if not row or all(not v.strip() for v in row):
            start = reader.line_num + 1
            continue
        if len(row) != len(names):
            raise DataError(
                path, f"{len(row)} fields where the header has {len(names)}", line=start
            )
        texts.append(html.unescape(row[ti]).strip())
        labels.append([row[i].strip() for i in li])
        lines.append(start)
        start = reader.line_num + 1
    if not texts:
        raise DataError(path, "no rows after the header")
    return texts, labels, lines


def _multilabel(
    path: Path, labels: list[list[str]], lines: list[int], cols: list[str]
) -> np.ndarray:
    Y = np.zeros((len(labels), len(cols)), np.int64)
    for r, row in enumerate(labels):
        for k, v in enumerate(row):
            if v not in ("0", "1", "0.0", "1.0"):
                raise DataError(path, f"label {v!r} is not 0 or 1", line=lines[r], field=cols[k])
            Y[r, k] = int(float(v))
    return Y


def _class_names(path: Path, values: list[str], lines: list[int], col: str) -> tuple[str, ...]:
    for v, line in zip(values, lines, strict=True):
        if not v:
            raise DataError(path, "empty label", line=line, field=col)
    uniq = sorted(set(values))
    if all(v.lstrip("-").isdigit() for v in uniq):
        return tuple(str(v) for v in sorted(int(v) for v in uniq))
    return tuple(uniq)


def read_text_file(spec: str, seed: int, test_spec: str | None = None) -> TextFile:
    _, path, text_col, label_cols = parse_spec(spec)
    texts, labels, lines = _read_rows(path, text_col, label_cols)
    multilabel = len(label_cols) > 1
    test_texts: list[str] = []
    test_labels: list[list[str]] = []
    test_lines: list[int] = []
    test_path = path
    if test_spec is not None:
        _, test_path, tc, lc = parse_spec(test_spec)
        test_texts, test_labels, test_lines = _read_rows(test_path, tc, lc)
    if multilabel:
        classes = tuple(label_cols)
        Y = _multilabel(path, labels, lines, label_cols)
        Yt = _multilabel(test_path, test_labels, test_lines, label_cols) if test_spec else None
        benign = None
        strat = Y @ (1 << np.arange(Y.shape[1]))
    else:
        values = [r[0] for r in labels]
        classes = _class_names(path, values, lines, label_cols[0])
        index = {c: k for k, c in enumerate(classes)}
        if all(c.lstrip("-").isdigit() for c in classes):
            index.update({str(int(v)): index[v] for v in classes})
        Y = np.zeros((len(values), len(classes)), np.int64)
        for r, v in enumerate(values):
            Y[r, index[v if v in index else str(int(v))]] = 1
        Yt = None
        if test_spec:
            Yt = np.zeros((len(test_labels), len(classes)), np.int64)
            for r, row in enumerate(test_labels):
                v = row[0]
                key = v if v in index else (str(int(v)) if v.lstrip("-").isdigit() else v)
                if key not in index:
                    raise DataError(
                        test_path,
                        f"unknown label {v!r} (the classes are {list(classes)})",
                        line=test_lines[r],
                        field=label_cols[0],
                    )
                Yt[r, index[key]] = 1
        named = [k for k, c in enumerate(classes) if c.lower() in BENIGN_NAMES]
        benign = named[0] if named else (0 if classes[0] == "0" else None)
        strat = Y.argmax(axis=1)
    if len(classes) < 2 and not multilabel:
        raise DataError(
            path, f"only one class ({classes[0]!r}): nothing to classify", field=label_cols[0]
        )
    n = len(texts)
    rows = np.arange(n)
    if test_spec is None:
        train, test = _split(path, rows, strat, 0.2, seed)
        all_texts, all_Y = texts, Y
    else:
        assert Yt is not None
        train, test = rows, np.arange(n, n + len(test_texts))
        all_texts, all_Y = texts + test_texts, np.concatenate([Y, Yt])
    tr, va = _split(path, train, strat[train], 0.1, seed)
    return TextFile(spec, all_texts, all_Y, classes, benign, multilabel, tr, va, test)


def _split(
    path: Path, rows: np.ndarray, strat: np.ndarray, size: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    if len(rows) < 10:
        raise DataError(path, f"{len(rows)} rows: too few to split into training and test")
    try:
        a, b = train_test_split(rows, test_size=size, stratify=strat, random_state=seed)
    except ValueError:  # a class with a single row cannot be stratified
        a, b = train_test_split(rows, test_size=size, random_state=seed)
    return np.sort(np.asarray(a)), np.sort(np.asarray(b))
