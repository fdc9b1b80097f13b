"""The online store in Redis, built to outlive Redis's bad days (book ch. 8, serving).

:class:`RedisStore` keeps one hash per key (``HSET``), written in pipelined chunks (each chunk
one ``MULTI``/``EXEC``, so a reader never sees a key between its delete and its rewrite) and read
back in one round trip per namespace; values are JSON-encoded per field, so ints, floats and
strings come back with their types. Around that, what a shared, remote store needs:

* **bounded calls**: a socket timeout and a connect timeout, and no retry inside the client, so a
  frozen Redis costs a caller one timeout, never a hang;
* **a circuit breaker** (:class:`mlsd.breaker.CircuitBreaker`): after a few consecutive failures
  no call goes out for a cool-down (callers get :class:`StoreUnavailableError` at once), then one
  probe decides; one warning when it opens, one when it closes;
* **no secret in any message**: every error and log line names the URL with its password
  replaced by ``***`` (:func:`redact_url`), and the client's own exception is not chained;
* **keys per run**: with a ``run_id`` every key lives under ``{prefix}:{run_id}:``, so stores of
  different runs (two servers, or a server before and after a reload) never read each other's
  rows. ``{prefix}:{run_id}:__complete__`` marks a run whose tables are all written
  (:meth:`RedisStore.mark_complete`); :meth:`RedisStore.retire` lets a run's keys expire after a
  grace period, and :meth:`RedisStore.persist_run` takes a run back from retirement.

Layout under the root (``prefix`` or ``prefix:run_id``): ``{root}:{namespace}:{key}`` is a hash,
``{root}:__keys__:{namespace}`` the set of keys of a namespace (for :meth:`RedisStore.count`).
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from enum import StrEnum
from typing import Any, TypeVar
from urllib.parse import unquote, urlsplit

from mlsd.breaker import CircuitBreaker
from mlsd.stores import Row, StoreConnectionError, Value, check_namespace, native_row

logger = logging.getLogger(__name__)

T = TypeVar("T")

_USERINFO = re.compile(r"(?<=://)([^/@]*?):([^/@]*)@")
_QUERY_PASSWORD = re.compile(r"(?<=[?&]password=)[^&#]*", re.IGNORECASE)
_RUN_ID = re.compile(r"^[A-Za-z0-9_.-]+$")
MASK = "***"


def redact_url(url: str) -> str:
    """``url`` with its password shown as ``***``: ``redis://:pw@h`` -> ``redis://:***@h``,
    ``redis://user:pw@h`` -> ``redis://user:***@h``, ``?password=pw`` -> ``?password=***``."""
    return _QUERY_PASSWORD.sub(MASK, _USERINFO.sub(lambda m: f"{m.group(1)}:{MASK}@", url))


def _secrets_of(url: str) -> list[str]:
    """The password of ``url`` as written and as decoded (from the user info or the query)."""
    found: list[str] = []
    try:
        password = urlsplit(url).password
    except ValueError:
        password = None
    found += [password] if password else []
    found += [m.group(0) for m in _QUERY_PASSWORD.finditer(url) if m.group(0)]
    return sorted({s for p in found for s in (p, unquote(p))}, key=len, reverse=True)


def redact(text: str, url: str) -> str:
    """``text`` with ``url`` shown redacted and any occurrence of its password masked."""
    text = text.replace(url, redact_url(url))
    for secret in _secrets_of(url):
        text = text.replace(secret, MASK)
    return text


class StoreUnavailableError(StoreConnectionError):
    """The store's circuit breaker is open: the call was refused without touching the network."""


class RunState(StrEnum):
    """What Redis holds of a run's tables (:meth:`RedisStore.run_state`)."""

    COMPLETE = "complete"  # every table written, and staying
    EXPIRING = "expiring"  # complete, but retired by a reload: its keys expire soon
    MISSING = "missing"  # never written, half written, or lost (Redis restarted empty)


def _decode(raw: str) -> Value:
    value: Value = json.loads(raw)
    return value


