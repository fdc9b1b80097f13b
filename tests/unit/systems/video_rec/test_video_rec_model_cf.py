"""The collaborative learners (ALS, BPR, Mult-VAE, LightGCN) on a tiny written ratings file:
they fit and recommend, learn the planted tastes, are reproducible under a seed, fold in unseen
users, leave videos added after the fit out, save as data and refuse bad input clearly."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from mlsd.systems.video_rec.datasets import load_movielens
from mlsd.systems.video_rec.datasets_synthetic import SyntheticShape, write_synthetic_movielens
from mlsd.systems.video_rec.model_cf import CFSource
from mlsd.systems.video_rec.model_lightgcn import LightGcnSource
from mlsd.systems.video_rec.model_mf import AlsSource, BprSource
from mlsd.systems.video_rec.model_vae import VaeSource

TINY = SyntheticShape(
    users=80, items=60, ratings=1600, min_per_user=10, max_per_user=40, taste_strength=4.0
)
MAKERS: dict[str, Callable[[int], CFSource]] = {
    "als": lambda seed: AlsSource(factors=8, iterations=10, alpha=5.0, seed=seed),
    "bpr": lambda seed: BprSource(factors=8, iterations=60, learning_rate=0.05, seed=seed),
    "vae": lambda seed: VaeSource(hidden=32, latent=8, epochs=40, batch_size=32, seed=seed),
    "lightgcn": lambda seed: LightGcnSource(dim=8, layers=2, epochs=40, batch_size=256, seed=seed),
}


@pytest.fixture(scope="module")
def ratings(tmp_path_factory: pytest.TempPathFactory) -> tuple[np.ndarray, np.ndarray, int]:
    """(user, item, n_items) of a tiny synthetic u.data, read back through the reader."""
    d = tmp_path_factory.mktemp("ml")
    write_synthetic_movielens(d, TINY, seed=0)
    ml = load_movielens(str(d))
    r = ml.ratings
    return r["user"].to_numpy(), r["item"].to_numpy(), len(ml.items)


def _fit(name: str, data: tuple[np.ndarray, np.ndarray, int], seed: int = 0) -> CFSource:
    user, item, n = data
    return MAKERS[name](seed).fit(user, item, np.ones(len(user), np.int8), n)


@pytest.mark.parametrize("name", sorted(MAKERS))
def test_fits_recommends_and_is_reproducible(
    name: str, ratings: tuple[np.ndarray, np.ndarray, int], tmp_path: Path
) -> None:
    user, item, n = ratings
    m = _fit(name, ratings)
    hist = [item[user == u] for u in range(5)]
    s = m.scores(hist, users=np.arange(5))
    assert s.shape == (5, n) and np.isfinite(s).all()
    lists = m.recommend(hist, 10, users=np.arange(5))
    for h, lst in zip(hist, lists, strict=True):
        assert len(lst) == 10 and not set(lst.tolist()) & set(h.tolist())
    np.testing.assert_array_equal(_fit(name, ratings).scores(hist, users=np.arange(5)), s)
    assert not np.array_equal(_fit(name, ratings, seed=1).scores(hist, users=np.arange(5)), s)
    m.save(tmp_path / "m.npz")
    np.testing.assert_array_equal(type(m).load(tmp_path / "m.npz").scores(hist, np.arange(5)), s)


@pytest.mark.parametrize("name", sorted(MAKERS))
def test_learns_tastes_beyond_popularity(
    name: str, ratings: tuple[np.ndarray, np.ndarray, int]
) -> None:
    """Half of each user's items predicted from the other half: better than the most popular."""
    user, item, n = ratings
    users = np.unique(user)
    keep = np.zeros(len(user), bool)
    for u in users:
        rows = np.flatnonzero(user == u)
        keep[rows[: len(rows) // 2]] = True
    m = MAKERS[name](0).fit(user[keep], item[keep], np.ones(int(keep.sum())), n)
    hist = [item[keep & (user == u)] for u in users]
    held = [set(item[~keep & (user == u)].tolist()) for u in users]
    lists = m.recommend(hist, 5, users=users)
    pop = np.argsort(-np.bincount(item[keep], minlength=n), kind="stable")
    pop_lists = [[i for i in pop if i not in set(h.tolist())][:5] for h in hist]

    def hits(ls: list[list[int]] | list[np.ndarray]) -> float:
        return float(
            np.mean([len(set(np.asarray(x).tolist()) & t) for x, t in zip(ls, held, strict=True)])
        )

    assert hits(lists) > hits(pop_lists)


@pytest.mark.parametrize("name", sorted(MAKERS))
def test_folds_in_unseen_users_and_leaves_new_videos_out(
    name: str, ratings: tuple[np.ndarray, np.ndarray, int]
) -> None:
    user, item, n = ratings
    m = _fit(name, ratings)
    hist = [item[user == 3], np.zeros(0, np.int64)]
    s = m.scores(hist, users=np.array([10_000, -1]), n_items=n + 7)
    assert s.shape == (2, n + 7)
    assert np.isfinite(s[0, :n]).all() and np.isneginf(s[0, n:]).all()  # new videos: -inf
    assert np.isneginf(s[1]).all()  # no history, not in the fit: nothing to go on
    assert m.recommend(hist, 5, users=np.array([10_000, -1]))[1].size == 0


@pytest.mark.parametrize("name", sorted(MAKERS))
def test_bad_input_is_refused_with_the_row(name: str) -> None:
    m = MAKERS[name](0)
    with pytest.raises(ValueError, match="row 2: user 1, video 9 is out of range"):
        m.fit(np.array([0, 1, 1]), np.array([0, 1, 9]), np.ones(3), 5)
    with pytest.raises(ValueError, match="differ in length"):
        m.fit(np.array([0, 1]), np.array([0]), np.ones(2), 5)
    with pytest.raises(ValueError, match="no clicked"):
        m.fit(np.array([0, 1]), np.array([0, 1]), np.zeros(2), 5)
    with pytest.raises(ValueError, match="must be integers"):
        m.fit(np.array([0.5, 1.0]), np.array([0, 1]), np.ones(2), 5)
    with pytest.raises(RuntimeError, match="not fitted"):
        m.scores([np.array([0])])
