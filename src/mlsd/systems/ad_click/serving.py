"""Step 6 for ad click prediction: score a feed request's candidate ads, rank them, serve them.

The chapter's serving design (book ch. 8, "Serving"): the candidate-generation stage hands the
ranking service a user, the request's context and a few hundred candidate ads; the service
fetches the user's and the ads' features from the online feature store, predicts P(click) for
every candidate and ranks them by expected value, P(click) × bid, the quantity the auction uses.
The budget is 10 ms for 100 candidates, so features come from one batched store read and the
model scores all candidates in one call.

* :class:`AdClickScorer` is the scoring path, usable in-process (A/B tests, batch scoring,
  latency measurements) and behind HTTP (``mlsd.api.routes.ad_click``, whose handlers only
  translate HTTP to and from the scorer). Served from memory, a request is arrays end to end:
  the online features by integer gathers into two contiguous blocks (:mod:`.serving_arrays`,
  the tables pre-encoded once at load), the model called once on them (:mod:`.serving_kernels`),
  the ranking and the result as arrays; served from Redis, batched store reads and the model's
  feature frame (the same features, the same scores);
* :func:`save_serving_artifacts` / :func:`load_scorer` move it through a run directory.

The latency budget's choice of the served model is in :mod:`~.serving_latency`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mlsd.artifacts import artifacts_dir_of, verify_manifest, write_json, write_manifest
from mlsd.data import write_parquet
from mlsd.model_io import ModelFileError
from mlsd.models import ClickEstimator
from mlsd.serving import ServingArtifactError, read_artifact_json
from mlsd.settings import Settings
from mlsd.stores import KEY, FrameStore, OnlineStore, StoreConnectionError, read_columns
from mlsd.stores_redis import RedisStore
from mlsd.systems.ad_click.features import (
    FEATURE_COLUMNS,
    Tables,
    TablesMissingError,
    UnknownIdError,
    candidate_features,
    request_features,
)
from mlsd.systems.ad_click.serving_arrays import OnlineArrays, online_arrays
from mlsd.systems.ad_click.serving_kernels import choose_runtime, compile_model
from mlsd.systems.ad_click.serving_store import Snapshot, StoreGuard, table_path

log = logging.getLogger(__name__)

SYSTEM = "ad-click"
MODEL_FILE = "model"  # a directory: the model saved as data (mlsd.model_io), never a pickle
SERVING_FILE = "serving.json"
AD_NAMESPACE = "ad"
N_PROBE = 100  # candidates of the probe request that times torch against onnxruntime at load


# one scoring request as arrays, one entry per candidate: user ids, hours, devices, ad ids
Request = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]


class CandidateError(ValueError):
    """The candidate list of a request is empty or repeats an ad."""


@dataclass(frozen=True)
class RankedAd:
    """One candidate, scored: the auction's inputs and their product."""

    ad_id: int
    p_click: float
    bid: float
    expected_value: float


@dataclass(frozen=True, eq=False)
class ScoreResult:
    """The ranked candidates of one request as arrays in rank order (``ads``, one object per
    candidate, only when asked for), and where the time went."""

    model: str
    user_id: int
    ad_ids: np.ndarray  # int64
    p_click: np.ndarray  # float64, as are bids and expected_value
    bids: np.ndarray
    expected_value: np.ndarray
    features_ms: float
    model_ms: float
    degraded_reason: str | None = None  # set when the online store could not serve (fallback)

    @property
    def degraded(self) -> bool:
        return self.degraded_reason is not None

    @cached_property
    def ads(self) -> list[RankedAd]:
        columns = (self.ad_ids.tolist(), self.p_click.tolist(), self.bids.tolist())
        return [
            RankedAd(a, p, b, v)
            for a, p, b, v in zip(*columns, self.expected_value.tolist(), strict=True)
        ]

    @property
    def timings_ms(self) -> dict[str, float]:
        return {
            "features": self.features_ms,
            "model": self.model_ms,
            "total": self.features_ms + self.model_ms,
        }


