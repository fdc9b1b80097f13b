"""Model choice and comparison: the served model is chosen on validation users held out of
training, learned models are compared with Adamic–Adar on the same test users, node2vec's
Hadamard features live in one coordinate system, the hold-out's ROC-AUC set is balanced."""

from __future__ import annotations

import numpy as np
import pytest

from mlsd.systems.people_you_may_know.datasets import GraphData, world_graph
from mlsd.systems.people_you_may_know.evaluation import compute_offline
from mlsd.systems.people_you_may_know.features_split import compute_holdout, compute_split
from mlsd.systems.people_you_may_know.model import train_models
from mlsd.systems.people_you_may_know.model_node2vec import align
from mlsd.systems.people_you_may_know.world import PUBLIC_COLUMNS, PymkConfig, PymkWorld
from mlsd.world import Scale

CFG = PymkConfig.for_scale(Scale.TINY).with_(n_initial=200)


def test_align_recovers_a_rotation_of_the_reference() -> None:
    r = np.random.default_rng(0)
    ref = r.normal(size=(300, 8))
    q, _ = np.linalg.qr(r.normal(size=(8, 8)))  # a random orthogonal matrix
    moved = ref @ q + r.normal(0, 0.01, ref.shape)
    extra = np.vstack([moved, r.normal(size=(5, 8))])  # rows the reference never saw
    back = align(extra, ref, np.arange(300))
    assert back.shape == extra.shape
    assert np.abs(back[:300] - ref).max() < 0.1  # coordinates agree again
    had_ref, had_back = ref[0] * ref[1], back[0] * back[1]
    assert np.allclose(had_ref, had_back, atol=0.05)  # so do the Hadamard features
    assert not np.allclose(had_ref, moved[0] * moved[1], atol=0.05)
    # too few shared nodes to fit a rotation: left as it is
    assert np.array_equal(align(extra, ref, np.arange(3)), extra)


def test_the_model_is_chosen_on_validation_users_never_on_the_test() -> None:
    data = world_graph(PymkWorld(Scale.TINY, 1, CFG))
    split = compute_split(data, 0, "tiny")
    assert not set(split.train.users) & set(split.valid.users) and len(split.valid.users)
    assert split.train.snap is split.valid.snap  # same day, other users
    models = train_models(split.train.X, split.train.y, 0)  # no GNN: fast
    off = compute_offline(split, models)
    assert off.choice_metric == "recall@10"
    assert off.chosen == max(off.validation, key=lambda n: off.validation[n])
    assert "node2vec_lightgbm" not in off.validation
    # every learned model against Adamic-Adar on the same test users, with a CI
    assert set(off.versus) == {"logistic_regression", "lightgbm"}
    for cmp in off.versus.values():
        r = cmp["recall@10"]
        assert r["test"] == "paired t-test" and r["n_control"] == len(split.test.users)
        assert r["ci_low"] <= r["diff"] <= r["ci_high"]
        assert r["control"] == pytest.approx(off.scores["adamic_adar"]["recall@10"])


def test_the_holdout_auc_set_is_removed_edges_against_as_many_non_edges() -> None:
    world = PymkWorld(Scale.TINY, 2, CFG)
    e = world.edges
    users = world.public_users.assign(school=-1, employer=-1, city=-1, join_day=0)
    data = GraphData(users[list(PUBLIC_COLUMNS)], e, 20, 4, "test", False)
    split = compute_holdout(data, seed=0)
    auc = split.auc
    assert auc is not None and auc.snap is split.test.snap
    n = len(users)
    pos = auc.pairs[auc.y == 1]
    neg = auc.pairs[auc.y == 0]
    assert len(pos) == len(neg) == len(split.test.positives) // 2
    all_keys = set((e["u"] * n + e["v"]).tolist())
    neg_keys = np.minimum(neg["u"], neg["v"]) * n + np.maximum(neg["u"], neg["v"])
    assert not set(neg_keys.tolist()) & all_keys and (neg["u"] != neg["v"]).all()
    assert not auc.snap.are_friends(pos["u"].to_numpy(), pos["v"].to_numpy()).any()
    models = train_models(split.train.X, split.train.y, 0)
    off = compute_offline(split, models)
    assert off.choice_metric == "roc_auc"
    for m in off.scores.values():
        assert 0 <= m["roc_auc"] <= 1 and 0 <= m["recall@10"] <= 1
