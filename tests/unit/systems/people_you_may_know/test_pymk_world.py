"""The growing social network: deterministic by seed, well-formed edges, new users, the oracle."""

from __future__ import annotations

import numpy as np
import pytest

from mlsd.systems.people_you_may_know.features import Snapshot
from mlsd.systems.people_you_may_know.world import PymkConfig, PymkWorld
from mlsd.world import Scale

CFG = PymkConfig.for_scale(Scale.TINY).with_(n_initial=150, n_days=10)


@pytest.fixture(scope="module")
def world() -> PymkWorld:
    return PymkWorld(Scale.TINY, 0, CFG)


def test_same_seed_same_world_other_seed_other_world(world: PymkWorld) -> None:
    again = PymkWorld(Scale.TINY, 0, CFG)
    assert world.edges.equals(again.edges) and world.users.equals(again.users)
    other = PymkWorld(Scale.TINY, 1, CFG)
    assert not world.edges.equals(other.edges)


def test_edges_are_undirected_unique_dated_and_between_present_users(world: PymkWorld) -> None:
    e = world.edges
    u, v, d = e["u"].to_numpy(), e["v"].to_numpy(), e["day"].to_numpy()
    assert (u < v).all() and len(np.unique(u * 10_000 + v)) == len(e)
    assert d.min() >= 0 and d.max() < CFG.n_days and (np.diff(d) >= 0).all()
    join = world.users["join_day"].to_numpy()
    assert (join[u] <= d).all() and (join[v] <= d).all()
    assert (np.bincount(join)[1:] == CFG.new_per_day).all()  # new users every day
    assert sum(world.accepted_per_day) == len(e) <= sum(world.sent_per_day)


def test_homophily_and_triadic_closure_shape_the_graph(world: PymkWorld) -> None:
    e = world.edges
    comm = world.users["community"].to_numpy()
    same = (comm[e["u"]] == comm[e["v"]]).mean()
    assert same > 5 / CFG.n_communities  # far above chance (1/8)


def test_the_platform_never_sees_the_hidden_columns(world: PymkWorld) -> None:
    assert not {"community", "activity"} & set(world.public_users.columns)


def test_oracle_rates_are_positive_and_favour_friends_of_friends(world: PymkWorld) -> None:
    snap = Snapshot.at(world.public_users, world.edges, 6)
    u = np.flatnonzero(snap.present)[:50]
    two_hop = (snap.adj[u] @ snap.adj).tocoo()
    pairs = [(u[r], c) for r, c in zip(two_hop.row, two_hop.col, strict=True) if u[r] != c][:200]
    fu, fv = np.array([p[0] for p in pairs]), np.array([p[1] for p in pairs])
    r_fof = world.oracle_rate(snap.adj, snap.present, fu, fv)
    ru = np.repeat(u[:10], 20)
    rv = np.random.default_rng(0).choice(np.flatnonzero(snap.present), len(ru))
    r_rand = world.oracle_rate(snap.adj, snap.present, ru, rv)
    assert (r_fof > 0).all() and (r_rand > 0).all()
    assert r_fof.mean() > 3 * r_rand.mean()