class AdClickScorer:
    """Scores candidate ads for a user in a context: online features, P(click), rank by p × bid.

    With a ``guard`` (a Redis store, :class:`~.serving_store.StoreGuard`), :meth:`score` never
    fails for the store's sake: while it cannot serve, the scores come from the guard's fallback
    (the snapshot's ads, a default user) and the result says why (``degraded_reason``).
    """

    def __init__(
        self,
        model: ClickEstimator,
        store: OnlineStore,
        model_name: str,
        feature_columns: Sequence[str] | None = None,
        guard: StoreGuard | None = None,
        *,
        onnx: bool = False,
    ) -> None:
        self.model = model
        self.store = store
        self.model_name = model_name
        self.feature_columns = list(feature_columns) if feature_columns is not None else None
        self.guard = guard
        self.kernel = compile_model(model, self.feature_columns or FEATURE_COLUMNS)
        arrays = self.arrays()
        if onnx and arrays is not None:  # a deep model: onnxruntime where measured faster
            self.kernel = choose_runtime(model, self.kernel, arrays.probe(N_PROBE))

    def arrays(self) -> OnlineArrays | None:
        """The online tables pre-encoded for integer gathers (:mod:`.serving_arrays`): served
        from memory only; rebuilt if the store's frames were replaced."""
        if self.guard is not None or not isinstance(self.store, FrameStore):
            return None
        return online_arrays(self.store)

    @property
    def run_id(self) -> str | None:
        """The run id of the served tables in Redis (None when served from memory)."""
        return None if self.guard is None else self.guard.run_id

    def ready(self) -> bool:
        """Can the online store serve now (always, in memory)? At most one bounded call."""
        return self.guard is None or self.guard.ready()

    def store_status(self) -> dict[str, str]:
        """The online store's state, no network call (``{"state": "in-process"}`` in memory)."""
        return {"state": "in-process"} if self.guard is None else self.guard.status()

    def retire(self) -> None:
        """This scorer was replaced by one of another run: let its Redis keys expire."""
        if self.guard is not None:
            self.guard.retire()

    def features(self, requests: pd.DataFrame, store: OnlineStore | None = None) -> pd.DataFrame:
        """The feature frame of ``requests`` (user_id, hour, device, ad_id), in training order."""
        return self._in_model_order(
            request_features(self.store if store is None else store, requests)
        )

    def _in_model_order(self, X: pd.DataFrame) -> pd.DataFrame:
        columns = self.feature_columns
        if columns is None or list(X.columns) == columns:
            return X
        missing = [c for c in columns if c not in X.columns]
        if missing:
            raise RuntimeError(f"online features lack the model's columns {missing}")
        return X[columns]

    def score_frame(self, requests: pd.DataFrame) -> np.ndarray:
        """P(click) for every row of ``requests`` (user_id, hour, device, ad_id): batch scoring."""
        return np.asarray(self.model.predict_proba(self.features(requests))[:, 1], np.float64)

    def bids(self, ad_ids: Sequence[int], store: OnlineStore | None = None) -> np.ndarray:
        """The current bid of every ad from the store's ``ad`` namespace."""
        found, columns = read_columns(
            self.store if store is None else store, AD_NAMESPACE, [str(a) for a in ad_ids], ["bid"]
        )
        if not found.all():
            raise UnknownIdError("ad", [a for a, ok in zip(ad_ids, found, strict=True) if not ok])
        return columns["bid"].astype(np.float64)

    def score(
        self, user_id: int, hour: int, device: str, ad_ids: Sequence[int], k: int | None = None
    ) -> ScoreResult:
        """Rank ``ad_ids`` for ``user_id`` at ``hour`` on ``device`` by expected value.

        Served from memory, the features are integer gathers into two contiguous blocks and the
        model is one call of its kernel on them (:mod:`.serving_arrays`,
        :mod:`.serving_kernels`); from Redis, a batched store read per namespace and the
        model's feature frame. Raises :class:`~mlsd.systems.ad_click.features.UnknownIdError`
        for unknown user or ad ids and :class:`CandidateError` for an empty or duplicated
        candidate list.
        """
        ids = candidate_ids(ad_ids)
        t0 = time.perf_counter()
        arrays = self.arrays()
        degraded = None
        if arrays is not None:
            dense, cat, bids = arrays.gather(user_id, hour, device, ids)  # users checked first
            t1 = time.perf_counter()
            p = self.kernel(dense, cat)
        else:
            n = len(ids)
            request = (
                np.full(n, user_id, dtype=np.int64),
                np.full(n, hour, dtype=np.int64),
                np.full(n, device, dtype=object),
                ids,
            )
            X, bids, degraded = self._inputs(request, ids.tolist())  # users checked first
            t1 = time.perf_counter()
            p = np.asarray(self.model.predict_proba(X)[:, 1], dtype=np.float64)
        t2 = time.perf_counter()
        value = p * bids
        order = np.lexsort((ids, -value))  # by expected value, ties by ad id
        if k is not None:
            order = order[:k]
        return ScoreResult(
            self.model_name,
            int(user_id),
            ids[order],
            p[order],
            bids[order],
            value[order],
            (t1 - t0) * 1000.0,
            (t2 - t1) * 1000.0,
            degraded,
        )

    def _inputs(
        self, request: Request, ids: list[int]
    ) -> tuple[pd.DataFrame, np.ndarray, str | None]:
        """Features and bids from the online store or, while it cannot serve, the fallback (and
        why)."""
        guard = self.guard
        reason = None if guard is None else guard.skip_reason()
        if reason is None:
            try:
                return self._candidates(request, self.store), self.bids(ids), None
            except TablesMissingError:
                if guard is None:
                    raise
                reason = guard.tables_missing()
            except StoreConnectionError as exc:
                if guard is None:
                    raise
                reason = guard.failure_reason(exc)
        assert guard is not None
        fallback = guard.fallback
        return self._candidates(request, fallback), self.bids(ids, fallback), reason

    def _candidates(self, request: Request, store: OnlineStore) -> pd.DataFrame:
        return self._in_model_order(candidate_features(store, *request))


