"""Ad click prediction, step 6: the served run's online store, and what serving does without it.

A run keeps a snapshot of its online store, one Parquet file per namespace under
``artifacts/online/`` (:class:`Snapshot`). Served from memory (:class:`~mlsd.stores.FrameStore`)
nothing can go wrong with it; served from a shared Redis, three things can, and
:class:`StoreGuard` answers each:

* **another run's rows**: the snapshot's content hash is the *run id* (:func:`snapshot_run_id`),
  and every Redis key of the run lives under it, so two servers of different runs on one Redis,
  or one server before and after a reload, never read each other's rows;
* **Redis down or frozen**: calls are bounded by timeouts and a circuit breaker
  (:class:`~mlsd.stores_redis.RedisStore`); while the store cannot serve, the scorer answers from
  :class:`FallbackStore`: the snapshot's small tables (ads, advertisers, the global counts) in
  memory and a default user (no history: the prior CTR), and flags the answer as degraded;
* **Redis restarted empty**: the run's tables are written again from the snapshot, once, in a
  background thread (:meth:`StoreGuard.tables_missing`), the answers degraded meanwhile; a run
  another server retired (its keys expiring) is taken back (:meth:`StoreGuard.ready`).
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Mapping, Sequence
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mlsd.artifacts import manifest_hashes
from mlsd.data import DataError, read_parquet
from mlsd.serving import ServingArtifactError
from mlsd.stores import KEY, FrameStore, Row, StoreConnectionError, put_frame
from mlsd.stores_redis import RedisStore, RunState, StoreUnavailableError
from mlsd.systems.ad_click.features import USER_ATTRS

log = logging.getLogger(__name__)

TABLES_DIR = "online"  # one Parquet file per online-store namespace
GLOBAL_NAMESPACE = "global"  # written last: while it is missing, the tables are incomplete
FALLBACK_NAMESPACES = ("ad", "advertiser", GLOBAL_NAMESPACE)  # small: kept in memory
REASON_RESEEDING = "online store re-seeding this run's tables from its snapshot"
REASON_OPEN = "online store unavailable (circuit breaker open)"
REASON_FAILED = "online store unavailable (call failed or timed out)"


def table_path(artifacts_dir: Path, namespace: str) -> Path:
    """Where a run keeps the snapshot of one online-store namespace."""
    return Path(artifacts_dir) / TABLES_DIR / f"{namespace}.parquet"


def read_table(path: Path, columns: list[str] | None = None) -> pd.DataFrame:
    """One namespace of the snapshot, or :class:`ServingArtifactError` naming the file."""
    if not path.is_file():
        raise ServingArtifactError(f"{path}: serving artifact missing (was the run completed?)")
    try:
        frame = read_parquet(path, columns)
    except (OSError, ValueError, DataError) as exc:  # pyarrow's errors are OSError / ValueError
        raise ServingArtifactError(f"{path}: unreadable serving artifact: {exc}") from exc
    if columns is None and (KEY not in frame.columns or len(frame.columns) < 2):
        raise ServingArtifactError(f"{path}: an online table needs a {KEY!r} and value columns")
    return frame


def snapshot_run_id(artifacts_dir: Path, namespaces: Sequence[str]) -> str:
    """The run id of a snapshot: a hash of its namespaces' names and of their files' SHA-256
    as the run's manifest lists them (16 hex digits; nothing is read twice).

    Equal snapshots share an id (and so their Redis keys, which hold the same rows); any change
    of any table gives a new one."""
    artifacts_dir = Path(artifacts_dir)
    hashes = manifest_hashes(artifacts_dir)
    digest = hashlib.blake2b(digest_size=8)
    for namespace in sorted(namespaces):
        path = table_path(artifacts_dir, namespace)
        rel = path.relative_to(artifacts_dir).as_posix()
        if rel not in hashes:
            raise ServingArtifactError(f"{path}: serving artifact missing from the manifest")
        digest.update(namespace.encode() + b"\0" + hashes[rel].encode() + b"\0")
    return digest.hexdigest()


def default_row(frame: pd.DataFrame, attrs: Sequence[str]) -> dict[str, Any]:
    """A row for an entity with no history: zero counts and the typical attributes (the median
    of a float column, the most common value otherwise)."""
    row: dict[str, Any] = {"imps": 0, "clicks": 0}
    for col in attrs:
        values = frame[col].dropna()
        if values.empty:
            raise ServingArtifactError(f"online table: column {col!r} has no value")
        if values.dtype.kind == "f":
            row[col] = float(values.median())
        else:
            top = values.value_counts(sort=True).index[0]
            row[col] = top.item() if isinstance(top, np.generic) else top
    return row


class FallbackStore:
    """What the scorer reads while the online store cannot serve: frames in memory for some
    namespaces, one default row for every key of others, nothing (zero counts) for the rest."""

    def __init__(self, frames: Mapping[str, pd.DataFrame], defaults: Mapping[str, Row]) -> None:
        self._frames = FrameStore(frames)
        self._defaults = {ns: dict(row) for ns, row in defaults.items()}

    def get_many(self, namespace: str, keys: Sequence[str]) -> list[dict[str, Any] | None]:
        default = self._defaults.get(namespace)
        if default is not None:
            return [dict(default) for _ in keys]
        return self._frames.get_many(namespace, keys)

    def put_many(self, namespace: str, rows: Mapping[str, Row]) -> None:
        self._frames.put_many(namespace, rows)

    def clear(self) -> None:
        self._frames.clear()

    def count(self, namespace: str) -> int:
        return self._frames.count(namespace)


class Snapshot:
    """A run's online tables as its artifacts hold them: ``online/{namespace}.parquet``."""

    def __init__(self, artifacts_dir: Path, namespaces: Sequence[str]) -> None:
        self.artifacts_dir = Path(artifacts_dir)
        # the global row last: a reader that finds it finds every other table complete
        self.namespaces = sorted(namespaces, key=lambda ns: ns == GLOBAL_NAMESPACE)

    @cached_property
    def run_id(self) -> str:
        """The snapshot's run id (:func:`snapshot_run_id`, from the manifest on first use)."""
        return snapshot_run_id(self.artifacts_dir, self.namespaces)

    def read(self, namespace: str, columns: list[str] | None = None) -> pd.DataFrame:
        return read_table(table_path(self.artifacts_dir, namespace), columns)

    def frames(self) -> dict[str, pd.DataFrame]:
        """Every namespace as a frame (for a :class:`~mlsd.stores.FrameStore`)."""
        return {ns: self.read(ns) for ns in self.namespaces}

    def load_into(self, store: RedisStore) -> None:
        """Write every table into ``store`` (one namespace in memory at a time, the global row
        last), then mark the run complete."""
        for namespace in self.namespaces:
            put_frame(store, namespace, self.read(namespace))
        store.mark_complete()

    def fallback(self) -> FallbackStore:
        """The degraded store: ads, advertisers and the global row; a default user."""
        frames = {ns: self.read(ns) for ns in FALLBACK_NAMESPACES if ns in self.namespaces}
        users = self.read("user", list(USER_ATTRS))
        return FallbackStore(frames, {"user": default_row(users, USER_ATTRS)})


