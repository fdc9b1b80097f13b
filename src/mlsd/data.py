"""Step 3 of the book, data preparation: logs as Parquet, DuckDB queries, schema checks, splits.

The book's step 3 ("Data Preparation") turns raw event logs into training data. The pieces every
system shares live here:

* event logs are Parquet files, written atomically (temp file, then rename) and streamed chunk by
  chunk so that memory stays bounded at any scale;
* ad-hoc SQL over DataFrames and Parquet files goes through an in-memory DuckDB connection;
* schema checks fail early with a :class:`DataError` that names the file, the line and the field;
* splits are by time for anything with a time axis (training on the past, testing on the future,
  as the chapters on ad click prediction and recommendation insist) and random otherwise;
* negative downsampling with the recalibration of He et al. (2014), "Practical lessons from
  predicting clicks on ads at Facebook", which the ad click prediction chapter cites.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Literal

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

logger = logging.getLogger(__name__)

ColumnKind = Literal["int", "float", "str", "bool"]
Schema = Mapping[str, ColumnKind]
"""A table schema: column name -> kind ("int", "float", "str" or "bool")."""


class DataError(ValueError):
    """Bad input data, located as precisely as possible: ``{path}:{line}: field '{field}': ...``.

    ``line`` is 1-based (``None`` when the problem is not on one line) and ``field`` is the column
    (``None`` when the problem is not in one column).
    """

    def __init__(
        self, path: str | Path, problem: str, *, line: int | None = None, field: str | None = None
    ) -> None:
        self.path = str(path)
        self.line = line
        self.field = field
        self.problem = problem
        where = self.path if line is None else f"{self.path}:{line}"
        what = problem if field is None else f"field '{field}': {problem}"
        super().__init__(f"{where}: {what}")


# --------------------------------------------------------------------------------------------
# Parquet
# --------------------------------------------------------------------------------------------


def _temp_path(path: Path) -> Path:
    return path.with_name(f".{path.name}.tmp-{os.getpid()}")


def write_parquet(data: pd.DataFrame | Iterable[pd.DataFrame], path: str | Path) -> Path:
    """Write a DataFrame, or an iterator of DataFrame chunks, to ``path`` atomically.

    Chunks are streamed through one ``pyarrow.parquet.ParquetWriter`` (one row group per chunk),
    so memory stays bounded by the largest chunk. Every chunk is cast to the first chunk's schema;
    a chunk that does not fit raises :class:`DataError`. The file appears under its final name only
    once it is complete.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temp_path(path)
    try:
        if isinstance(data, pd.DataFrame):
            pq.write_table(pa.Table.from_pandas(data, preserve_index=False), tmp)
            rows = len(data)
        else:
            rows = _write_chunks(data, tmp, path)
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
    logger.debug("wrote %d rows to %s", rows, path)
    return path


def _write_chunks(chunks: Iterable[pd.DataFrame], tmp: Path, path: Path) -> int:
    writer: pq.ParquetWriter | None = None
    schema: pa.Schema | None = None
    rows = 0
    try:
        for i, chunk in enumerate(chunks):
            if schema is None:
                table = pa.Table.from_pandas(chunk, preserve_index=False)
                schema = table.schema
                writer = pq.ParquetWriter(tmp, schema)
            else:
                try:
                    table = pa.Table.from_pandas(chunk, schema=schema, preserve_index=False)
                except (pa.ArrowInvalid, pa.ArrowTypeError, KeyError) as exc:
                    raise DataError(
                        path, f"chunk {i} does not match the first chunk: {exc}"
                    ) from exc
            assert writer is not None
            writer.write_table(table)
            rows += len(chunk)
    finally:
        if writer is not None:
            writer.close()
    if schema is None:
        raise DataError(path, "no chunks to write (empty iterator)")
    return rows


def read_parquet(path: str | Path, columns: list[str] | None = None) -> pd.DataFrame:
    """Read a Parquet file (optionally only ``columns``); errors name the file and the column."""
    path = Path(path)
    if not path.exists():
        raise DataError(path, "no such file")
    if columns is not None:
        present = set(pq.read_schema(path).names)
        for col in columns:
            if col not in present:
                raise DataError(path, "no such column", field=col)
    return pq.read_table(path, columns=columns).to_pandas()


# --------------------------------------------------------------------------------------------
# DuckDB
# --------------------------------------------------------------------------------------------


