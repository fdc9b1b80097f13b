"""Real click data in the field's standard layouts, as feature frames (the chapter's step 3).

The chapter "Ad Click Prediction on Social Platforms" is about data like the Criteo Display
Advertising Challenge logs and the CTR benchmarks distributed in libFM format (Frappe,
MovieLens). A practitioner swaps the simulated world for such a file with ``criteo:PATH`` or
``libfm:PATH``; the loaders return the same feature-frame convention the world's pipeline uses
(``d_*`` dense floats, ``c_*`` hashed int64 ids), so every model runs on them unchanged.

* **Criteo**: tab-separated ``label, I1..I13 (integers), C1..C26 (hashed categories)``; an empty
  field is missing; short rows are padded with missing values. Counts are heavy-tailed, so
  ``d_I{k} = sign(x) * log1p(|x|)`` with missing as 0, plus ``d_I{k}_missing`` indicators;
  ``c_C{k}`` hashes the category, missing being a value of its own. Rows are in time order.
* **libFM / libSVM**: ``label idx:value idx:value ...`` with labels 0/1 or -1/1. The j-th
  ``idx:value`` token (0-based) is field ``f{j}``, one-hot as in the public CTR benchmarks:
  ``c_f{j}`` hashes ``idx``; if some value of field j is not 1, ``d_f{j}`` carries the value.

Files are split into tokens with pyarrow compute kernels and validated column by column, vectorised
(a million Criteo lines take seconds); a bad file raises :class:`~mlsd.data.DataError` naming the
file, the first bad line and the field. :func:`read_files` is the data step on such files: the
data file and an optional explicit test file, as a :class:`FileData` result.
"""

from __future__ import annotations

import gzip
import logging
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from mlsd.data import DataError
from mlsd.features import hash_values
from mlsd.report import Blueprint

logger = logging.getLogger(__name__)

KNOWN_FORMATS: tuple[str, ...] = ("criteo", "libfm", "libsvm")
CRITEO_INT_FIELDS = 13
CRITEO_CAT_FIELDS = 26
CRITEO_FIELDS = 1 + CRITEO_INT_FIELDS + CRITEO_CAT_FIELDS  # 40
_INT_PATTERN = r"-?\d+"
MIN_ROWS = 20  # fewer cannot be split into train, validation and test with both labels in each


@dataclass
class LoadedData:
    """A labelled feature frame read from a file.

    ``has_time`` says that the rows are in time order, so that a split by row order is a time
    split (true of Criteo's logs; libFM benchmark files are shuffled).
    """

    X: pd.DataFrame
    y: np.ndarray
    source: str
    fmt: str
    n_rows: int
    positive_rate: float
    has_time: bool


def parse_data_spec(spec: str) -> tuple[str, Path]:
    """Split ``"FORMAT:PATH"`` (criteo, libfm or libsvm) into the format and an existing path."""
    fmt, sep, rest = spec.partition(":")
    fmt = fmt.strip().lower()
    if not sep or fmt not in KNOWN_FORMATS:
        raise DataError(
            spec,
            f"unknown data format {fmt!r}: write FORMAT:PATH with FORMAT one of "
            f"{', '.join(KNOWN_FORMATS)}",
        )
    path = Path(rest).expanduser()
    if not path.is_file():
        raise DataError(path, f"no such file (from data spec {spec!r})")
    return fmt, path


def read_dataset(spec: str) -> LoadedData:
    """Load ``"criteo:PATH"``, ``"libfm:PATH"`` or ``"libsvm:PATH"`` into a :class:`LoadedData`."""
    fmt, path = parse_data_spec(spec)
    if fmt == "criteo":
        return load_criteo(path)
    return load_libfm(path, fmt=fmt)


@dataclass(frozen=True)
class FileData:
    """The data step on the user's files: the data file and, if given, an explicit test file."""

    loaded: LoadedData
    test: LoadedData | None

    def metrics(self) -> dict[str, Any]:
        test = self.test
        return {
            "data": {
                "source": "file",
                "format": self.loaded.fmt,
                "path": self.loaded.source,
                "rows": self.loaded.n_rows,
                "positive_rate": self.loaded.positive_rate,
                "test_file": None
                if test is None
                else {
                    "path": test.source,
                    "rows": test.n_rows,
                    "positive_rate": test.positive_rate,
                },
            }
        }


