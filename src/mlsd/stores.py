"""Step 3 (and 6) of the book: the offline and the online feature stores.

The offline store keeps feature tables as Parquet files for training; the online store keeps the
latest raw statistics per entity for serving, where one request needs a few hundred keys within a
latency budget of milliseconds. Three online stores behave alike:

* :class:`FrameStore`, columnar: one DataFrame per namespace (a string ``key`` column and value
  columns) behind a hash index, filled from whole frames, the default for serving a run (millions
  of keys in compact arrays, no Python object per row);
* :class:`InProcessStore`, plain dictionaries (tests, demos, small tables written row by row);
* :class:`~mlsd.stores_redis.RedisStore` (in :mod:`mlsd.stores_redis`), one Redis hash per key,
  read back in one round trip per namespace, with timeouts, a circuit breaker and keys per run.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import pandas as pd

from mlsd.data import DataError, read_parquet, write_parquet

logger = logging.getLogger(__name__)

Value = float | int | str
Row = Mapping[str, Value]


class StoreConnectionError(ConnectionError):
    """The online store cannot be reached; the message names its URL (password redacted)."""


@runtime_checkable
class OnlineStore(Protocol):
    """Key-value rows per namespace, as the serving path needs them (docs/architecture.md)."""

    def put_many(self, namespace: str, rows: Mapping[str, Row]) -> None:
        """Write (replace) one row per key."""
        ...

    def get_many(self, namespace: str, keys: Sequence[str]) -> list[dict[str, Any] | None]:
        """The rows of ``keys`` in order; ``None`` for a missing key."""
        ...

    def clear(self) -> None:
        """Remove every row of every namespace."""
        ...

    def count(self, namespace: str) -> int:
        """The number of keys in ``namespace``."""
        ...


def check_namespace(namespace: str) -> None:
    if not namespace or ":" in namespace or namespace.startswith("__"):
        raise ValueError(f"bad namespace {namespace!r}: non-empty, no ':', not starting with '__'")


def _native(value: Any, where: str) -> Value:
    """A plain Python int / float / str, so both stores return exactly the same values."""
    if isinstance(value, bool | np.bool_):
        return int(value)
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        return float(value)
    if isinstance(value, str):
        return value
    raise TypeError(f"{where}: values must be int, float or str, got {type(value).__name__}")


def native_row(namespace: str, key: str, row: Row) -> dict[str, Value]:
    if not row:
        raise ValueError(f"{namespace}/{key}: empty row")
    return {str(f): _native(v, f"{namespace}/{key}/{f}") for f, v in row.items()}


class InProcessStore:
    """The online store as dictionaries in this process: the default."""

    def __init__(self) -> None:
        self._data: dict[str, dict[str, dict[str, Value]]] = {}

    def put_many(self, namespace: str, rows: Mapping[str, Row]) -> None:
        check_namespace(namespace)
        table = self._data.setdefault(namespace, {})
        for key, row in rows.items():
            table[str(key)] = native_row(namespace, str(key), row)

    def get_many(self, namespace: str, keys: Sequence[str]) -> list[dict[str, Any] | None]:
        table = self._data.get(namespace, {})
        out: list[dict[str, Any] | None] = []
        for key in keys:
            row = table.get(str(key))
            out.append(None if row is None else dict(row))
        return out

    def clear(self) -> None:
        self._data.clear()

    def count(self, namespace: str) -> int:
        return len(self._data.get(namespace, {}))


KEY = "key"
"""The key column of an online table frame (``{namespace: frame}``, see :class:`FrameStore`)."""


def _check_frame(namespace: str, frame: pd.DataFrame) -> None:
    check_namespace(namespace)
    if KEY not in frame.columns:
        raise ValueError(f"{namespace}: an online table frame needs a {KEY!r} column")
    if len(frame.columns) < 2:
        raise ValueError(f"{namespace}: an online table frame needs value columns")


def _value_array(column: pd.Series) -> np.ndarray:
    """A column as the array whose ``take(...).tolist()`` gives the values InProcessStore keeps."""
    if isinstance(column.dtype, pd.CategoricalDtype) or not isinstance(column.dtype, np.dtype):
        return column.to_numpy(dtype=object)  # categories / strings: shared str objects
    if column.dtype == np.bool_:
        return column.to_numpy(dtype=np.int64)
    return column.to_numpy()


DICT_INDEX_MAX = 1_000_000  # keys per namespace looked up through a dict (see _Table)


class _Table:
    """One namespace of a :class:`FrameStore`: the frame, its key index, its value arrays."""

    def __init__(self, namespace: str, frame: pd.DataFrame) -> None:
        _check_frame(namespace, frame)
        self.frame = frame
        self.index = pd.Index(frame[KEY].astype(str), copy=False)
        if not self.index.is_unique:  # also builds the hash table now, not on the first request
            dup = self.index[self.index.duplicated()][0]
            raise ValueError(f"{namespace}: duplicate key {dup!r}")
        self.names = [str(c) for c in frame.columns if c != KEY]
        self.values = [_value_array(frame[c]) for c in self.names]
        # Up to DICT_INDEX_MAX keys, a plain dict finds positions in microseconds; beyond, the
        # pandas index (one vectorised lookup per call) keeps memory to the frame's own size.
        self.positions: dict[str, int] | None = (
            dict(zip(self.index.tolist(), range(len(self.index)), strict=True))
            if len(self.index) <= DICT_INDEX_MAX
            else None
        )

    def lookup(self, keys: Sequence[str]) -> np.ndarray:
        """Row positions of ``keys`` (-1 where absent)."""
        if self.positions is not None:
            get = self.positions.get
            return np.fromiter((get(str(k), -1) for k in keys), dtype=np.int64, count=len(keys))
        # the target in the index's own dtype: a mismatch (object vs str) converts the index
        return self.index.get_indexer(pd.Index([str(k) for k in keys], dtype=self.index.dtype))


class FrameStore:
    """The online store as columnar frames in this process: ``{namespace: DataFrame}``.

    Each frame has a string ``key`` column and one column per field (compact dtypes welcome:
    small ints, categoricals). A lookup is one ``Index.get_indexer`` and one ``take`` per column,
    and returns exactly the rows :class:`InProcessStore` returns for the same data. Meant to be
    filled once from whole frames (:meth:`put_frame`); :meth:`put_many` works but rebuilds the
    namespace, and its rows must carry exactly the namespace's fields.
    """

    def __init__(self, frames: Mapping[str, pd.DataFrame] | None = None) -> None:
        self._tables: dict[str, _Table] = {}
        for namespace, frame in (frames or {}).items():
            self.put_frame(namespace, frame)

    def put_frame(self, namespace: str, frame: pd.DataFrame) -> None:
        """Replace ``namespace`` by ``frame`` (kept as is, not copied)."""
        self._tables[namespace] = _Table(namespace, frame)

    def frame(self, namespace: str) -> pd.DataFrame | None:
        """The frame of ``namespace`` (``None`` if absent)."""
        table = self._tables.get(namespace)
        return None if table is None else table.frame

    def put_many(self, namespace: str, rows: Mapping[str, Row]) -> None:
        check_namespace(namespace)
        if not rows:
            return
        native = {str(k): native_row(namespace, str(k), r) for k, r in rows.items()}
        new = pd.DataFrame({KEY: list(native)}).join(pd.DataFrame(list(native.values())))
        old = self._tables.get(namespace)
        fields = set(old.names) if old is not None else set(next(iter(native.values())))
        for key, row in native.items():
            if set(row) != fields:
                raise ValueError(
                    f"{namespace}/{key}: a FrameStore row needs the fields "
                    f"{sorted(fields)}, got {sorted(row)}"
                )
        if old is not None:
            kept = old.frame[~old.index.isin(new[KEY])]
            new = pd.concat([kept, new[old.frame.columns]], ignore_index=True)
        self.put_frame(namespace, new)

    def get_many(self, namespace: str, keys: Sequence[str]) -> list[dict[str, Any] | None]:
        table = self._tables.get(namespace)
        out: list[dict[str, Any] | None] = [None] * len(keys)
        if table is None or not keys:
            return out
        pos = table.lookup(keys)
        hits = np.flatnonzero(pos >= 0)
        if hits.size:
            where = pos[hits]
            columns = [values.take(where).tolist() for values in table.values]
            for i, row in zip(hits.tolist(), zip(*columns, strict=True), strict=True):
                out[i] = dict(zip(table.names, row, strict=True))
        return out

    def get_columns(
        self, namespace: str, keys: Sequence[str], fields: Sequence[str]
    ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Columnar read (see :func:`read_columns`): one lookup and one ``take`` per field, no
        per-row Python objects."""
        table = self._tables.get(namespace)
        if table is None or not keys:
            return np.zeros(len(keys), dtype=bool), {f: np.zeros(len(keys)) for f in fields}
        pos = table.lookup(keys)
        found = pos >= 0
        where = np.where(found, pos, 0)
        by_name = dict(zip(table.names, table.values, strict=True))
        missing = [f for f in fields if f not in by_name]
        if missing:
            raise KeyError(f"{namespace}: no field(s) {missing}")
        return found, {f: by_name[f].take(where) for f in fields}

    def clear(self) -> None:
        self._tables.clear()

    def count(self, namespace: str) -> int:
        table = self._tables.get(namespace)
        return 0 if table is None else len(table.index)


