"""Point-in-time features, candidate generation and the time split: nothing from the label
window reaches a feature."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mlsd.metrics import average_precision_at_k, ndcg_at_k, precision_at_k, recall_at_k
from mlsd.systems.people_you_may_know.datasets import world_graph
from mlsd.systems.people_you_may_know.evaluation import ranking_metrics
from mlsd.systems.people_you_may_know.features import (
    FEATURES,
    Snapshot,
    candidates,
    label_pairs,
    pair_features,
)
from mlsd.systems.people_you_may_know.features_split import compute_split
from mlsd.systems.people_you_may_know.world import PymkConfig, PymkWorld
from mlsd.world import Scale

CFG = PymkConfig.for_scale(Scale.TINY).with_(n_initial=150, n_days=12)


@pytest.fixture(scope="module")
def world() -> PymkWorld:
    return PymkWorld(Scale.TINY, 0, CFG)


def test_no_label_window_edge_reaches_a_feature(world: PymkWorld) -> None:
    t = 8
    edges = world.edges
    snap = Snapshot.at(world.public_users, edges, t)
    q = np.flatnonzero(snap.present)[:60]
    pairs = candidates(snap, q, seed=0)
    X = pair_features(snap, pairs["u"].to_numpy(), pairs["v"].to_numpy())
    # the graph without any edge of day >= t, and with the label window's edges scrambled
    past = edges[edges["day"] < t]
    future = edges[edges["day"] >= t].copy()
    future["v"] = np.random.default_rng(0).permutation(future["v"].to_numpy())
    future = future[future["u"] != future["v"]]
    for other in (past, pd.concat([past, future], ignore_index=True)):
        snap2 = Snapshot.at(world.public_users, other, t)
        X2 = pair_features(snap2, pairs["u"].to_numpy(), pairs["v"].to_numpy())
        pd.testing.assert_frame_equal(X, X2)
        pd.testing.assert_frame_equal(pairs, candidates(snap2, q, seed=0))
    assert list(X.columns) == list(FEATURES) and np.isfinite(X.to_numpy()).all()


def test_the_split_keeps_training_labels_before_the_test_snapshot(world: PymkWorld) -> None:
    split = compute_split(world_graph(world), 0, "tiny")
    assert split.t_train + world.config.window == split.t_test
    assert split.t_test + world.config.window == world.config.n_days
    # every training positive formed before the test day, every test positive on or after it
    e = world.edges
    key = e["u"] * 10_000 + e["v"]
    day = dict(zip(key, e["day"], strict=True))
    for ps, lo, hi in ((split.train, split.t_train, split.t_test), (split.test, split.t_test, 99)):
        pos = ps.pairs[ps.y == 1]
        lo_v, hi_v = np.minimum(pos["u"], pos["v"]), np.maximum(pos["u"], pos["v"])
        days = np.array([day[k] for k in (lo_v * 10_000 + hi_v)])
        assert ((days >= lo) & (days < hi)).all()
        assert ps.snap.adj.nnz == 2 * int((e["day"] < ps.snap.day).sum())


def test_candidates_are_never_self_friends_or_absent_users(world: PymkWorld) -> None:
    snap = Snapshot.at(world.public_users, world.edges, 6)
    q = np.flatnonzero(snap.present)
    c = candidates(snap, q, seed=3, n_fof=20, n_group=3)
    u, v = c["u"].to_numpy(), c["v"].to_numpy()
    assert (u != v).all() and not snap.are_friends(u, v).any()
    assert snap.present[v].all() and not c.duplicated(["u", "v"]).any()
    assert (c[c["fof"] == 1].groupby("u").size() <= 20).all()
    mutual = np.asarray(snap.adj[u[c["fof"] == 1]].multiply(snap.adj[v[c["fof"] == 1]]).sum(1))
    assert (mutual > 0).all()  # a friend of a friend shares at least one friend


def test_candidates_of_a_user_without_friends_come_from_their_groups(world: PymkWorld) -> None:
    snap = Snapshot.at(world.public_users, world.edges, 6)
    new = np.flatnonzero(snap.present & (snap.deg == 0))
    assert len(new)
    c = candidates(snap, new, seed=0)
    assert len(c) and (c["fof"] == 0).all()


def test_labels_are_both_directions_of_new_friendships(world: PymkWorld) -> None:
    snap = Snapshot.at(world.public_users, world.edges, 8)
    pos = label_pairs(world.edges, 8, 12, snap.present)
    keys = set(zip(pos["u"], pos["v"], strict=True))
    assert all((v, u) in keys for u, v in keys)


def test_vectorised_ranking_metrics_agree_with_the_framework() -> None:
    r = np.random.default_rng(0)
    users = np.array([3, 5, 9])
    u = np.repeat(users, 15)
    v = np.tile(np.arange(15), 3)
    s = r.random(len(u))
    y = (r.random(len(u)) < 0.3).astype(np.int64)
    relevant = np.array([y[u == x].sum() + 2 for x in users])  # 2 friendships missed per user
    got = ranking_metrics(users, relevant, u, s, y, (5, 10))
    for k in (5, 10):
        rec, prec, ap, nd = [], [], [], []
        for i, x in enumerate(users):
            m = u == x
            ranked = list(v[m][np.argsort(-s[m], kind="stable")])
            rel = set(v[m][y[m] == 1]) | {100, 101}
            rec.append(recall_at_k(ranked, rel, k))
            prec.append(precision_at_k(ranked, rel, k))
            ap.append(average_precision_at_k(ranked, rel, k))
            nd.append(ndcg_at_k(ranked, dict.fromkeys(rel, 1.0), k))
            assert len(rel) == relevant[i]
        assert got[f"recall@{k}"] == pytest.approx(np.mean(rec))
        assert got[f"precision@{k}"] == pytest.approx(np.mean(prec))
        assert got[f"map@{k}"] == pytest.approx(np.mean(ap))
        assert got[f"ndcg@{k}"] == pytest.approx(np.mean(nd))


def test_the_holdout_keeps_the_graph_connected_and_ranks_every_non_neighbour() -> None:
    import scipy.sparse as sp
    from scipy.sparse.csgraph import connected_components

    from mlsd.systems.people_you_may_know.datasets import GraphData
    from mlsd.systems.people_you_may_know.features_split import compute_holdout
    from mlsd.systems.people_you_may_know.world import PUBLIC_COLUMNS

    world = PymkWorld(Scale.TINY, 2, CFG)
    e = world.edges
    users = world.public_users.assign(school=-1, employer=-1, city=-1, join_day=0)
    data = GraphData(users[list(PUBLIC_COLUMNS)], e, 20, 4, "test", False)
    split = compute_holdout(data, seed=0)
    n = len(users)
    kept = split.test.snap.adj
    full = sp.coo_matrix((np.ones(len(e)), (e["u"], e["v"])), shape=(n, n))
    assert connected_components(kept)[0] == connected_components(full)[0]
    assert kept.nnz // 2 == len(e) - len(split.test.positives) // 2
    assert abs(len(split.test.positives) // 2 - len(e) // 2) <= 1
    ps = split.test
    per_user = ps.pairs.groupby("u").size()
    deg = np.asarray(kept.sum(axis=1)).ravel()
    assert (per_user.to_numpy() == n - 1 - deg[per_user.index.to_numpy()]).all()
    assert ps.candidate_recall() == 1.0 and split.protocol == "holdout"
    assert 0 < split.train.y.mean() < 1  # positives and as many non-edges


@pytest.mark.parametrize("friends", [[], [3], [0, 5, 149], list(range(0, 140, 7))])
def test_a_new_user_snapshot_equals_the_graph_rebuilt_with_their_friendships(
    world: PymkWorld, friends: list[int]
) -> None:
    t = 8
    snap = Snapshot.at(world.public_users, world.edges, t)
    attrs = {"school": 1, "employer": 2, "city": 0, "age": 30}
    grown = snap.with_user(attrs, np.array(friends, np.int64))
    n = snap.n
    row = pd.DataFrame([{"user_id": n, **attrs, "join_day": t - 1}])
    users = pd.concat([world.public_users, row[world.public_users.columns]], ignore_index=True)
    new = pd.DataFrame({"u": friends, "v": n, "day": t - 1}, dtype=np.int64)
    edges = pd.concat([world.edges[world.edges["day"] < t], new], ignore_index=True)
    rebuilt = Snapshot.at(users.astype(world.public_users.dtypes.to_dict()), edges, t)
    assert (grown.adj != rebuilt.adj).nnz == 0 and grown.adj.has_sorted_indices
    assert np.allclose(grown.recency.toarray(), rebuilt.recency.toarray())
    assert np.array_equal(grown.deg, rebuilt.deg) and np.array_equal(grown.present, rebuilt.present)
    q = np.array([n])
    pairs = candidates(grown, q, seed=0)
    assert len(pairs) and not set(friends) & set(pairs["v"])
    u, v = pairs["u"].to_numpy(), pairs["v"].to_numpy()
    a, b = pair_features(grown, u, v), pair_features(rebuilt, u, v)
    # group sizes are the batch's (the new user not counted in them): 1/|g| against 1/(|g|+1)
    rate = "d_group_rate"
    pd.testing.assert_frame_equal(a.drop(columns=rate), b.drop(columns=rate))
    assert np.array_equal(a[rate] > 0, b[rate] > 0) and (a[rate] >= b[rate]).all()
