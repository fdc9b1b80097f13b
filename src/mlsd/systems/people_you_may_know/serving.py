"""Step 6 for people you may know, without HTTP: the batch job, its artifacts and the scorer.

The chapter's choice for established users is **batch precomputation**: once a day a job takes
the graph as of today, generates every user's candidates, computes their features, scores them
with the served model and stores each user's top :data:`TOP_K` (:func:`batch_job`). Serving is
then a lookup (:class:`PymkLists`). A brand-new user has no list until the next batch: the run
measures the online alternative (candidates + features + model for one user at request time) in
``serving_latency``.

Artifacts (``artifacts/``): ``recommendations.parquet`` (``user_id, rank, candidate_id, score,
mutual_friends``; ids as the data names them), the served model as data (``model/``, see
:mod:`mlsd.model_io`), ``serving.json`` and ``manifest.json`` (the hash of every file, written
last). :func:`load_scorer` checks the manifest, then reads them; nothing is a pickle. The HTTP
routes are in :mod:`mlsd.api.routes.people_you_may_know`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mlsd.artifacts import (
    artifacts_dir_of,
    atomic_path,
    verify_manifest,
    write_json,
    write_manifest,
)
from mlsd.engine import Engine, LocalEngine
from mlsd.model_io import save_value
from mlsd.models import LightGBMClick
from mlsd.serving import (
    ServingArtifactError,
    artifact_count,
    read_artifact_json,
    read_artifact_model,
    read_artifact_tables,
)
from mlsd.settings import Settings
from mlsd.systems.people_you_may_know.features import Snapshot, candidates, pair_features
from mlsd.systems.people_you_may_know.model import HeuristicScore, PairLogistic, score
from mlsd.systems.people_you_may_know.model_gnn import GraphSAGELink
from mlsd.systems.people_you_may_know.world import GROUPS, PUBLIC_COLUMNS

SYSTEM = "people-you-may-know"
MODEL_DIR = "model"
LISTS_FILE = "recommendations.parquet"
SERVING_FILE = "serving.json"
USERS_FILE = "graph_users.parquet"  # the public user table (row = internal id), ``node_id``
EDGES_FILE = "graph_edges.parquet"  # the friendships (internal ids) the lists were computed on
USER_COLUMNS = ("node_id", "school", "employer", "city", "age", "join_day")
EDGE_COLUMNS = ("u", "v", "day")
TOP_K = 50
LIST_COLUMNS = ("user_id", "rank", "candidate_id", "score", "mutual_friends")
#: What the served model may be (node2vec is evaluated, never served: see ``evaluation``).
SERVED_KINDS = (HeuristicScore, PairLogistic, LightGBMClick, GraphSAGELink)


def top_k(pairs: pd.DataFrame, s: np.ndarray, k: int) -> pd.DataFrame:
    """Each user's ``k`` best candidates by ``s`` (ties: candidate order), ranked from 1."""
    frame = pairs[["u", "v"]].assign(score=s, order=np.arange(len(pairs)))
    frame = frame.sort_values(["u", "score", "order"], ascending=[True, False, True], kind="stable")
    frame["rank"] = frame.groupby("u").cumcount() + 1
    return frame[frame["rank"] <= k]


@dataclass(frozen=True)
class BatchOutput:
    lists: pd.DataFrame  # LIST_COLUMNS, internal ids
    control: pd.DataFrame  # the baseline's top lists (u, v, rank), for the A/B test
    users: int
    pairs: int
    seconds: float
    features_sample: pd.DataFrame  # a sample of the served pairs' features (monitoring)


@dataclass(frozen=True)
class BatchShared:
    """What every shard of the batch job reads (sent to each worker once)."""

    snap: Snapshot
    model: Any
    baseline: Any
    seed: int
    k: int
    control_k: int


