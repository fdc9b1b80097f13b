"""Step 6 for ad click prediction: score a feed request's candidate ads, rank them, serve them.

The chapter's serving design (book ch. 8, "Serving"): the candidate-generation stage hands the
ranking service a user, the request's context and a few hundred candidate ads; the service
fetches the user's and the ads' features from the online feature store, predicts P(click) for
every candidate and ranks them by expected value, P(click) × bid, the quantity the auction uses.
The budget is 10 ms for 100 candidates, so features come from one batched store read and the
model scores all candidates in one call.

* :class:`AdClickScorer` is the scoring path, usable in-process (A/B tests, batch scoring,
  latency measurements) and behind HTTP (``mlsd.api.routes.ad_click``, whose handlers only
  translate HTTP to and from the scorer);
* :func:`save_serving_artifacts` / :func:`load_scorer` move it through a run directory.

The latency budget's choice of the served model is in :mod:`~.serving_latency`.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mlsd.artifacts import artifacts_dir_of, write_json
from mlsd.data import DataError, read_parquet, write_parquet
from mlsd.models import ClickEstimator
from mlsd.serving import ServingArtifactError, read_artifact_json
from mlsd.settings import Settings
from mlsd.stores import KEY, FrameStore, OnlineStore, open_store, put_frame
from mlsd.systems.ad_click.features import Tables, UnknownIdError, request_features

log = logging.getLogger(__name__)

SYSTEM = "ad-click"
MODEL_FILE = "model.pkl"
TABLES_DIR = "online"  # one Parquet file per online-store namespace
SERVING_FILE = "serving.json"
AD_NAMESPACE = "ad"


class CandidateError(ValueError):
    """The candidate list of a request is empty or repeats an ad."""


@dataclass(frozen=True)
class RankedAd:
    """One candidate, scored: the auction's inputs and their product."""

    ad_id: int
    p_click: float
    bid: float
    expected_value: float


@dataclass(frozen=True)
class ScoreResult:
    """The ranked candidates of one request, and where the time went."""

    model: str
    user_id: int
    ads: list[RankedAd]
    features_ms: float
    model_ms: float

    @property
    def timings_ms(self) -> dict[str, float]:
        return {
            "features": self.features_ms,
            "model": self.model_ms,
            "total": self.features_ms + self.model_ms,
        }


class AdClickScorer:
    """Scores candidate ads for a user in a context: online features, P(click), rank by p × bid."""

    def __init__(
        self,
        model: ClickEstimator,
        store: OnlineStore,
        model_name: str,
        feature_columns: Sequence[str] | None = None,
    ) -> None:
        self.model = model
        self.store = store
        self.model_name = model_name
        self.feature_columns = list(feature_columns) if feature_columns is not None else None

    def features(self, requests: pd.DataFrame) -> pd.DataFrame:
        """The feature frame of ``requests`` (user_id, hour, device, ad_id), in training order."""
        X = request_features(self.store, requests)
        if self.feature_columns is not None:
            missing = [c for c in self.feature_columns if c not in X.columns]
            if missing:
                raise RuntimeError(f"online features lack the model's columns {missing}")
            X = X[self.feature_columns]
        return X

    def score_frame(self, requests: pd.DataFrame) -> np.ndarray:
        """P(click) for every row of ``requests`` (user_id, hour, device, ad_id): batch scoring."""
        return np.asarray(self.model.predict_proba(self.features(requests))[:, 1], np.float64)

    def bids(self, ad_ids: Sequence[int]) -> np.ndarray:
        """The current bid of every ad from the store's ``ad`` namespace."""
        rows = self.store.get_many(AD_NAMESPACE, [str(a) for a in ad_ids])
        unknown = [a for a, row in zip(ad_ids, rows, strict=True) if row is None]
        if unknown:
            raise UnknownIdError("ad", unknown)
        return np.array([float(row["bid"]) for row in rows if row is not None], dtype=np.float64)

    def score(
        self, user_id: int, hour: int, device: str, ad_ids: Sequence[int], k: int | None = None
    ) -> ScoreResult:
        """Rank ``ad_ids`` for ``user_id`` at ``hour`` on ``device`` by expected value.

        Raises :class:`~mlsd.systems.ad_click.features.UnknownIdError` for unknown user or ad
        ids and :class:`CandidateError` for an empty or duplicated candidate list.
        """
        ids = [int(a) for a in ad_ids]
        if not ids:
            raise CandidateError("ad_ids: at least one candidate is needed")
        dups = sorted(a for a, count in Counter(ids).items() if count > 1)
        if dups:
            raise CandidateError(f"ad_ids: duplicate ad ids {dups}")
        n = len(ids)
        requests = pd.DataFrame(
            {
                "user_id": np.full(n, user_id, dtype=np.int64),
                "hour": np.full(n, hour, dtype=np.int64),
                "device": [device] * n,
                "ad_id": np.asarray(ids, dtype=np.int64),
            }
        )
        t0 = time.perf_counter()
        X = self.features(requests)  # raises UnknownIdError, users first
        bids = self.bids(ids)
        t1 = time.perf_counter()
        p = np.asarray(self.model.predict_proba(X)[:, 1], dtype=np.float64)
        t2 = time.perf_counter()
        value = p * bids
        order = np.lexsort((np.asarray(ids), -value))  # by expected value, ties by ad id
        if k is not None:
            order = order[:k]
        ads = [RankedAd(int(ids[i]), float(p[i]), float(bids[i]), float(value[i])) for i in order]
        return ScoreResult(
            self.model_name, int(user_id), ads, (t1 - t0) * 1000.0, (t2 - t1) * 1000.0
        )


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