# What a run on a file cannot do, and why (recorded as skipped, never reported as run).
FILE_SKIPS: tuple[tuple[str, str], ...] = (
    ("continual_learning", "the file has no timestamps, so there are no days to replay"),
    ("online", "an A/B test needs a world to act in; a static file cannot answer it"),
    ("oracle", "the true click probabilities are known only in the simulated world"),
)


def read_files(data: str, test_data: str | None = None) -> FileData:
    """Load the ``FORMAT:PATH`` data file and the optional ``FORMAT:PATH`` test file; a file
    too small to split, or with one label only, is refused (:class:`DataError` with why)."""
    loaded = read_dataset(data)
    check_trainable(loaded, min_rows=MIN_ROWS if test_data is None else 2)
    test = None
    if test_data:
        test = read_dataset(test_data)
        check_trainable(test, min_rows=2)
    return FileData(loaded, test)


def check_trainable(loaded: LoadedData, min_rows: int = MIN_ROWS) -> None:
    """:class:`DataError` naming the file when it holds too few rows or one label only."""
    if loaded.n_rows < min_rows:
        raise DataError(
            loaded.source,
            f"too few rows to split: {loaded.n_rows}, need at least {min_rows} "
            "(train, validation and test each need clicks and non-clicks)",
        )
    clicks = int(loaded.y.sum())
    if clicks in (0, loaded.n_rows):
        which = "non-clicks" if clicks == 0 else "clicks"
        raise DataError(
            loaded.source,
            f"one class only: all {loaded.n_rows} rows are {which}; a click model needs both",
        )


def check_split(split: Mapping[str, np.ndarray], y: np.ndarray, sources: Mapping[str, str]) -> None:
    """:class:`DataError` when a part of the split (train, validation, test) lacks clicks or
    non-clicks, so no model could be fitted or scored on it; ``sources`` names each part's
    file."""
    for part, rows in split.items():
        clicks = int(y[rows].sum())
        if len(rows) and 0 < clicks < len(rows):
            continue
        lacking = "clicks" if clicks == 0 else "non-clicks"
        total = int(y.sum())
        raise DataError(
            sources[part],
            f"too few {lacking} to split: the {part} part ({len(rows)} rows) holds none "
            f"({total} {'click' if total == 1 else 'clicks'} in {len(y)} rows in all); give "
            "more rows of each class",
        )


def report_files(bp: Blueprint, result: FileData) -> None:
    """The blueprint's data section for a run on files."""
    loaded, test = result.loaded, result.test
    bp.section("Data preparation")
    bp.text(
        f"Read **{loaded.n_rows:,} rows** from `{loaded.source}` ({loaded.fmt} layout); "
        f"positive rate **{loaded.positive_rate:.2%}**."
        + (f" Explicit test file `{test.source}` with {test.n_rows:,} rows." if test else "")
    )


# --------------------------------------------------------------------------------------------
# Tokens: a file split into lines and fields, vectorised
# --------------------------------------------------------------------------------------------


@dataclass
class _Tokens:
    """The non-blank lines of a file split into tokens, as one flat Arrow array."""

    path: Path
    flat: pa.Array  # every token of every kept line, in order
    starts: np.ndarray  # (n,) index in ``flat`` of each line's first token
    lengths: np.ndarray  # (n,) tokens on each line
    lines: np.ndarray  # (n,) 1-based line numbers in the file

    def column(self, j: int) -> tuple[np.ndarray, pa.Array]:
        """Rows that have a j-th token (0-based), and those tokens."""
        rows = np.flatnonzero(self.lengths > j)
        return rows, self.flat.take(pa.array(self.starts[rows] + j))

    def fail(self, row: int, problem: str, field: str | None = None) -> DataError:
        return DataError(self.path, problem, line=int(self.lines[row]), field=field)