def read_columns(
    store: OnlineStore, namespace: str, keys: Sequence[str], fields: Sequence[str]
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """``fields`` of ``keys`` as arrays aligned with ``keys``, and which keys were found.

    The serving hot path's read: a :class:`FrameStore` answers with vectorised look-ups; any other
    store through :meth:`OnlineStore.get_many` (one round trip). Where a key is absent the values
    are arbitrary: mask them with the returned ``found``.
    """
    if isinstance(store, FrameStore):
        return store.get_columns(namespace, keys, fields)
    rows = store.get_many(namespace, keys)
    found = np.fromiter((r is not None for r in rows), dtype=bool, count=len(rows))
    columns = {
        f: np.asarray([None if r is None else r[f] for r in rows], dtype=object) for f in fields
    }
    return found, columns


def frame_rows(frame: pd.DataFrame) -> dict[str, dict[str, Any]]:
    """An online table frame as store rows: ``key`` -> {column: value} (for row-wise stores)."""
    keys = frame[KEY].astype(str).tolist()
    values = frame.drop(columns=KEY)
    names = [str(c) for c in values.columns]
    columns = [_value_array(values[c]).tolist() for c in names]
    rows = zip(*columns, strict=True)
    return {k: dict(zip(names, row, strict=True)) for k, row in zip(keys, rows, strict=True)}


def put_frame(store: OnlineStore, namespace: str, frame: pd.DataFrame, chunk: int = 50_000) -> None:
    """Write an online table frame into any store: whole into a :class:`FrameStore`, otherwise
    ``chunk`` rows at a time, so at most one chunk exists as Python dictionaries."""
    if isinstance(store, FrameStore):
        store.put_frame(namespace, frame)
        return
    _check_frame(namespace, frame)
    for start in range(0, len(frame), chunk):
        store.put_many(namespace, frame_rows(frame.iloc[start : start + chunk]))


def open_store(
    redis_url: str | None, frames: Mapping[str, pd.DataFrame] | None = None
) -> OnlineStore:
    """The online store the settings ask for: Redis at ``redis_url``, else in-process.

    With ``frames`` (``{namespace: frame}``) the store comes filled: Redis in chunks, in-process
    as a :class:`FrameStore` over the frames themselves; without, an empty :class:`InProcessStore`.
    """
    if redis_url:
        from mlsd.stores_redis import RedisStore  # imported here: it imports this module

        store = RedisStore(redis_url)
        for namespace, frame in (frames or {}).items():
            put_frame(store, namespace, frame)
        return store
    return FrameStore(frames) if frames is not None else InProcessStore()


_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")


class OfflineStore:
    """Feature tables for training: one Parquet file per name under ``root``, written atomically."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def _path(self, name: str) -> Path:
        if not _NAME.match(name):
            raise ValueError(f"bad table name {name!r}")
        return self.root / f"{name}.parquet"

    def write(self, name: str, df: pd.DataFrame) -> Path:
        return write_parquet(df, self._path(name))

    def read(self, name: str) -> pd.DataFrame:
        path = self._path(name)
        if not path.exists():
            raise DataError(path, f"no feature table {name!r} in the offline store")
        return read_parquet(path)

    def names(self) -> list[str]:
        if not self.root.exists():
            return []
        return sorted(p.stem for p in self.root.glob("*.parquet"))
