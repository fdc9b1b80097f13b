"""Batch precompute: every user's feed in a table, and its staleness against online feeds."""

from __future__ import annotations

import numpy as np

from mlsd.systems.video_rec.model import FitReport
from mlsd.systems.video_rec.serving import Recommender
from mlsd.systems.video_rec.serving_batch import STALE_DAYS, batch_precompute, compute_staleness
from mlsd.systems.video_rec.world import VideoRecWorld

Fitted = tuple[VideoRecWorld, Recommender, FitReport]


def test_batch_precompute_holds_every_users_feed(fitted: Fitted) -> None:
    _, rec, _ = fitted
    users = np.arange(40)
    batch = batch_precompute(rec, users, k=5)
    assert set(batch["table"]) == set(range(40)) and batch["users"] == 40
    assert all(len(ids) == 5 for ids in batch["table"].values())
    assert batch["lookup_ms"]["n"] == 40


def test_staleness_compares_the_same_lists_on_day_zero(fitted: Fitted) -> None:
    w, rec, _ = fitted
    days: list[int] = []

    def advance() -> Recommender:  # the same models a day on (the shared world stays put)
        days.append(rec.day + len(days) + 1)
        return rec.moved_to(rec.cat, rec.users, days[-1], seed=0)

    res = compute_staleness(w, rec, advance, 30, seed=0, online_p99_ms=5.0)
    assert [r["days_stale"] for r in res.staleness] == list(range(STALE_DAYS))
    assert len(days) == STALE_DAYS - 1
    assert res.staleness[0]["ndcg_batch"] == res.staleness[0]["ndcg_online"]
    assert res.metrics()["batch"]["online_p99_ms"] == 5.0