def _read_tokens(path: Path, sep: str | None) -> _Tokens:
    """Split ``path`` (``.gz`` too) into lines, drop blank ones, split by ``sep`` (None: spaces)."""
    text = read_text(path)
    lines = pc.list_flatten(pc.split_pattern(pa.array([text], pa.large_string()), "\n"))
    lines = pc.utf8_rtrim(lines, "\r")
    keep = pc.not_equal(pc.utf8_trim_whitespace(lines), "").to_numpy(zero_copy_only=False)
    if not keep.any():
        raise DataError(path, "the file is empty")
    lines = lines.filter(pa.array(keep))
    if sep is None:
        tokens = pc.utf8_split_whitespace(pc.utf8_trim_whitespace(lines))
    else:
        tokens = pc.split_pattern(lines, sep)
    lengths = pc.list_value_length(tokens).to_numpy(zero_copy_only=False).astype(np.int64)
    return _Tokens(
        path=path,
        flat=pc.list_flatten(tokens),
        starts=np.cumsum(lengths) - lengths,
        lengths=lengths,
        lines=np.flatnonzero(keep) + 1,
    )


def read_text(path: Path) -> str:
    """The whole file as text (``.gz`` decompressed; bad UTF-8 replaced), or :class:`DataError`
    naming it for a truncated or corrupt gzip stream or a file that cannot be read."""
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rt", encoding="utf-8", errors="replace", newline="") as fh:
                return fh.read()
        with path.open(encoding="utf-8", errors="replace", newline="") as fh:
            return fh.read()
    except EOFError:
        raise DataError(
            path, "truncated gzip file: the compressed stream ends early (an interrupted copy?)"
        ) from None
    except gzip.BadGzipFile:
        raise DataError(path, "not a gzip file, though its name ends in .gz") from None
    except zlib.error as exc:
        raise DataError(path, f"corrupt gzip file: {exc}") from None
    except OSError as exc:
        raise DataError(path, f"cannot read: {exc.strerror or exc}") from None


def _first(mask: np.ndarray) -> int:
    return int(np.argmax(mask))


def _as_numpy(values: pa.Array) -> np.ndarray:
    return np.asarray(values.to_numpy(zero_copy_only=False))


# --------------------------------------------------------------------------------------------
# Criteo
# --------------------------------------------------------------------------------------------


def load_criteo(path: str | Path) -> LoadedData:
    """Read a Criteo display-ads file (``.gz`` too): label, 13 integer and 26 categorical fields."""
    t = _read_tokens(Path(path), "\t")
    n = len(t.lengths)
    too_long = t.lengths > CRITEO_FIELDS
    if too_long.any():
        row = _first(too_long)
        raise t.fail(row, f"{t.lengths[row]} tab-separated fields, at most {CRITEO_FIELDS}")

    _, label = t.column(0)
    ok = _as_numpy(pc.is_in(label, value_set=pa.array(["0", "1"]))).astype(bool)
    if not ok.all():
        row = _first(~ok)
        raise t.fail(row, f"label must be 0 or 1, got {label[row].as_py()!r}", "label")
    y = _as_numpy(pc.equal(label, "1")).astype(np.int64)

    cols: dict[str, np.ndarray] = {}
    for k in range(1, CRITEO_INT_FIELDS + 1):
        rows, tok = t.column(k)
        filled = _as_numpy(pc.not_equal(tok, "")).astype(bool)
        valid = _as_numpy(pc.match_substring_regex(tok, r"^-?\d+$")).astype(bool)
        bad = filled & ~valid
        if bad.any():
            i = _first(bad)
            raise t.fail(int(rows[i]), f"expected an integer, got {tok[i].as_py()!r}", f"I{k}")
        x = np.zeros(n)
        x[rows[filled]] = _as_numpy(pc.cast(tok.filter(pa.array(filled)), pa.float64()))
        missing = np.ones(n, dtype=bool)
        missing[rows[filled]] = False
        cols[f"d_I{k}"] = np.sign(x) * np.log1p(np.abs(x))
        cols[f"d_I{k}_missing"] = missing.astype(np.float64)
    for k in range(1, CRITEO_CAT_FIELDS + 1):
        field = f"C{k}"
        rows, tok = t.column(CRITEO_INT_FIELDS + k)
        hashed = np.full(n, hash_values(field, np.array([""], dtype=object))[0], dtype=np.int64)
        hashed[rows] = _hash_strings(field, tok)  # missing ("" or absent) is a value of its own
        cols[f"c_{field}"] = hashed
    return _loaded(pd.DataFrame(cols), y, t.path, "criteo", has_time=True)


