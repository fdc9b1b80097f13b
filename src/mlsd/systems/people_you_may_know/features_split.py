"""Step 3, the time split: training pairs and test pairs, and the candidate generator's recall.

With ``Δ`` the label window and ``T`` the last day + 1: the test snapshot is the graph at
``t = T - Δ`` (labels: friendships formed in ``[t, T)``), the training snapshot the graph at
``t - Δ`` (labels: ``[t - Δ, t)``). Training labels end where test features begin, and a
snapshot holds only edges formed before its day, so no label reaches a feature.

An edge list without timestamps has no time to split by: :func:`compute_holdout` runs the
standard link-prediction protocol instead (a random half of the edges removed, the graph kept
connected, every non-neighbour ranked).

The users scored are those present at the snapshot with at least one new friendship in the
window (the users a ranking metric can be computed for), sampled to :data:`QUERY_USERS` per
scale. The candidate generator's recall is the share of those users' new friendships that are
among their candidates; its cost is the candidates per user against all pairs.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from mlsd.report import Blueprint
from mlsd.rng import rng
from mlsd.systems.people_you_may_know.datasets import GraphData
from mlsd.systems.people_you_may_know.features import (
    FEATURES,
    Snapshot,
    candidates,
    label_pairs,
    labels_of,
    pair_features,
)

QUERY_USERS = {"tiny": 400, "small": 6000, "medium": 6000, "large": 6000}


@dataclass(frozen=True)
class PairSet:
    """The candidate pairs of a snapshot's query users, their features and labels."""

    snap: Snapshot
    users: np.ndarray  # the query users
    pairs: pd.DataFrame  # u, v, fof
    X: pd.DataFrame
    y: np.ndarray
    positives: pd.DataFrame  # every new friendship of the window (u, v), both directions
    seconds: float

    def relevant_counts(self) -> np.ndarray:
        """New friendships of each query user in the window (in or out of the candidates)."""
        pos_u = self.positives["u"].to_numpy()
        counts = np.bincount(pos_u, minlength=self.snap.n)
        return counts[self.users]

    def candidate_recall(self) -> float:
        total = int(self.relevant_counts().sum())
        return float(self.y.sum() / total) if total else float("nan")

    def per_user(self) -> float:
        return len(self.pairs) / max(len(self.users), 1)


def build_pairs(data: GraphData, day: int, seed: int, n_query: int, purpose: str) -> PairSet:
    t0 = time.perf_counter()
    snap = Snapshot.at(data.users, data.edges, day)
    positives = label_pairs(data.edges, day, day + data.window, snap.present)
    active = np.unique(positives["u"].to_numpy())
    if len(active) > n_query:
        active = np.sort(rng(seed, f"pymk/query-users/{purpose}").choice(active, n_query, False))
    pairs = candidates(snap, active, seed)
    X = pair_features(snap, pairs["u"].to_numpy(), pairs["v"].to_numpy())
    y = labels_of(pairs, positives, snap.n)
    return PairSet(snap, active, pairs, X, y, positives, time.perf_counter() - t0)


def split_users(ps: PairSet, seed: int, share: float) -> tuple[PairSet, PairSet]:
    """``ps`` cut by user (a user's candidates all on one side): the rest and a seeded
    ``share`` of its users, the validation set the served model is chosen on."""
    is_valid = rng(seed, "pymk/valid-users").random(len(ps.users)) < share

    def part(users: np.ndarray) -> PairSet:
        rows = np.isin(ps.pairs["u"].to_numpy(), users)
        return PairSet(
            ps.snap,
            users,
            ps.pairs[rows].reset_index(drop=True),
            ps.X[rows].reset_index(drop=True),
            ps.y[rows],
            ps.positives,
            ps.seconds,
        )

    return part(ps.users[~is_valid]), part(ps.users[is_valid])


VALID_SHARE = 0.2


@dataclass(frozen=True)
class SplitData:
    """The training pairs, the validation pairs (a share of the training snapshot's users, held
    out of training: the served model is chosen on them, never on the test) and the test pairs.
    ``auc``: the standard protocol's ROC-AUC set of a graph without time (removed edges and as
    many sampled non-edges), else None."""

    data: GraphData
    train: PairSet
    valid: PairSet
    test: PairSet
    protocol: str = "time"  # "time": the time split; "holdout": random edges of a static graph
    auc: PairSet | None = None

    @property
    def t_train(self) -> int:
        return self.train.snap.day

    @property
    def t_test(self) -> int:
        return self.test.snap.day

    def metrics(self) -> dict[str, Any]:
        present = int(self.test.snap.present.sum())
        return {
            "features": {
                "protocol": self.protocol,
                "names": list(FEATURES),
                "train_day": self.t_train,
                "test_day": self.t_test,
                "label_window_days": self.data.window,
                "train_pairs": len(self.train.y),
                "valid_pairs": len(self.valid.y),
                "test_pairs": len(self.test.y),
                **({"auc_pairs": len(self.auc.y)} if self.auc is not None else {}),
                "train_positive_rate": float(self.train.y.mean()) if len(self.train.y) else 0.0,
                "valid_positive_rate": float(self.valid.y.mean()) if len(self.valid.y) else 0.0,
                "test_positive_rate": float(self.test.y.mean()) if len(self.test.y) else 0.0,
                "seconds": round(self.train.seconds + self.test.seconds, 3),
            },
            "candidates": {
                "generator": "friends of friends (top 100 by mutual friends + 2 per shared "
                "school or employer + 1 per shared city) + 10 random people each from the same "
                "school, employer and city",
                "recall": self.test.candidate_recall(),
                "recall_friends_of_friends_only": _fof_recall(self.test),
                "pairs_per_user": self.test.per_user(),
                "all_pairs_per_user": present - 1,
                "share_of_all_pairs": self.test.per_user() / max(present - 1, 1),
            },
        }


