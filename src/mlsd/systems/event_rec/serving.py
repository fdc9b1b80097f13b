"""Step 6: the event ranker and its artifacts (no HTTP: that is ``mlsd.api.routes.event_rec``).

A request for user ``u`` at the serving clock runs three stages, each timed:

1. **filtering**: the open events (created, not started, not full, not already registered)
   within the radius (of home, or of the request's ``lat``/``lon``) starting within the window;
2. **features**: :func:`~mlsd.systems.event_rec.features.pair_frame` on the platform's records
   as of the clock (the same function the training rows were computed with);
3. **ranking**: the served model's scores, top ``k``.

The artifacts are data: the model (:mod:`mlsd.model_io`), the platform's tables as Parquet
(users, events, neighbourhoods, friends, follows, registrations and invitations so far) and
``serving.json``; all listed in ``manifest.json`` and checked before anything is read.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mlsd.artifacts import (
    artifacts_dir_of,
    verify_manifest,
    write_json,
    write_manifest,
    write_npy,
)
from mlsd.data import write_parquet
from mlsd.models import ClickEstimator
from mlsd.serving import (
    ServingArtifactError,
    artifact_count,
    read_artifact_json,
    read_artifact_model,
    read_artifact_tables,
)
from mlsd.settings import Settings
from mlsd.stores import OnlineStore, StoreConnectionError
from mlsd.systems.event_rec.features import (
    DEFAULT_RADIUS_KM,
    DEFAULT_WINDOW_H,
    Platform,
    distance_km,
    in_filter,
    pair_frame,
)
from mlsd.systems.event_rec.features_text import TextVectors
from mlsd.systems.event_rec.model import LambdaRank, PopularNearby, score
from mlsd.systems.event_rec.serving_store import (
    Shape,
    fill_store,
    friend_graph,
    online_frames,
    store_run_id,
    store_state,
)
from mlsd.systems.event_rec.world_state import CATEGORIES, SocialState

log = logging.getLogger(__name__)

SYSTEM = "event-rec"
MODEL_DIR = "model"
SERVING_FILE = "serving.json"
TABLES = ("users", "events", "hoods", "friends", "follows", "registrations", "invites")
EVENT_VECTORS = "tables/event_vectors.npy"
INTEREST_VECTORS = "tables/interest_vectors.npy"
# the city's km grid placed on the map: x km east and y km north of this corner
LAT0, LON0 = 52.45, 13.25
KM_PER_DEG_LAT = 111.2
KM_PER_DEG_LON = 111.2 * math.cos(math.radians(LAT0))


def to_latlon(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return LAT0 + np.asarray(y) / KM_PER_DEG_LAT, LON0 + np.asarray(x) / KM_PER_DEG_LON


def to_xy(lat: float, lon: float) -> tuple[float, float]:
    return (lon - LON0) * KM_PER_DEG_LON, (lat - LAT0) * KM_PER_DEG_LAT


class UnknownUserError(LookupError):
    def __init__(self, user_id: int) -> None:
        super().__init__(f"unknown user {user_id}: no such user in the served run")
        self.user_id = user_id


@dataclass(frozen=True)
class EventOut:
    event_id: int
    score: float
    category: str
    start_ts: int
    hours_until: float
    distance_km: float
    price: float
    lat: float
    lon: float
    friends_registered: int


@dataclass(frozen=True)
class Recommendation:
    user_id: int
    model: str
    events: list[EventOut]
    candidates: int  # events that passed filtering
    open_events: int  # events open at the clock, before the radius and window
    timings_ms: dict[str, float]
    features_from: str = "memory"  # "store" (the online store) or "memory" (the run's tables)
    degraded: bool = False  # the store failed: answered from the run's tables instead


@dataclass
class Tables:
    users: pd.DataFrame
    events: pd.DataFrame
    hoods: pd.DataFrame
    friends: pd.DataFrame
    follows: pd.DataFrame
    registrations: pd.DataFrame
    invites: pd.DataFrame


def world_tables(world: Any, log: Any) -> Tables:
    """The platform's tables of a world (an :class:`~.world.EventRecWorld`) and its log, as
    the serving step saves them (the world's hidden columns left out)."""
    return Tables(
        users=world.users,
        events=world.events.drop(columns=["tag"]),
        hoods=world.hoods,
        friends=world.friends,
        follows=world.follows,
        registrations=log.registrations,
        invites=log.invites,
    )


class EventRecScorer:
    """The served ranker over the platform's records as of ``clock_ts``."""

    def __init__(
        self,
        model: Any,
        model_name: str,
        tables: Tables,
        clock_ts: int,
        n_hosts: int,
        n_slots: int,
        radius_km: float = DEFAULT_RADIUS_KM,
        window_h: float = DEFAULT_WINDOW_H,
        text: TextVectors | None = None,
        store: OnlineStore | None = None,
    ) -> None:
        self.model = model
        self.model_name = model_name
        self.clock_ts = int(clock_ts)
        self.radius_km = radius_km
        self.window_h = window_h
        self.platform = Platform(tables.users, tables.events, tables.hoods, text)
        self.event_hood = self.platform.event_hood()
        self.state = SocialState.build(
            self.clock_ts + 1,
            len(tables.users),
            tables.events,
            tables.friends,
            tables.follows,
            n_hosts,
            tables.registrations,
            tables.invites,
            n_slots,
        )
        ev = tables.events
        self.open_events = np.flatnonzero(
            (ev["created_ts"].to_numpy() <= self.clock_ts)
            & (ev["start_ts"].to_numpy() > self.clock_ts)
            & (self.state.event_regs < ev["capacity"].to_numpy())
        )
        self.capacity = ev["capacity"].to_numpy(np.float64)
        self.host_of = ev["host_id"].to_numpy(np.int64)
        self.friends = friend_graph(tables.friends, len(tables.users))
        self.shape = Shape(len(tables.users), len(ev), n_hosts, n_slots)
        self.store = store

    def fill_store(self, store: OnlineStore) -> None:
        """Write the streaming tables as of the clock into ``store`` (once per run)."""
        fill_store(
            store, online_frames(self.state, self.platform.events, self.open_events, self.clock_ts)
        )

    def _state(self, user_id: int) -> tuple[SocialState, str, bool]:
        """The state to rank with: the store's (one user), or the run's tables if it fails."""
        if self.store is None:
            return self.state, "memory", False
        try:
            state = store_state(
                self.store,
                user_id,
                self.open_events,
                self.host_of,
                self.shape,
                self.friends,
                self.clock_ts,
            )
        except StoreConnectionError as exc:
            log.warning("event-rec: online store failed, answering from the run's tables: %s", exc)
            return self.state, "memory", True
        return state, "store", False

    @property
    def n_users(self) -> int:
        return len(self.platform.users)

    def recommend(
        self,
        user_id: int,
        k: int = 20,
        lat: float | None = None,
        lon: float | None = None,
        radius_km: float | None = None,
    ) -> Recommendation:
        t0 = time.perf_counter()
        if not 0 <= user_id < self.n_users:
            raise UnknownUserError(user_id)
        state, source, degraded = self._state(user_id)
        e = self.open_events
        e = e[state.pair_lookup(state.R, np.full(len(e), user_id), e) == 0]
        e = e[state.event_regs[e] < self.capacity[e]]  # not full (live counts from the store)
        u = np.full(len(e), user_id, np.int64)
        ts = np.full(len(e), self.clock_ts, np.int64)
        origin = None
        if lat is not None or lon is not None:  # each replaces home's coordinate
            users = self.platform.users
            x = float(users["x"].to_numpy()[user_id])
            y = float(users["y"].to_numpy()[user_id])
            if lon is not None:
                x = to_xy(LAT0, lon)[0]
            if lat is not None:
                y = to_xy(lat, LON0)[1]
            origin = (x, y)
        radius = self.radius_km if radius_km is None else radius_km
        keep = in_filter(self.platform, u, e, ts, radius, self.window_h, origin)
        n_open = len(e)
        u, e, ts = u[keep], e[keep], ts[keep]
        t1 = time.perf_counter()
        X = pair_frame(self.platform, state, u, e, ts, event_hood=self.event_hood)
        t2 = time.perf_counter()
        s = score(self.model, X) if len(e) else np.zeros(0)
        top = np.argsort(-s, kind="stable")[:k]
        t3 = time.perf_counter()
        ev = self.platform.events
        km = distance_km(self.platform, u[top], e[top])
        lats, lons = to_latlon(ev["x"].to_numpy()[e[top]], ev["y"].to_numpy()[e[top]])
        fr = state.pair_lookup(state.friends_registered, u[top], e[top])
        cat = ev["category"].to_numpy()
        start = ev["start_ts"].to_numpy()
        price = ev["price"].to_numpy(np.float64)
        out = [
            EventOut(
                event_id=int(e[i]),
                score=float(s[i]),
                category=CATEGORIES[int(cat[e[i]])],
                start_ts=int(start[e[i]]),
                hours_until=float((start[e[i]] - self.clock_ts) / 3600.0),
                distance_km=float(km[j]),
                price=float(price[e[i]]),
                lat=float(lats[j]),
                lon=float(lons[j]),
                friends_registered=int(fr[j]),
            )
            for j, i in enumerate(top)
        ]
        ms = 1000.0
        return Recommendation(
            user_id=int(user_id),
            model=self.model_name,
            events=out,
            candidates=len(e),
            open_events=int(n_open),
            timings_ms={
                "filtering": (t1 - t0) * ms,
                "features": (t2 - t1) * ms,
                "ranking": (t3 - t2) * ms,
                "total": (time.perf_counter() - t0) * ms,
            },
            features_from=source,
            degraded=degraded,
        )


# ---- artifacts --------------------------------------------------------------------------------
def save_serving_artifacts(
    artifacts_dir: Path,
    model: Any,
    model_name: str,
    tables: Tables,
    clock_ts: int,
    n_hosts: int,
    n_slots: int,
    text: TextVectors | None = None,
) -> None:
    out = Path(artifacts_dir)
    out.mkdir(parents=True, exist_ok=True)
    model.save(out / MODEL_DIR)
    for name in TABLES:
        write_parquet(getattr(tables, name), out / "tables" / f"{name}.parquet")
    if text is not None:
        write_npy(out / EVENT_VECTORS, text.events)
        write_npy(out / INTEREST_VECTORS, text.interests)
    write_json(
        out / SERVING_FILE,
        {
            "system": SYSTEM,
            "model_name": model_name,
            "model_class": type(model).__name__,
            "clock_ts": int(clock_ts),
            "n_hosts": int(n_hosts),
            "n_slots": int(n_slots),
            "radius_km": DEFAULT_RADIUS_KM,
            "window_h": DEFAULT_WINDOW_H,
            "text_encoder": None if text is None else text.encoder,
        },
    )
    write_manifest(out)


def load_scorer(run_dir: Path, settings: Settings | None = None) -> EventRecScorer:
    """The scorer of a run directory (or its bare artifacts folder), every file checked
    against the manifest before it is read."""
    import mlsd.systems.event_rec.model  # noqa: F401  (registers the model classes)

    art = artifacts_dir_of(Path(run_dir))
    required = (SERVING_FILE, MODEL_DIR, *(f"tables/{t}.parquet" for t in TABLES))
    verified = verify_manifest(art, required=required)
    path = art / SERVING_FILE
    meta = read_artifact_json(path)
    if not isinstance(meta, dict) or not isinstance(meta.get("model_name"), str):
        raise ServingArtifactError(f"{path}: field 'model_name' missing or not a string")
    clock, n_hosts, n_slots = (
        artifact_count(meta, k, path) for k in ("clock_ts", "n_hosts", "n_slots")
    )
    model = read_artifact_model(art / MODEL_DIR, (ClickEstimator, LambdaRank, PopularNearby))
    frames = read_artifact_tables(art / "tables", TABLES)
    text = None
    encoder = meta.get("text_encoder")
    if encoder is not None:
        if not isinstance(encoder, str):
            raise ServingArtifactError(f"{path}: field 'text_encoder' is not a string")
        verify = set(verified)
        vecs = []
        for rel in (EVENT_VECTORS, INTEREST_VECTORS):
            if rel not in verify:
                raise ServingArtifactError(
                    f"{art / rel}: serving artifact missing from the manifest"
                )
            try:
                vecs.append(np.load(art / rel, allow_pickle=False))
            except (OSError, ValueError) as exc:
                raise ServingArtifactError(f"{art / rel}: unreadable vectors: {exc}") from exc
        text = TextVectors(encoder, vecs[0], vecs[1])
    try:
        scorer = EventRecScorer(
            model, meta["model_name"], Tables(**frames), clock, n_hosts, n_slots, text=text
        )
    except (KeyError, ValueError, IndexError, TypeError) as exc:
        raise ServingArtifactError(f"{art}: inconsistent serving tables: {exc!r}") from exc
    if settings is not None and settings.redis_url:
        scorer.store = _redis_store(scorer, art, settings)
    return scorer


def _redis_store(scorer: EventRecScorer, art: Path, settings: Settings) -> OnlineStore:
    """The run's streaming tables in Redis, under the run id, written once."""
    from mlsd.stores_redis import RedisStore, RunState

    assert settings.redis_url
    store = RedisStore(
        settings.redis_url,
        prefix="mlsd-event-rec",
        run_id=store_run_id(art),
        socket_timeout_s=settings.redis_socket_timeout_s,
        connect_timeout_s=settings.redis_connect_timeout_s,
        failure_threshold=settings.redis_breaker_failures,
        reset_timeout_s=settings.redis_breaker_cooldown_s,
    )
    if store.run_state() != RunState.COMPLETE:
        scorer.fill_store(store)
        store.mark_complete()
    else:
        store.persist_run()
    return store