def _encode(value: Value) -> str:
    return json.dumps(value)  # NaN / Infinity use json's extension, which json.loads reads back


def _glob_escape(text: str) -> str:
    return re.sub(r"([*?\[\]\\])", r"\\\1", text)


class RedisStore:
    """The online store in Redis: one hash per key, pipelined writes and reads, bounded calls.

    ``socket_timeout_s`` / ``connect_timeout_s`` bound every call; ``failure_threshold`` and
    ``reset_timeout_s`` set the circuit breaker (or pass a ``breaker`` to share one). The
    constructor pings once: an unreachable Redis is a :class:`StoreConnectionError` naming the
    redacted URL. Every later failure is a :class:`StoreConnectionError` too
    (:class:`StoreUnavailableError` while the breaker refuses calls).
    """

    def __init__(
        self,
        url: str,
        prefix: str = "mlsd",
        chunk_size: int = 1000,
        *,
        run_id: str | None = None,
        socket_timeout_s: float = 1.0,
        connect_timeout_s: float = 1.0,
        failure_threshold: int = 3,
        reset_timeout_s: float = 2.0,
        breaker: CircuitBreaker | None = None,
    ) -> None:
        import redis
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        if not prefix or ":" in prefix:
            raise ValueError(f"bad prefix {prefix!r}")
        if run_id is not None and not _RUN_ID.match(run_id):
            raise ValueError(f"bad run id {run_id!r}: letters, digits, '_', '.', '-' only")
        self._url = url  # never shown: messages use self.name
        self.name = redact_url(url)
        self.prefix = prefix
        self.run_id = run_id
        self.root = prefix if run_id is None else f"{prefix}:{run_id}"
        self.chunk_size = chunk_size
        self.breaker = breaker or CircuitBreaker(
            f"Redis at {self.name}", failure_threshold, reset_timeout_s
        )
        self._errors: tuple[type[BaseException], ...] = (redis.exceptions.RedisError, OSError)
        try:
            self._client = redis.Redis.from_url(
                url,
                decode_responses=True,
                socket_timeout=socket_timeout_s,
                socket_connect_timeout=connect_timeout_s,
                retry=Retry(NoBackoff(), 0),  # one attempt: the breaker decides what comes next
            )
        except ValueError as exc:
            raise StoreConnectionError(
                f"bad Redis URL {self.name}: {redact(str(exc), url)}"
            ) from None
        try:
            self._client.ping()
        except self._errors as exc:
            self._client.close()
            error = redact(f"{type(exc).__name__}: {exc}", url)
            raise StoreConnectionError(f"cannot connect to Redis at {self.name}: {error}") from None

    def __repr__(self) -> str:
        return f"RedisStore({self.name!r}, root={self.root!r})"

    # --- every call goes through here ---------------------------------------------------------

    def _call(self, what: str, fn: Callable[[], T]) -> T:
        """``fn()`` under the breaker; a Redis failure becomes a redacted StoreConnectionError."""
        if not self.breaker.allow():
            raise StoreUnavailableError(
                f"Redis at {self.name} is not called for now (circuit open after: "
                f"{self.breaker.last_error})"
            )
        try:
            out = fn()
        except self._errors as exc:
            error = redact(f"{what}: {type(exc).__name__}: {exc}", self._url)
            self.breaker.failure(error)
            raise StoreConnectionError(f"Redis at {self.name} failed: {error}") from None
        except BaseException:
            self.breaker.failure(f"{what}: interrupted")
            raise
        self.breaker.success()
        return out

    def available(self) -> bool:
        """False while the breaker refuses calls (no network call to find out)."""
        return not self.breaker.cooling_down()

    def ping(self) -> bool:
        """Redis answers (a :class:`StoreConnectionError` when it does not)."""
        return bool(self._call("ping", self._client.ping))

    # --- keys ---------------------------------------------------------------------------------

    def _key(self, namespace: str, key: str) -> str:
        return f"{self.root}:{namespace}:{key}"

    def _index(self, namespace: str) -> str:
        return f"{self.root}:__keys__:{namespace}"

    @property
    def _marker(self) -> str:
        return f"{self.root}:__complete__"

    def _scan(self) -> Iterator[list[str]]:
        """Every key under the root, in batches of at most ``chunk_size``."""
        batch: list[str] = []
        for key in self._client.scan_iter(match=_glob_escape(self.root) + ":*", count=1000):
            batch.append(key)
            if len(batch) >= self.chunk_size:
                yield batch
                batch = []
        if batch:
            yield batch

    # --- the OnlineStore protocol -------------------------------------------------------------

    def put_many(self, namespace: str, rows: Mapping[str, Row]) -> None:
        check_namespace(namespace)
        items = [(str(k), native_row(namespace, str(k), r)) for k, r in rows.items()]
        index = self._index(namespace)
        for start in range(0, len(items), self.chunk_size):
            chunk = items[start : start + self.chunk_size]
            pipe = self._client.pipeline(transaction=True)  # MULTI/EXEC: no half-written key
            for key, row in chunk:
                rkey = self._key(namespace, key)
                pipe.delete(rkey)
                pipe.hset(rkey, mapping={f: _encode(v) for f, v in row.items()})
            pipe.sadd(index, *(k for k, _ in chunk))
            pipe.persist(index)  # a run taken back from retirement keeps its index
            self._call("write", pipe.execute)
        logger.debug("redis: wrote %d rows to %s:%s", len(items), self.root, namespace)

    def get_many(self, namespace: str, keys: Sequence[str]) -> list[dict[str, Any] | None]:
        if not keys:
            return []
        pipe = self._client.pipeline(transaction=False)
        for key in keys:
            pipe.hgetall(self._key(namespace, str(key)))
        raw: list[dict[str, str]] = self._call("read", pipe.execute)
        return [{f: _decode(v) for f, v in r.items()} if r else None for r in raw]

    def clear(self) -> None:
        """Remove every key under the root (this run's, or the whole prefix without a run)."""

        def clear_all() -> None:
            for batch in self._scan():
                self._client.delete(*batch)

        self._call("clear", clear_all)

    def count(self, namespace: str) -> int:
        return int(self._call("count", lambda: self._client.scard(self._index(namespace))))

    def close(self) -> None:
        self._client.close()

    # --- a run's life: complete, retired, taken back --------------------------------------------

    def run_state(self) -> RunState:
        """Whether this root's tables are complete, complete but expiring, or missing."""
        ttl = int(self._call("run state", lambda: self._client.ttl(self._marker)))
        if ttl == -2:  # no such key
            return RunState.MISSING
        return RunState.COMPLETE if ttl == -1 else RunState.EXPIRING

    def mark_complete(self) -> None:
        """Record that every table of this root is written (call it after the last one)."""
        self._call("mark complete", lambda: self._client.set(self._marker, "1"))

    def retire(self, ttl_s: int) -> int:
        """Let every key of this root expire in ``ttl_s`` seconds (readers still on it keep
        working meanwhile); the marker first, so a loader taking the run back sees it. Returns
        the number of keys touched."""
        if ttl_s < 1:
            raise ValueError(f"ttl_s must be >= 1, got {ttl_s}")

        def expire_all() -> int:
            self._client.expire(self._marker, ttl_s)
            touched = 0
            for batch in self._scan():
                pipe = self._client.pipeline(transaction=False)
                for key in batch:
                    pipe.expire(key, ttl_s)
                pipe.execute()
                touched += len(batch)
            return touched

        return self._call("retire", expire_all)

    def persist_run(self) -> int:
        """Undo :meth:`retire`: every key of this root stays again, the marker last. Returns
        the number of keys touched."""

        def persist_all() -> int:
            touched = 0
            for batch in self._scan():
                pipe = self._client.pipeline(transaction=False)
                for key in batch:
                    pipe.persist(key)
                pipe.execute()
                touched += len(batch)
            self._client.persist(self._marker)
            return touched

        return self._call("persist", persist_all)