def candidate_ids(ad_ids: Sequence[int]) -> np.ndarray:
    """The candidates as int64, or :class:`CandidateError` for an empty or repeating list."""
    ids = np.asarray(ad_ids, dtype=np.int64).reshape(-1)
    if ids.size == 0:
        raise CandidateError("ad_ids: at least one candidate is needed")
    ordered = np.sort(ids)
    repeated = ordered[1:][ordered[1:] == ordered[:-1]]
    if repeated.size:
        raise CandidateError(f"ad_ids: duplicate ad ids {np.unique(repeated).tolist()}")
    return ids


# --- artifacts -------------------------------------------------------------------------------


def _feature_columns_for(model: ClickEstimator, tables: Tables) -> list[str]:
    """The columns the served feature frame has: one probe request through a store over the
    first user, the first ad and the global row (slices of the tables, nothing copied)."""
    users, ads = tables.get("user"), tables.get(AD_NAMESPACE)
    if users is None or ads is None or users.empty or ads.empty or "global" not in tables:
        raise ValueError(f"online tables need 'user', 'ad' and 'global', got {sorted(tables)}")
    probe_store = FrameStore(
        {"user": users.iloc[:1], AD_NAMESPACE: ads.iloc[:1], "global": tables["global"]}
    )
    first_user, first_ad = int(users[KEY].iloc[0]), int(ads[KEY].iloc[0])
    probe = pd.DataFrame(
        {"user_id": [first_user], "hour": [0], "device": ["ios"], "ad_id": [first_ad]}
    )
    X = request_features(probe_store, probe)
    model.predict_proba(X)  # the model must accept what serving will feed it
    return [str(c) for c in X.columns]


