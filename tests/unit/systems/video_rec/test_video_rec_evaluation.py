"""Offline evaluation: who is evaluated, and every stage next to the oracle in one layout."""

from __future__ import annotations

import numpy as np

from mlsd.systems.video_rec.evaluation import (
    MODE_LABELS,
    STAGE_KEYS,
    compute_offline,
    compute_summary,
    eval_users,
)
from mlsd.systems.video_rec.model import FitReport
from mlsd.systems.video_rec.serving import Recommender
from mlsd.systems.video_rec.world import VideoRecWorld

Fitted = tuple[VideoRecWorld, Recommender, FitReport]


def test_eval_users_take_new_users_up_to_a_quarter(fitted: Fitted) -> None:
    w, _, _ = fitted
    users = eval_users(w, 40, np.random.default_rng(0))
    signup = w.users["signup_day"].to_numpy()[users]
    assert len(users) == 40 and len(set(users.tolist())) == 40
    assert (signup == w.day).sum() == min(10, int((w.users["signup_day"] == w.day).sum()))
    assert (signup <= w.day).all()


def test_offline_metrics_put_every_stage_under_models_and_the_oracle_apart(
    fitted: Fitted,
) -> None:
    w, rec, _ = fitted
    res = compute_offline(rec, w, 60, seed=0)
    again = compute_offline(rec, w, 60, seed=0)
    for mode, figures in res.stages.items():  # seeded (only the timings differ)
        assert {k: figures[k] for k in STAGE_KEYS} == {k: again.stages[mode][k] for k in STAGE_KEYS}
    m = res.metrics()
    models = m["models"]
    assert set(MODE_LABELS) | {"merged"} <= set(models)
    assert {"recall@100", "recall@500", *STAGE_KEYS} <= set(models["two_tower"])
    assert {"recall@100", "recall@500", *STAGE_KEYS} <= set(m["oracle"])
    assert m["offline"]["users"] == res.users == 60
    for mode in MODE_LABELS:
        assert 0 <= models[mode]["ndcg@10"] <= 1 and 0 <= models[mode]["coverage"] <= 1
        assert models[mode]["true_minutes@10"] <= m["oracle"]["true_minutes@10"], mode
    assert 0 < models["merged"]["candidates"] <= rec.n_tower + rec.n_popular + rec.n_cowatch
    summary = compute_summary(res, 1000, 5.0, "ship").metrics()["summary"]
    assert summary["ndcg@10_full"] == models["full"]["ndcg@10"]
    assert summary["ndcg@10_oracle"] == m["oracle"]["ndcg@10"]