def _fof_recall(ps: PairSet) -> float:
    total = int(ps.relevant_counts().sum())
    fof = ps.pairs["fof"].to_numpy() == 1
    return float(ps.y[fof].sum() / total) if total else float("nan")


def compute_split(data: GraphData, seed: int, scale: str) -> SplitData:
    t_test = data.n_days - data.window
    t_train = t_test - data.window
    if t_train < 1:
        raise ValueError(f"{data.n_days} days cannot hold two label windows of {data.window}")
    n_query = QUERY_USERS.get(scale, 6000)
    train, valid = split_users(
        build_pairs(data, t_train, seed, n_query, "train"), seed, VALID_SHARE
    )
    test = build_pairs(data, t_test, seed, n_query, "test")
    return SplitData(data, train, valid, test)


def report_split(bp: Blueprint, split: SplitData) -> None:
    m = split.metrics()
    f, c = m["features"], m["candidates"]
    bp.section("Feature engineering")
    if split.protocol == "holdout":
        bp.text(
            "**Hold-out (no timestamps).** A seeded random half of the edges removed, never an "
            "edge of a random spanning forest (the graph stays connected): the test positives. "
            f"Training positives: a further {TRAIN_SHARE:.0%} of the kept graph's removable edges, "
            "with as many random non-edges, features from what remains. ROC-AUC: the removed "
            f"edges against as many sampled non-edges ({f.get('auc_pairs', 0):,} pairs, features "
            "from the kept graph). The ranked view: for "
            f"{len(split.test.users):,} nodes with removed edges, *all* their non-neighbours in "
            f"the kept graph are ranked ({f['test_pairs']:,} pairs). **Features:** "
            + ", ".join(f"`{n}`" for n in f["names"])
            + "."
        )
        return
    bp.text(
        f"**Time split.** Training pairs: the graph at the start of day {f['train_day']}, labels "
        f"= friendships formed on days {f['train_day']}–{f['test_day'] - 1}. Test pairs: the graph "
        f"at day {f['test_day']}, labels = days {f['test_day']}–"
        f"{f['test_day'] + f['label_window_days'] - 1}. "
        "A snapshot holds only edges formed strictly before its day. **Features** of each "
        "(user, candidate) pair: " + ", ".join(f"`{n}`" for n in f["names"]) + "."
    )
    bp.text(
        f"**Candidate generation.** {c['generator']}. It keeps **{c['recall']:.1%}** of the test "
        f"users' next-period friendships (friends of friends alone: "
        f"{c['recall_friends_of_friends_only']:.1%}) while scoring {c['pairs_per_user']:.0f} pairs "
        f"per user instead of {c['all_pairs_per_user']:,} ({c['share_of_all_pairs']:.2%} of all "
        "pairs)."
    )
    bp.table(
        ["split", "pairs", "positive rate"],
        [
            ["train", f["train_pairs"], f["train_positive_rate"]],
            ["validation (model choice)", f["valid_pairs"], f["valid_positive_rate"]],
            ["test", f["test_pairs"], f["test_positive_rate"]],
        ],
    )


# ---- an edge list without timestamps: the standard link-prediction hold-out ------------------
HOLDOUT_NODES = 300  # nodes of the ranked view (each ranks all its non-neighbours)
HOLDOUT_PAIRS = 3_000_000  # at most this many ranked pairs: fewer nodes on a big graph
TRAIN_SHARE = 0.2  # of the kept graph's removable edges, held out again as training positives


def _remove_keeping_connected(
    u: np.ndarray, v: np.ndarray, n: int, share: float, r: np.random.Generator
) -> np.ndarray:
    """A mask of edges to remove: a seeded random ``share`` of all edges, never an edge of a
    random spanning forest (so the remaining graph keeps every component connected)."""
    import scipy.sparse as sp
    from scipy.sparse.csgraph import minimum_spanning_tree

    w = r.random(len(u)) + 1e-3
    g = sp.coo_matrix((w, (u, v)), shape=(n, n)).tocsr()
    tree = minimum_spanning_tree(g).tocoo()
    tree_keys = set((tree.row.astype(np.int64) * n + tree.col).tolist())
    keys = u * n + v
    removable = np.flatnonzero(~np.isin(keys, np.fromiter(tree_keys, np.int64, len(tree_keys))))
    k = min(int(share * len(u)), len(removable))
    mask = np.zeros(len(u), bool)
    mask[r.choice(removable, k, replace=False)] = True
    return mask