# --------------------------------------------------------------------------------------------
# libFM / libSVM
# --------------------------------------------------------------------------------------------


def load_libfm(path: str | Path, fmt: str = "libfm") -> LoadedData:
    """Read a libFM/libSVM file (``.gz`` too): ``label idx:value ...``; token j is field f{j}."""
    t = _read_tokens(Path(path), None)
    n = len(t.lengths)
    _, label_s = t.column(0)
    label = _to_float(label_s)
    ok = np.isin(label, [0.0, 1.0, -1.0])
    if not ok.all():
        row = _first(~ok)
        raise t.fail(row, f"label must be 0/1 or -1/1, got {label_s[row].as_py()!r}", "label")
    y = (label == 1.0).astype(np.int64)

    if t.lengths.max() < 2:
        raise DataError(t.path, "no features: every line holds only a label")
    cols: dict[str, np.ndarray] = {}
    for j in range(int(t.lengths.max()) - 1):
        field = f"f{j}"
        rows, tok = t.column(j + 1)
        parts = pc.split_pattern(tok, ":", max_splits=1)
        has_colon = _as_numpy(pc.list_value_length(parts)) == 2
        idx = np.full(len(rows), np.nan)
        value = np.full(len(rows), np.nan)
        if has_colon.any():
            pairs = parts.filter(pa.array(has_colon))
            idx_s = pc.list_element(pairs, 0)
            # at most 15 digits: exact as a float64, and within int64
            is_int = _as_numpy(pc.match_substring_regex(idx_s, r"^-?\d{1,15}$")).astype(bool)
            idx[has_colon] = np.where(is_int, _to_float(pc.if_else(is_int, idx_s, "0")), np.nan)
            value[has_colon] = _to_float(pc.list_element(pairs, 1))
        bad = ~np.isfinite(idx) | ~np.isfinite(value)
        if bad.any():
            i = _first(bad)
            raise t.fail(
                int(rows[i]),
                "expected idx:value (integer idx of at most 15 digits, finite value), "
                f"got {tok[i].as_py()!r}",
                field,
            )
        full_idx = np.full(n, -1, dtype=np.int64)  # an absent field is a value of its own
        full_idx[rows] = idx.astype(np.int64)
        cols[f"c_{field}"] = hash_values(field, full_idx)
        if (value != 1.0).any():
            full_value = np.zeros(n)
            full_value[rows] = value
            cols[f"d_{field}"] = full_value
    return _loaded(pd.DataFrame(cols), y, t.path, fmt, has_time=False)


# --------------------------------------------------------------------------------------------
# shared
# --------------------------------------------------------------------------------------------


def _to_float(values: pa.Array) -> np.ndarray:
    """Parse strings as floats; what does not parse becomes NaN."""
    try:
        return _as_numpy(pc.cast(values, pa.float64())).astype(np.float64)
    except pa.ArrowInvalid:
        as_str = pd.Series(_as_numpy(values), dtype=object)
        return pd.to_numeric(as_str, errors="coerce").to_numpy(dtype=np.float64)


def _hash_strings(field: str, values: pa.Array) -> np.ndarray:
    """``hash_values`` over the distinct values only (a categorical column repeats a lot)."""
    encoded = pc.dictionary_encode(values)
    uniques = np.asarray(encoded.dictionary.to_pylist(), dtype=object)
    codes = _as_numpy(encoded.indices).astype(np.int64)
    return hash_values(field, uniques)[codes]


def _loaded(X: pd.DataFrame, y: np.ndarray, path: Path, fmt: str, has_time: bool) -> LoadedData:
    n = len(y)
    data = LoadedData(
        X=X,
        y=y,
        source=str(path),
        fmt=fmt,
        n_rows=n,
        positive_rate=float(y.mean()) if n else 0.0,
        has_time=has_time,
    )
    logger.info(
        "loaded %s (%s): %d rows, %d features, positive rate %.4f",
        path,
        fmt,
        n,
        X.shape[1],
        data.positive_rate,
    )
    return data