def save_serving_artifacts(
    run_artifacts_dir: Path, model: ClickEstimator, model_name: str, tables: Tables
) -> None:
    """Write what :func:`load_scorer` needs: the model (the directory ``model/``, as data), the
    store snapshot (one Parquet file per namespace under ``online/``), ``serving.json``, and
    last ``manifest.json`` (the hash of every file of the folder, checked at load).

    Every file is written atomically (:mod:`mlsd.artifacts`), so a reader never sees half a file.
    """
    out = Path(run_artifacts_dir)
    out.mkdir(parents=True, exist_ok=True)
    columns = _feature_columns_for(model, tables)
    model.save(out / MODEL_FILE)
    for namespace, frame in tables.items():
        write_parquet(frame, table_path(out, namespace))
    meta = {
        "system": SYSTEM,
        "model_name": model_name,
        "model_class": type(model).__name__,
        "feature_columns": columns,
        "namespaces": {ns: len(frame) for ns, frame in tables.items()},
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    write_json(out / SERVING_FILE, meta)
    write_manifest(out)
    log.info("serving artifacts for %s written to %s", model_name, out)


def save_model_artifacts(run_artifacts_dir: Path, model: ClickEstimator) -> None:
    """The served model alone (a run on a feature file has no online tables), and the manifest."""
    out = Path(run_artifacts_dir)
    model.save(out / MODEL_FILE)
    write_manifest(out)


def _read_meta(artifacts_dir: Path) -> dict[str, Any]:
    """``serving.json``, after the whole folder is checked against its manifest (nothing is read
    before: a changed or planted file is refused, see :func:`mlsd.artifacts.verify_manifest`)."""
    verified = set(verify_manifest(artifacts_dir, required=(SERVING_FILE, MODEL_FILE)))
    path = artifacts_dir / SERVING_FILE
    meta = read_artifact_json(path)
    if not isinstance(meta, dict) or not isinstance(meta.get("model_name"), str):
        raise ServingArtifactError(f"{path}: field 'model_name' missing or not a string")
    if not isinstance(meta.get("feature_columns"), list):
        raise ServingArtifactError(f"{path}: field 'feature_columns' missing or not a list")
    namespaces = meta.get("namespaces")
    if not isinstance(namespaces, dict) or not {"user", AD_NAMESPACE, "global"} <= set(namespaces):
        raise ServingArtifactError(
            f"{path}: field 'namespaces' needs the 'user', 'ad' and 'global' online tables"
        )
    for ns in namespaces:
        table = table_path(artifacts_dir, str(ns))
        if table.relative_to(artifacts_dir).as_posix() not in verified:
            raise ServingArtifactError(f"{table}: serving artifact missing from the manifest")
    return meta


def _read_model(path: Path) -> ClickEstimator:
    """The served model, read as data (:mod:`mlsd.model_io`: JSON, arrays, LightGBM text,
    torch weights with ``weights_only=True``); the system's model classes are registered by
    importing :mod:`.model`."""
    import mlsd.systems.ad_click.model  # noqa: F401  (registers HashedLogisticRegression, DCNv2)

    if not path.is_dir():
        raise ServingArtifactError(f"{path}: serving artifact missing (was the run completed?)")
    try:
        return ClickEstimator.load(path)
    except (ModelFileError, OSError) as exc:
        raise ServingArtifactError(f"{path}: unreadable model: {exc}") from exc


def load_scorer(run_dir: Path, settings: Settings) -> AdClickScorer:
    """Load the model and fill an online store from a run directory's artifacts (``run_dir``
    may also be the bare artifacts folder, see :func:`mlsd.artifacts.artifacts_dir_of`).

    The store is a :class:`~mlsd.stores.FrameStore` over the snapshot's frames unless
    ``settings.redis_url`` is set; then the tables live in that Redis under the snapshot's run
    id (written unless already complete there, so replicas of one run share them and a reload
    of the same run writes nothing), guarded by a :class:`~.serving_store.StoreGuard` (timeouts,
    circuit breaker, re-seeding, the degraded fallback). An unreachable Redis is a
    :class:`~mlsd.stores.StoreConnectionError` naming its URL without the password. With
    ``settings.serve_onnx`` a deep model served from memory runs on onnxruntime where that is
    measured faster at load (:func:`~.serving_kernels.choose_runtime`).
    """
    artifacts_dir = artifacts_dir_of(Path(run_dir))
    meta = _read_meta(artifacts_dir)
    model = _read_model(artifacts_dir / MODEL_FILE)
    snapshot = Snapshot(artifacts_dir, [str(ns) for ns in meta["namespaces"]])
    store: OnlineStore
    guard: StoreGuard | None = None
    if settings.redis_url:
        live = RedisStore(
            settings.redis_url,
            run_id=snapshot.run_id,
            socket_timeout_s=settings.redis_socket_timeout_s,
            connect_timeout_s=settings.redis_connect_timeout_s,
            failure_threshold=settings.redis_breaker_failures,
            reset_timeout_s=settings.redis_breaker_cooldown_s,
        )
        guard = StoreGuard.open(live, snapshot, settings.redis_retire_ttl_s)
        store = live
        log.info("serving run %s from %s", snapshot.run_id, live.name)
    else:
        store = FrameStore(snapshot.frames())
    log.info("loaded %s from %s", meta["model_name"], artifacts_dir)
    return AdClickScorer(
        model,
        store,
        meta["model_name"],
        meta["feature_columns"],
        guard,
        onnx=settings.serve_onnx,
    )