def _pairset(
    snap: Snapshot,
    held: pd.DataFrame,
    query: np.ndarray,
    pairs: pd.DataFrame,
) -> PairSet:
    t0 = time.perf_counter()
    hu, hv = held["u"].to_numpy(), held["v"].to_numpy()
    positives = pd.DataFrame({"u": np.concatenate([hu, hv]), "v": np.concatenate([hv, hu])})
    X = pair_features(snap, pairs["u"].to_numpy(), pairs["v"].to_numpy())
    y = labels_of(pairs, positives, snap.n)
    return PairSet(snap, query, pairs, X, y, positives, time.perf_counter() - t0)


def _static_snapshot(users: pd.DataFrame, kept: pd.DataFrame) -> Snapshot:
    return Snapshot.at(users.assign(join_day=0), kept.assign(day=0), 1)


def _all_non_neighbours(kept: pd.DataFrame, n: int, query: np.ndarray) -> pd.DataFrame:
    u = np.repeat(query, n)
    v = np.tile(np.arange(n, dtype=np.int64), len(query))
    keys = np.minimum(u, v) * n + np.maximum(u, v)
    edge_keys = kept["u"].to_numpy() * n + kept["v"].to_numpy()
    keep = (u != v) & ~np.isin(keys, edge_keys)
    return pd.DataFrame({"u": u[keep], "v": v[keep], "fof": np.int8(0)})


def _non_edges(n: int, edge_keys: np.ndarray, m: int, r: np.random.Generator) -> np.ndarray:
    """Up to ``m`` distinct random node pairs ``lo * n + hi`` (lo < hi) that are not edges."""
    found = np.zeros(0, np.int64)
    for _ in range(20):
        if len(found) >= m:
            break
        nu, nv = r.integers(0, n, 3 * m + 10), r.integers(0, n, 3 * m + 10)
        lo, hi = np.minimum(nu, nv), np.maximum(nu, nv)
        keys = lo * n + hi
        bad = (lo == hi) | np.isin(keys, edge_keys)
        new = keys[~bad]
        found = np.concatenate([found, new[~np.isin(new, found)]])
        found = found[np.sort(np.unique(found, return_index=True)[1])]
    return found[:m]


def _pairs_of(pos: pd.DataFrame, neg: np.ndarray, n: int) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "u": np.concatenate([pos["u"].to_numpy(), neg // n]),
            "v": np.concatenate([pos["v"].to_numpy(), neg % n]),
            "fof": np.int8(0),
        }
    )


def compute_holdout(data: GraphData, seed: int) -> SplitData:
    """The standard protocol for a graph without time: remove a seeded random half of the
    edges keeping the graph connected (the test positives), train on the rest (a further
    random fifth of it held out again as training positives, with as many random non-edges).
    ROC-AUC: the removed edges against as many sampled non-edges of the whole graph. The
    ranked view: for up to :data:`HOLDOUT_NODES` nodes with removed edges, *all* their
    non-neighbours in the remaining graph, ranked."""
    r = rng(seed, "pymk/holdout")
    n = len(data.users)
    e = data.edges
    u, v = e["u"].to_numpy(), e["v"].to_numpy()
    removed = _remove_keeping_connected(u, v, n, 0.5, r)
    kept, held = e[~removed], e[removed]
    ku, kv = kept["u"].to_numpy(), kept["v"].to_numpy()
    removed2 = _remove_keeping_connected(ku, kv, n, TRAIN_SHARE, r)
    kept2, held2 = kept[~removed2], kept[removed2]
    # training: the held-out positives and as many random non-edges of the kept graph
    train_pairs = _pairs_of(held2, _non_edges(n, ku * n + kv, len(held2), r), n)
    train_users = np.unique(train_pairs["u"].to_numpy())
    train_snap = _static_snapshot(data.users, kept2)
    train, valid = split_users(
        _pairset(train_snap, held2, train_users, train_pairs), seed, VALID_SHARE
    )
    # test: the ranked view of sampled nodes with removed edges, and the ROC-AUC set
    test_snap = _static_snapshot(data.users, kept)
    nodes = np.unique(np.concatenate([held["u"].to_numpy(), held["v"].to_numpy()]))
    n_nodes = max(20, min(HOLDOUT_NODES, HOLDOUT_PAIRS // max(n, 1)))  # pairs stay bounded
    if len(nodes) > n_nodes:
        nodes = np.sort(r.choice(nodes, n_nodes, replace=False))
    test = _pairset(test_snap, held, nodes, _all_non_neighbours(kept, n, nodes))
    auc_pairs = _pairs_of(held, _non_edges(n, u * n + v, len(held), r), n)
    auc = _pairset(test_snap, held, np.unique(auc_pairs["u"].to_numpy()), auc_pairs)
    return SplitData(data, train, valid, test, protocol="holdout", auc=auc)