def batch_chunk(
    job: BatchShared, q: np.ndarray
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, int]:
    """One shard of the batch job: the top lists of the users ``q`` (model and baseline), a
    sample of their pairs' features, and how many pairs were scored."""
    snap = job.snap
    pairs = candidates(snap, q, job.seed)
    X = pair_features(snap, pairs["u"].to_numpy(), pairs["v"].to_numpy())
    uv = (snap, pairs["u"].to_numpy(), pairs["v"].to_numpy())
    top = top_k(pairs, score(job.model, X, uv), job.k)
    mutual = np.rint(np.expm1(X["d_mutual"].to_numpy()))
    lists = pd.DataFrame(
        {  # compact: 2.6M users x 50 rows hold in ~2 GB (the large scale)
            "user_id": top["u"].to_numpy(np.int32),
            "rank": top["rank"].to_numpy(np.int16),
            "candidate_id": top["v"].to_numpy(np.int32),
            "score": top["score"].to_numpy(np.float32),
            "mutual_friends": mutual[top.index.to_numpy()].astype(np.int32),
        }
    )
    ctl = top_k(pairs, score(job.baseline, X, uv), job.control_k)
    sample = X.iloc[:: max(1, len(X) // 2000)]
    return lists, ctl[["u", "v", "rank"]].astype(np.int32), sample, len(pairs)


def batch_job(
    snap: Snapshot,
    model: Any,
    baseline: Any,
    seed: int,
    k: int = TOP_K,
    control_k: int = 10,
    chunk: int = 5000,
    engine: Engine | None = None,
) -> BatchOutput:
    """Every present user's top ``k`` by ``model`` (and top ``control_k`` by ``baseline``),
    ``chunk`` users per shard (on ``engine``: the shards in parallel, in user order)."""
    t0 = time.perf_counter()
    users = np.flatnonzero(snap.present)
    lists, control, samples = [], [], []
    n_pairs = 0
    job = BatchShared(snap, model, baseline, seed, k, control_k)
    blocks = (users[s : s + chunk] for s in range(0, len(users), chunk))
    for top, ctl, sample, pairs in (engine or LocalEngine()).imap(batch_chunk, blocks, shared=job):
        lists.append(top)
        control.append(ctl)
        samples.append(sample)
        n_pairs += pairs
    empty = pd.DataFrame({c: np.zeros(0, np.int64) for c in LIST_COLUMNS})
    return BatchOutput(
        pd.concat(lists, ignore_index=True) if lists else empty,
        pd.concat(control, ignore_index=True)
        if control
        else pd.DataFrame(columns=["u", "v", "rank"]),
        len(users),
        n_pairs,
        time.perf_counter() - t0,
        pd.concat(samples, ignore_index=True) if samples else pd.DataFrame(),
    )


# ---- the scorer ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Suggestion:
    user_id: int
    score: float
    mutual_friends: int


class UnknownUsersError(LookupError):
    """Friends named for a new user that the graph does not hold."""


class PymkLists:
    """What people-you-may-know serves: the batch job's lists, read by lookup, and the online
    path for a user the batch has never seen (:meth:`recommend_new`): candidates, features and
    the served model computed at request time on the graph the lists were computed on."""

    def __init__(
        self,
        lists: pd.DataFrame,
        users: pd.DataFrame,
        edges: pd.DataFrame,
        model: Any,
        meta: dict[str, Any],
    ) -> None:
        self.model = model
        self.meta = meta
        self.day = int(meta.get("as_of_day", int(users["join_day"].max()) + 1))
        public = users.assign(user_id=np.arange(len(users), dtype=np.int64))
        self.snap = Snapshot.at(public[list(PUBLIC_COLUMNS)], edges, self.day)
        self.node_ids = users["node_id"].to_numpy(np.int64)  # internal -> the data's ids
        order = np.argsort(self.node_ids, kind="stable")
        self._sorted_ids, self._sorted_rows = self.node_ids[order], order
        self.n_groups = {k: int(users[k].max()) + 1 if len(users) else 0 for k in GROUPS}
        lists = lists.sort_values(["user_id", "rank"], kind="stable")
        uid = lists["user_id"].to_numpy(np.int64)
        self._list_users, starts = np.unique(uid, return_index=True)
        self._starts = starts
        self._ends = np.append(starts[1:], len(uid)).astype(np.int64)
        self._cand = lists["candidate_id"].to_numpy(np.int64)
        self._score = lists["score"].to_numpy(np.float32)
        self._mutual = lists["mutual_friends"].to_numpy(np.int32)

    @property
    def rows(self) -> int:
        """Rows of the stored lists."""
        return len(self._cand)

    def internal(self, user_id: int) -> int | None:
        """The row of a user the graph holds (present on the serving day), else None."""
        i = int(np.searchsorted(self._sorted_ids, user_id))
        if i >= len(self._sorted_ids) or self._sorted_ids[i] != user_id:
            return None
        row = int(self._sorted_rows[i])
        return row if bool(self.snap.present[row]) else None

    def known(self, user_id: int) -> bool:
        return self.internal(user_id) is not None

    def recommend(self, user_id: int, k: int) -> list[Suggestion]:
        """A known user's precomputed list (ids as the data names them)."""
        i = int(np.searchsorted(self._list_users, user_id))
        if i >= len(self._list_users) or self._list_users[i] != user_id:
            return []
        a = int(self._starts[i])
        b = min(int(self._ends[i]), a + k)
        return [
            Suggestion(int(c), float(s), int(m))
            for c, s, m in zip(self._cand[a:b], self._score[a:b], self._mutual[a:b], strict=True)
        ]

    def recommend_new(
        self, attrs: dict[str, int], friends: list[int], k: int, seed: int = 0
    ) -> list[Suggestion]:
        """Online computation for a user who joined after the batch: their school, employer,
        city (ids; unknown or unseen: -1) and age, and the friends they have already made."""
        rows = [self.internal(f) for f in friends]
        missing = [f for f, r in zip(friends, rows, strict=True) if r is None]
        if missing:
            raise UnknownUsersError(f"unknown friend ids {missing[:10]}")
        clean = {
            k: (v if 0 <= v < self.n_groups[k] else -1) if k in GROUPS else v
            for k, v in attrs.items()
        }
        snap = self.snap.with_user(clean, np.asarray(rows, np.int64))
        me = snap.n - 1
        pairs = candidates(snap, np.array([me]), seed)
        u, v = pairs["u"].to_numpy(), pairs["v"].to_numpy()
        X = pair_features(snap, u, v)
        top = top_k(pairs, score(self.model, X, (snap, u, v)), k)
        mutual = np.rint(np.expm1(X["d_mutual"].to_numpy()))[top.index.to_numpy()]
        return [
            Suggestion(int(self.node_ids[c]), float(s), int(m))
            for c, s, m in zip(top["v"].to_numpy(), top["score"].to_numpy(), mutual, strict=True)
        ]


def save_serving_artifacts(
    artifacts_dir: Path,
    lists: pd.DataFrame,
    users: pd.DataFrame,
    edges: pd.DataFrame,
    model: Any,
    info: dict[str, Any],
    node_ids: np.ndarray | None = None,
) -> None:
    """Write the lists (``lists`` in internal ids: written in the data's ids), the graph they
    were computed on, the model and ``serving.json``, then the manifest."""
    out = Path(artifacts_dir)
    out.mkdir(parents=True, exist_ok=True)
    ids = np.arange(len(users), dtype=np.int64) if node_ids is None else np.asarray(node_ids)
    external = lists.assign(
        user_id=ids[lists["user_id"].to_numpy(np.int64)],
        candidate_id=ids[lists["candidate_id"].to_numpy(np.int64)],
    )
    with atomic_path(out / LISTS_FILE) as tmp:
        external[list(LIST_COLUMNS)].to_parquet(tmp, index=False)
    table = users.assign(node_id=ids)[list(USER_COLUMNS)]
    with atomic_path(out / USERS_FILE) as tmp:
        table.to_parquet(tmp, index=False)
    with atomic_path(out / EDGES_FILE) as tmp:
        edges[list(EDGE_COLUMNS)].to_parquet(tmp, index=False)
    save_value(model, out / MODEL_DIR)
    meta = {"system": SYSTEM, "created_at": datetime.now(UTC).isoformat(timespec="seconds"), **info}
    write_json(out / SERVING_FILE, meta)
    write_manifest(out)


def load_lists(artifacts_dir: Path) -> PymkLists:
    """The scorer of a run's ``artifacts/``, through :mod:`mlsd.serving`'s readers: the
    manifest checked first, every file's problem a :class:`ServingArtifactError` naming it."""
    artifacts_dir = Path(artifacts_dir)
    files = (LISTS_FILE, MODEL_DIR, SERVING_FILE, USERS_FILE, EDGES_FILE)
    verify_manifest(artifacts_dir, required=files)
    meta_path = artifacts_dir / SERVING_FILE
    meta = read_artifact_json(meta_path)
    if not isinstance(meta, dict) or meta.get("system") != SYSTEM:
        raise ServingArtifactError(f"{meta_path}: not a {SYSTEM} serving file")
    artifact_count(meta, "as_of_day", meta_path)
    model = read_artifact_model(artifacts_dir / MODEL_DIR, SERVED_KINDS)
    tables = {name: Path(name).stem for name in (LISTS_FILE, USERS_FILE, EDGES_FILE)}
    frames = read_artifact_tables(artifacts_dir, list(tables.values()))
    for name, cols in (
        (LISTS_FILE, LIST_COLUMNS),
        (USERS_FILE, USER_COLUMNS),
        (EDGES_FILE, EDGE_COLUMNS),
    ):
        missing = [c for c in cols if c not in frames[tables[name]].columns]
        if missing:
            raise ServingArtifactError(f"{artifacts_dir / name}: missing columns {missing}")
    lists, users, edges = (frames[tables[n]] for n in (LISTS_FILE, USERS_FILE, EDGES_FILE))
    try:
        return PymkLists(lists, users, edges, model, meta)
    except (ValueError, IndexError, KeyError, TypeError) as exc:
        raise ServingArtifactError(f"{artifacts_dir}: inconsistent tables: {exc}") from exc


def load_scorer(run_dir: Path, settings: Settings) -> PymkLists:
    """What people-you-may-know serves, from a run directory (or its bare ``artifacts/``)."""
    return load_lists(artifacts_dir_of(run_dir))