def duckdb_query(sql: str, **tables: pd.DataFrame | str | Path) -> pd.DataFrame:
    """Run ``sql`` in a fresh in-memory DuckDB connection where each keyword is a view.

    A DataFrame is registered as is (zero copy); a path is a view over ``read_parquet(path)``.

    >>> duckdb_query("SELECT sum(x) AS s FROM t", t=pd.DataFrame({"x": [1, 2]}))["s"].item()
    3
    """
    con = duckdb.connect(":memory:")
    try:
        con.execute("SET enable_progress_bar = false")
        for name, table in tables.items():
            if not name.isidentifier():
                raise ValueError(f"table name {name!r} is not an identifier")
            if isinstance(table, pd.DataFrame):
                con.register(name, table)
            else:
                p = Path(table)
                if not p.exists():
                    raise DataError(p, "no such file")
                literal = str(p).replace("'", "''")
                con.execute(f"CREATE VIEW {name} AS SELECT * FROM read_parquet('{literal}')")
        return con.execute(sql).df()
    finally:
        con.close()


# --------------------------------------------------------------------------------------------
# Schema checks
# --------------------------------------------------------------------------------------------


def _kind_ok(series: pd.Series, kind: ColumnKind) -> bool:
    dtype = series.dtype
    if kind == "bool":
        return pd.api.types.is_bool_dtype(dtype)
    if pd.api.types.is_bool_dtype(dtype):
        return False
    if kind == "int":
        return pd.api.types.is_integer_dtype(dtype)
    if kind == "float":
        return pd.api.types.is_float_dtype(dtype) or pd.api.types.is_integer_dtype(dtype)
    if isinstance(dtype, pd.StringDtype):
        return True
    if pd.api.types.is_object_dtype(dtype):
        return pd.api.types.infer_dtype(series, skipna=True) in ("string", "empty")
    return False


def check_schema(df: pd.DataFrame, schema: Schema, source: str | Path) -> None:
    """Check that ``df`` has every column of ``schema``, of the right kind and without nulls.

    Raises :class:`DataError` naming ``source``, the column, and for a null the 1-based row.
    Extra columns are allowed ("float" accepts integer columns; "int" never accepts floats).
    """
    for col, kind in schema.items():
        if col not in df.columns:
            raise DataError(source, f"missing column (expected {kind})", field=col)
        series = df[col]
        if not _kind_ok(series, kind):
            raise DataError(source, f"expected {kind}, got dtype {series.dtype}", field=col)
        nulls = np.flatnonzero(series.isna().to_numpy())
        if nulls.size:
            raise DataError(
                source, f"null value ({nulls.size} in all)", line=int(nulls[0]) + 1, field=col
            )


# --------------------------------------------------------------------------------------------
# Splits and sampling
# --------------------------------------------------------------------------------------------


def time_split(
    times: np.ndarray, cutoffs: tuple[float, float]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Split by time: train ``t < c1``, validation ``c1 <= t < c2``, test ``t >= c2``.

    Returns index arrays into ``times``. Splitting by time, not at random, is how the book
    evaluates anything whose future depends on its past (no leakage from future to past).
    """
    c1, c2 = cutoffs
    if c1 > c2:
        raise ValueError(f"cutoffs must be ordered, got {cutoffs}")
    t = np.asarray(times)
    train = np.flatnonzero(t < c1)
    val = np.flatnonzero((t >= c1) & (t < c2))
    test = np.flatnonzero(t >= c2)
    return train, val, test


def random_split(
    n: int, fractions: tuple[float, float, float] = (0.8, 0.1, 0.1), seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Shuffle ``range(n)`` with ``seed`` and cut it into three parts of the given fractions.

    For data without a time axis (Criteo / libFM files); anything with one goes through
    :func:`time_split`.
    """
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    if any(f < 0 for f in fractions) or not np.isclose(sum(fractions), 1.0):
        raise ValueError(f"fractions must be >= 0 and sum to 1, got {fractions}")
    perm = np.random.default_rng(seed).permutation(n)
    n_train = round(fractions[0] * n)
    n_val = min(round(fractions[1] * n), n - n_train)
    return perm[:n_train], perm[n_train : n_train + n_val], perm[n_train + n_val :]


def downsample_negatives(y: np.ndarray, rate: float, seed: int) -> np.ndarray:
    """Indices to keep: every positive, and each negative with probability ``rate``.

    Negative downsampling (He et al. 2014; the ad click prediction chapter) cuts training cost on
    heavily imbalanced click data; predictions must then go through
    :func:`recalibrate_downsampled`.
    """
    if not 0.0 < rate <= 1.0:
        raise ValueError(f"rate must be in (0, 1], got {rate}")
    labels = np.asarray(y)
    keep = (labels != 0) | (np.random.default_rng(seed).random(labels.shape[0]) < rate)
    return np.flatnonzero(keep)


def recalibrate_downsampled(p: np.ndarray, rate: float) -> np.ndarray:
    """Undo negative downsampling: ``q = p / (p + (1 - p) / rate)`` (He et al. 2014)."""
    if not 0.0 < rate <= 1.0:
        raise ValueError(f"rate must be in (0, 1], got {rate}")
    p = np.asarray(p, dtype=np.float64)
    return p / (p + (1.0 - p) / rate)
