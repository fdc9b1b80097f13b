"""Step 6's trade-off table for people you may know: the online path's model per latency budget.

A known user is served a precomputed list (a lookup); a new user, or a list that must be fresh,
is computed at request time: the user's candidate pairs, their pair features, the model's
scores and the top list (:meth:`PymkLists.recommend_new`). Here every servable pair model (the
graph heuristics, logistic regression, LightGBM, GraphSAGE) is timed on that path at 10, 100
and 1,000 candidate pairs per request, next to the precomputed-list lookup as a contender, and
the serving rule ("the best validation figure whose p99 meets the budget") is re-made for every
budget (:func:`mlsd.tradeoffs.sweep_budgets`). Quality is each model's validation figure from
the offline step (held-out validation users, never the test); the lookup carries the served
model's, since its lists are that model's ranking (a day old, and absent for a new user).
node2vec + LightGBM is left out: it has no validation figure (it is evaluated, never served,
because it refits its embeddings on every graph it scores).
"""

from __future__ import annotations

import logging
import time
from functools import partial
from typing import Any

import numpy as np
import pandas as pd

from mlsd.latency import Timer, machine_load
from mlsd.rng import rng
from mlsd.systems.people_you_may_know.evaluation import NOT_SERVED, OfflineEvaluation
from mlsd.systems.people_you_may_know.features import Snapshot, candidates, pair_features
from mlsd.systems.people_you_may_know.model import score
from mlsd.systems.people_you_may_know.serving import TOP_K, top_k
from mlsd.tradeoffs import BudgetSweep, measure_by_candidates, sweep_budgets
from mlsd.training import torch_threads

log = logging.getLogger(__name__)

SWEEP_COUNTS = (10, 100, 1000)
SWEEP_REQUESTS = {"tiny": 5, "small": 30, "medium": 30, "large": 30}
SWEEP_ROUNDS = {"tiny": 2, "small": 3, "medium": 3, "large": 3}
WARMUP = 1
LIST_K = 20  # what a request reads from a precomputed list (the serving report's lookup)
LOOKUP = "precomputed_list"


def request_pairs(snap: Snapshot, users: np.ndarray, count: int, seed: int) -> list[pd.DataFrame]:
    """Per request user, exactly ``count`` candidate pairs ``(u, v)``: the user's own candidates
    (friends of friends, group members) first, topped up with other present users."""
    r = rng(seed, f"pymk/tradeoffs/pairs/{count}")
    present = np.flatnonzero(snap.present)
    cand = candidates(snap, users, seed)
    out = []
    for u in users:
        own = cand.loc[cand["u"] == u, "v"].to_numpy()[:count]
        extra = present[(present != u) & ~np.isin(present, own)]
        need = count - len(own)
        fill = (
            r.choice(extra, need, replace=need > len(extra)) if need > 0 < len(extra) else extra[:0]
        )
        v = np.concatenate([own, fill]).astype(np.int64)
        out.append(pd.DataFrame({"u": np.full(len(v), u, np.int64), "v": v}))
    return out


def _time_online(snap: Snapshot, model: Any, requests: list[pd.DataFrame]) -> np.ndarray:
    """One round: pair features, the model's scores and the top list, per request."""
    samples = []
    for j, pairs in enumerate(requests):
        t0 = time.perf_counter()
        u, v = pairs["u"].to_numpy(), pairs["v"].to_numpy()
        X = pair_features(snap, u, v)
        top_k(pairs, score(model, X, (snap, u, v)), TOP_K)
        if j >= WARMUP:
            samples.append((time.perf_counter() - t0) * 1e3)
    return np.asarray(samples)


def _time_lookup(lists: dict[int, np.ndarray], users: np.ndarray) -> np.ndarray:
    """One round: reading each user's precomputed list (what a known user's request does)."""
    samples = []
    for j, u in enumerate(users):
        t0 = time.perf_counter()
        lst = lists.get(int(u))
        _ = [] if lst is None else lst[:LIST_K].tolist()
        if j >= WARMUP:
            samples.append((time.perf_counter() - t0) * 1e3)
    return np.asarray(samples)


def compute_budget_sweep(
    snap: Snapshot,
    models: dict[str, Any],
    offline: OfflineEvaluation,
    lists: pd.DataFrame,
    *,
    scale: str,
    seed: int,
    torch_thread_count: int | None,
) -> BudgetSweep:
    """Every servable model on the online path at 10 / 100 / 1,000 candidate pairs, and the
    precomputed-list lookup; the rule per budget (validation figures)."""
    names = [n for n in offline.validation if n in models and n not in NOT_SERVED]
    accuracy = {n: offline.validation[n] for n in names}
    accuracy[LOOKUP] = offline.validation[offline.chosen]
    present = np.flatnonzero(snap.present)
    r = rng(seed, "pymk/tradeoffs/users")
    n = SWEEP_REQUESTS[scale] + WARMUP
    users = r.choice(present, n, replace=n > len(present))
    by_count = {k: request_pairs(snap, users, k, seed) for k in SWEEP_COUNTS}
    ordered = lists.sort_values(["user_id", "rank"], kind="stable")
    uid = ordered["user_id"].to_numpy(np.int64)
    cand = ordered["candidate_id"].to_numpy(np.int64)
    list_users, starts = np.unique(uid, return_index=True)
    stored: dict[int, np.ndarray] = (
        dict(zip(list_users.tolist(), np.split(cand, starts[1:]), strict=True)) if len(uid) else {}
    )

    def timer_for(name: str, count: int) -> Timer:
        if name == LOOKUP:
            return partial(_time_lookup, stored, users)
        return partial(_time_online, snap, models[name], by_count[count])

    before = machine_load()
    with torch_threads(torch_thread_count):
        for name in names:  # embed the graph once (GraphSAGE caches it on the snapshot)
            _time_online(snap, models[name], by_count[SWEEP_COUNTS[0]][:1])
        lat = measure_by_candidates(timer_for, [*names, LOOKUP], SWEEP_COUNTS, SWEEP_ROUNDS[scale])
    log.info("pymk: budget sweep over %d contenders x %s pairs", len(accuracy), SWEEP_COUNTS)
    return sweep_budgets(
        accuracy,
        lat,
        metric=offline.choice_metric,
        higher_is_better=True,
        measured=(
            "the online path for one user: pair features, the model's scores and the top list "
            "over that many candidate pairs (the day's graph embedded once for GraphSAGE, as "
            f"the batch job does; candidate generation not included); {LOOKUP}: reading a "
            f"user's stored top {LIST_K}, with the served model's ({offline.chosen}) "
            "validation figure, a day old and absent for a new user; node2vec_lightgbm left "
            "out: it has no validation figure (evaluated, never served)"
        ),
        rounds=SWEEP_ROUNDS[scale],
        load={"before": before, "after": machine_load()},
        unit="candidate pairs",
    )


def online_rules(sweep: BudgetSweep) -> list[str]:
    """The same rule without the lookup: what a new user (who has no list) or a list that must
    be fresh is served, per budget and candidate count."""
    return sweep_budgets(
        {n: a for n, a in sweep.accuracy.items() if n != LOOKUP},
        {
            k: {n: s for n, s in by_model.items() if n != LOOKUP}
            for k, by_model in sweep.latency_ms.items()
        },
        metric=sweep.metric,
        higher_is_better=sweep.higher_is_better,
        budgets_ms=sweep.budgets_ms,
        load=sweep.load,
        unit=sweep.unit,
    ).rules()