def table_path(artifacts_dir: Path, namespace: str) -> Path:
    """Where a run keeps the snapshot of one online-store namespace."""
    return Path(artifacts_dir) / TABLES_DIR / f"{namespace}.parquet"


def save_serving_artifacts(
    run_artifacts_dir: Path, model: ClickEstimator, model_name: str, tables: Tables
) -> None:
    """Write what :func:`load_scorer` needs: the model, the store snapshot (one Parquet file per
    namespace under ``online/``), ``serving.json``.

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
    log.info("serving artifacts for %s written to %s", model_name, out)


def _read_meta(artifacts_dir: Path) -> dict[str, Any]:
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
    return meta


def _read_table(path: Path) -> pd.DataFrame:
    if not path.is_file():
        raise ServingArtifactError(f"{path}: serving artifact missing (was the run completed?)")
    try:
        frame = read_parquet(path)
    except (OSError, ValueError, DataError) as exc:  # pyarrow's errors are OSError / ValueError
        raise ServingArtifactError(f"{path}: unreadable serving artifact: {exc}") from exc
    if KEY not in frame.columns or len(frame.columns) < 2:
        raise ServingArtifactError(f"{path}: an online table needs a {KEY!r} and value columns")
    return frame


def _read_model(path: Path) -> ClickEstimator:
    if not path.is_file():
        raise ServingArtifactError(f"{path}: serving artifact missing (was the run completed?)")
    try:
        return ClickEstimator.load(path)
    except Exception as exc:  # unpickling can fail in many ways; all mean a bad file
        raise ServingArtifactError(f"{path}: unreadable model: {exc}") from exc


def load_scorer(run_dir: Path, settings: Settings) -> AdClickScorer:
    """Load the model and fill an online store from a run directory's artifacts (``run_dir``
    may also be the bare artifacts folder, see :func:`mlsd.artifacts.artifacts_dir_of`).

    The store is a :class:`~mlsd.stores.FrameStore` over the snapshot's frames unless
    ``settings.redis_url`` is set; then each namespace is pushed to that Redis in chunks of rows
    (upserted in place, so a server already reading it keeps working).
    """
    artifacts_dir = artifacts_dir_of(Path(run_dir))
    meta = _read_meta(artifacts_dir)
    model = _read_model(artifacts_dir / MODEL_FILE)
    namespaces = [str(ns) for ns in meta["namespaces"]]
    store: OnlineStore
    if settings.redis_url:
        store = open_store(settings.redis_url)
        for ns in namespaces:  # one namespace in memory at a time
            put_frame(store, ns, _read_table(table_path(artifacts_dir, ns)))
    else:
        store = FrameStore({ns: _read_table(table_path(artifacts_dir, ns)) for ns in namespaces})
    log.info("loaded %s from %s", meta["model_name"], artifacts_dir)
    return AdClickScorer(model, store, meta["model_name"], meta["feature_columns"])
