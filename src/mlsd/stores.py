"""Step 3 (and 6) of the book: the offline and the online feature stores.

The offline store keeps feature tables as Parquet files for training; the online store keeps the
latest raw statistics per entity for serving, where one request needs a few hundred keys within a
latency budget of milliseconds. Two online stores behave alike:

* :class:`InProcessStore`, plain dictionaries, the default (tests, demos, one server process);
* :class:`RedisStore`, one Redis hash per key (``HSET``), written in pipelined chunks and read
  back in one round trip per namespace. Values are JSON-encoded per field, so ints, floats and
  strings come back with their types.
"""

from __future__ import annotations

import json
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
    """The online store cannot be reached; the message names its URL."""


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


def _check_namespace(namespace: str) -> None:
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


def _native_row(namespace: str, key: str, row: Row) -> dict[str, Value]:
    if not row:
        raise ValueError(f"{namespace}/{key}: empty row")
    return {str(f): _native(v, f"{namespace}/{key}/{f}") for f, v in row.items()}


class InProcessStore:
    """The online store as dictionaries in this process: the default."""

    def __init__(self) -> None:
        self._data: dict[str, dict[str, dict[str, Value]]] = {}

    def put_many(self, namespace: str, rows: Mapping[str, Row]) -> None:
        _check_namespace(namespace)
        table = self._data.setdefault(namespace, {})
        for key, row in rows.items():
            table[str(key)] = _native_row(namespace, str(key), row)

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


def _decode(raw: str) -> Value:
    value: Value = json.loads(raw)
    return value


def _encode(value: Value) -> str:
    return json.dumps(value)  # NaN / Infinity use json's extension, which json.loads reads back


class RedisStore:
    """The online store in Redis: one hash per key, pipelined writes and reads.

    Layout under ``prefix``: ``{prefix}:{namespace}:{key}`` is a hash of JSON-encoded values and
    ``{prefix}:__keys__:{namespace}`` the set of keys of a namespace (for :meth:`count`). Reading
    any number of keys of one namespace is one pipelined round trip.
    """

    def __init__(self, url: str, prefix: str = "mlsd", chunk_size: int = 1000) -> None:
        import redis

        if not prefix or ":" in prefix:
            raise ValueError(f"bad prefix {prefix!r}")
        self.url = url
        self.prefix = prefix
        self.chunk_size = chunk_size
        self._errors: tuple[type[BaseException], ...] = (
            redis.exceptions.ConnectionError,
            redis.exceptions.TimeoutError,
        )
        try:
            self._client = redis.Redis.from_url(
                url, decode_responses=True, socket_connect_timeout=2.0
            )
            self._client.ping()
        except (*self._errors, ValueError) as exc:
            raise StoreConnectionError(f"cannot connect to Redis at {url}: {exc}") from exc

    def _key(self, namespace: str, key: str) -> str:
        return f"{self.prefix}:{namespace}:{key}"

    def _index(self, namespace: str) -> str:
        return f"{self.prefix}:__keys__:{namespace}"

    def _fail(self, exc: BaseException) -> StoreConnectionError:
        return StoreConnectionError(f"Redis at {self.url} failed: {exc}")

    def put_many(self, namespace: str, rows: Mapping[str, Row]) -> None:
        _check_namespace(namespace)
        items = [(str(k), _native_row(namespace, str(k), r)) for k, r in rows.items()]
        try:
            for start in range(0, len(items), self.chunk_size):
                chunk = items[start : start + self.chunk_size]
                pipe = self._client.pipeline(transaction=False)
                for key, row in chunk:
                    rkey = self._key(namespace, key)
                    pipe.delete(rkey)
                    pipe.hset(rkey, mapping={f: _encode(v) for f, v in row.items()})
                pipe.sadd(self._index(namespace), *(k for k, _ in chunk))
                pipe.execute()
        except self._errors as exc:
            raise self._fail(exc) from exc
        logger.debug("redis: wrote %d rows to %s", len(items), namespace)

    def get_many(self, namespace: str, keys: Sequence[str]) -> list[dict[str, Any] | None]:
        if not keys:
            return []
        try:
            pipe = self._client.pipeline(transaction=False)
            for key in keys:
                pipe.hgetall(self._key(namespace, str(key)))
            raw: list[dict[str, str]] = pipe.execute()
        except self._errors as exc:
            raise self._fail(exc) from exc
        return [{f: _decode(v) for f, v in r.items()} if r else None for r in raw]

    def clear(self) -> None:
        pattern = re.sub(r"([*?\[\]\\])", r"\\\1", self.prefix) + ":*"
        try:
            batch: list[str] = []
            for key in self._client.scan_iter(match=pattern, count=1000):
                batch.append(key)
                if len(batch) >= self.chunk_size:
                    self._client.delete(*batch)
                    batch = []
            if batch:
                self._client.delete(*batch)
        except self._errors as exc:
            raise self._fail(exc) from exc

    def count(self, namespace: str) -> int:
        try:
            return int(self._client.scard(self._index(namespace)))
        except self._errors as exc:
            raise self._fail(exc) from exc

    def close(self) -> None:
        self._client.close()


def open_store(redis_url: str | None) -> OnlineStore:
    """The online store the settings ask for: Redis at ``redis_url``, else in-process."""
    if redis_url:
        return RedisStore(redis_url)
    return InProcessStore()


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