class StoreGuard:
    """A run's tables in Redis, kept servable (re-seeded when lost, taken back when another
    server retired them), and the fallback (:class:`FallbackStore`) for while they cannot
    serve. At most one background job (re-seed or take-back) runs at a time."""

    def __init__(self, live: RedisStore, snapshot: Snapshot, retire_ttl_s: int = 300) -> None:
        self.live = live
        self.snapshot = snapshot
        self.retire_ttl_s = retire_ttl_s
        self.fallback = snapshot.fallback()
        self._lock = threading.Lock()
        self._worker: threading.Thread | None = None
        self._reseeding = False

    @classmethod
    def open(cls, live: RedisStore, snapshot: Snapshot, retire_ttl_s: int = 300) -> StoreGuard:
        """Make sure ``live`` holds the run's tables (write them unless complete, take them back
        if retired), then guard them."""
        state = live.run_state()
        if state is RunState.MISSING:
            t0 = time.perf_counter()
            snapshot.load_into(live)
            log.info("run %s written to %s in %.2f s", snapshot.run_id, live.name, _since(t0))
        elif state is RunState.EXPIRING:
            live.persist_run()
        return cls(live, snapshot, retire_ttl_s)

    @property
    def run_id(self) -> str:
        return self.snapshot.run_id

    def skip_reason(self) -> str | None:
        """Why a request should not even try the live store now (no network call), or None."""
        if self._reseeding:
            return REASON_RESEEDING
        if not self.live.available():
            return REASON_OPEN
        return None

    @staticmethod
    def failure_reason(exc: StoreConnectionError) -> str:
        """The degraded answer's reason for a failed store call."""
        return REASON_OPEN if isinstance(exc, StoreUnavailableError) else REASON_FAILED

    def tables_missing(self) -> str:
        """The live store answered without the run's tables: re-seed them (once, in the
        background) and return the degraded answer's reason."""
        self._start(reseed=True)
        return REASON_RESEEDING

    def ready(self) -> bool:
        """Can the live store serve now? One bounded call (none while the breaker is open or a
        re-seed runs); missing tables start a re-seed, retired ones are taken back."""
        if self.skip_reason() is not None:
            return False
        try:
            state = self.live.run_state()
        except StoreConnectionError:
            return False
        if state is RunState.MISSING:
            self._start(reseed=True)
            return False
        if state is RunState.EXPIRING:
            self._start(reseed=False)  # the keys are all there: serve on while they are kept
        return True

    def status(self) -> dict[str, str]:
        """The store's state for an operator, with no network call: the run id, the breaker's
        state, and ``serving`` / ``re-seeding`` / ``unavailable``."""
        reason = self.skip_reason()
        state = "serving" if reason is None else "re-seeding" if self._reseeding else "unavailable"
        return {"run_id": self.run_id, "breaker": self.live.breaker.state.value, "state": state}

    def retire(self) -> None:
        """This run is no longer served here: let its keys expire after the grace period."""
        try:
            touched = self.live.retire(self.retire_ttl_s)
        except StoreConnectionError as exc:
            log.warning("run %s not retired, its keys stay: %s", self.run_id, exc)
            return
        log.info("run %s retired: %d keys expire in %d s", self.run_id, touched, self.retire_ttl_s)

    def _start(self, reseed: bool) -> None:
        with self._lock:
            if self._worker is not None and self._worker.is_alive():
                return
            self._reseeding = reseed
            target = self._reseed if reseed else self._take_back
            self._worker = threading.Thread(target=target, name="mlsd-reseed", daemon=True)
            self._worker.start()

    def _reseed(self) -> None:
        log.warning(
            "%s lost run %s's tables (restarted empty?): re-seeding them from %s",
            self.live.name,
            self.run_id,
            self.snapshot.artifacts_dir,
        )
        t0 = time.perf_counter()
        try:
            self.snapshot.load_into(self.live)
        except (StoreConnectionError, ServingArtifactError) as exc:
            log.warning("re-seeding run %s stopped; the next request retries: %s", self.run_id, exc)
        else:
            log.warning("run %s re-seeded in %.2f s", self.run_id, _since(t0))
        finally:
            self._reseeding = False

    def _take_back(self) -> None:
        try:
            touched = self.live.persist_run()
        except StoreConnectionError as exc:
            log.warning("run %s, retired by another server, not taken back: %s", self.run_id, exc)
        else:
            log.info("run %s, retired by another server, taken back: %d keys", self.run_id, touched)


def _since(t0: float) -> float:
    return time.perf_counter() - t0
