"""Step 6, the chapter's trade-off: batch precomputation against online computation.

Measured on the run's own graph as of the serving day:

* **batch**: the daily job over every user (seconds, pairs scored), the storage of the lists and
  the latency of a lookup (p50 / p99, in process);
* **online**: candidates + features + model for one user at request time (p50 / p99);
* **freshness**: how many of the last day's new friendships involve a user whom yesterday's batch
  could not know (joined that day, so no list), and how many involve a user with no friends
  before that day (whose yesterday list came from attributes alone).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from mlsd.metrics import latency_summary
from mlsd.report import Blueprint
from mlsd.rng import rng
from mlsd.systems.people_you_may_know.features import Snapshot, candidates, pair_features
from mlsd.systems.people_you_may_know.model import score
from mlsd.systems.people_you_may_know.serving import TOP_K, PymkLists, top_k

ONLINE_SAMPLES = 200
NEW_USER_SAMPLES = 50
LOOKUP_SAMPLES = 5000


@dataclass(frozen=True)
class ServingReport:
    chosen: str
    batch: dict[str, Any]
    online: dict[str, Any]
    freshness: dict[str, Any]

    def metrics(self) -> dict[str, Any]:
        return {
            "serving": {
                "model": self.chosen,
                "batch": self.batch,
                "online": self.online,
                "freshness": self.freshness,
            }
        }


def online_latency(snap: Snapshot, model: Any, users: np.ndarray, seed: int) -> dict[str, float]:
    samples = []
    for u in users:
        t0 = time.perf_counter()
        pairs = candidates(snap, np.array([u]), seed)
        X = pair_features(snap, pairs["u"].to_numpy(), pairs["v"].to_numpy())
        top_k(pairs, score(model, X, (snap, pairs["u"].to_numpy(), pairs["v"].to_numpy())), TOP_K)
        samples.append((time.perf_counter() - t0) * 1000.0)
    return latency_summary(samples)


def lookup_latency(lists: PymkLists, users: np.ndarray) -> dict[str, float]:
    samples = []
    for u in lists.node_ids[users]:
        t0 = time.perf_counter()
        lists.recommend(int(u), 20)
        samples.append((time.perf_counter() - t0) * 1000.0)
    return latency_summary(samples)


def new_user_latency(lists: PymkLists, r: np.random.Generator, n: int) -> dict[str, float]:
    """The served online path for a user the batch never saw: a random existing user's
    attributes and 0-3 random friends (what a sign-up and a first friend request look like)."""
    present = np.flatnonzero(lists.snap.present)
    users = lists.snap.users
    samples = []
    for _ in range(n):
        like = int(r.choice(present))
        attrs = {k: int(users[k].to_numpy()[like]) for k in ("school", "employer", "city", "age")}
        friends = lists.node_ids[r.choice(present, int(r.integers(0, 4)), replace=False)]
        t0 = time.perf_counter()
        lists.recommend_new(attrs, [int(f) for f in friends], 20)
        samples.append((time.perf_counter() - t0) * 1000.0)
    return latency_summary(samples)


def freshness(edges: pd.DataFrame, users: pd.DataFrame, last_day: int) -> dict[str, Any]:
    e = edges[edges["day"] == last_day]
    u, v = e["u"].to_numpy(), e["v"].to_numpy()
    join = users["join_day"].to_numpy()
    before = edges[edges["day"] < last_day]
    deg = np.bincount(np.concatenate([before["u"], before["v"]]), minlength=len(users))
    new_user = (join[u] >= last_day) | (join[v] >= last_day)
    friendless = (deg[u] == 0) | (deg[v] == 0)
    n = max(len(e), 1)
    return {
        "last_day": last_day,
        "new_friendships": len(e),
        "share_with_a_user_yesterdays_batch_did_not_know": float(new_user.sum() / n),
        "share_with_a_user_without_friends_yesterday": float(friendless.sum() / n),
    }


def compute_serving(
    snap: Snapshot,
    lists: PymkLists,
    model: Any,
    chosen: str,
    batch_seconds: float,
    batch_pairs: int,
    list_bytes: int,
    edges: pd.DataFrame,
    seed: int,
) -> ServingReport:
    r = rng(seed, "pymk/serving-latency")
    present = np.flatnonzero(snap.present)
    online_users = r.choice(present, min(ONLINE_SAMPLES, len(present)), replace=False)
    lookups = r.choice(present, min(LOOKUP_SAMPLES, len(present)), replace=True)
    n_users = len(present)
    rows = int(lists.rows)
    batch = {
        "users": n_users,
        "pairs_scored": int(batch_pairs),
        "seconds": round(batch_seconds, 3),
        "users_per_second": n_users / max(batch_seconds, 1e-9),
        "list_rows": rows,
        "storage_bytes": int(list_bytes),
        "bytes_per_user": list_bytes / max(n_users, 1),
        "lookup_ms": lookup_latency(lists, lookups),
    }
    online = {
        "users": len(online_users),
        "latency_ms": online_latency(snap, model, online_users, seed),
        "new_user_latency_ms": new_user_latency(lists, r, NEW_USER_SAMPLES),
    }
    fresh = freshness(edges, snap.users, snap.day - 1)
    return ServingReport(chosen, batch, online, fresh)


def report_serving(bp: Blueprint, rep: ServingReport) -> None:
    b, o, f = rep.batch, rep.online, rep.freshness
    bp.section("Serving")
    bp.text(
        f"The daily batch job scored {b['pairs_scored']:,} pairs for {b['users']:,} users in "
        f"{b['seconds']:.1f} s with **{rep.chosen}** and stored each user's top {TOP_K} "
        f"({b['storage_bytes'] / 1e6:.2f} MB of Parquet, {b['bytes_per_user']:.0f} bytes per "
        "user). Serving is a lookup; the online path computes a user's candidates, features and "
        "scores at request time."
    )
    bp.table(
        ["", "batch precomputation", "online computation"],
        [
            ["latency p50 (ms)", b["lookup_ms"]["p50"], o["latency_ms"]["p50"]],
            ["latency p99 (ms)", b["lookup_ms"]["p99"], o["latency_ms"]["p99"]],
            [
                "a new user, p50 / p99 (ms)",
                "no list until the next batch",
                f"{o['new_user_latency_ms']['p50']:.1f} / {o['new_user_latency_ms']['p99']:.1f} "
                "(served: POST /v1/people-you-may-know/new-user)",
            ],
            ["storage", f"{b['storage_bytes']:,} bytes", "none (the graph it reads anyway)"],
            ["compute", f"{b['seconds']:.1f} s a day for every user", "per request"],
            [
                "freshness",
                f"a day old: {f['share_with_a_user_yesterdays_batch_did_not_know']:.1%} of day "
                f"{f['last_day']}'s {f['new_friendships']:,} new friendships involve a user "
                "yesterday's batch did not know",
                "up to the last edge",
            ],
        ],
    )
    bp.text(
        f"{f['share_with_a_user_without_friends_yesterday']:.1%} of that day's new friendships "
        "involve a user who had no friends the day before: the cold start that online "
        "computation (or a refresh after the first friendship) serves better than a day-old list."
    )
