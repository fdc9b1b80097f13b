"""EASE: the closed form, its refusal of huge catalogues, and that it learns item-to-item
structure that popularity cannot."""

from __future__ import annotations

import numpy as np
import pytest

from mlsd.rng import rng
from mlsd.systems.video_rec.model_ease import EaseSource


def _planted(n_users: int = 300, n_items: int = 60, groups: int = 6) -> tuple[np.ndarray, ...]:
    """Users watch items of their own group (plus a few popular items everyone watches)."""
    g = rng(0, "test/ease")
    user_group = g.integers(0, groups, n_users)
    rows: list[tuple[int, int]] = []
    for u in range(n_users):
        own = np.flatnonzero(np.arange(n_items) % groups == user_group[u])
        rows += [(u, int(i)) for i in g.choice(own, 6, replace=False)]
        rows += [(u, int(i)) for i in g.choice(np.arange(groups), 2, replace=False)]  # popular
    pairs = np.asarray(rows)
    return pairs[:, 0], pairs[:, 1], user_group


def test_weights_have_a_zero_diagonal_and_solve_the_ridge_problem() -> None:
    user, item, _ = _planted()
    m = EaseSource(l2=5.0).fit(user, item, np.ones(len(user)), 60)
    b = m.weights_.astype(np.float64)
    assert np.allclose(np.diag(b), 0.0)
    x = np.zeros((int(user.max()) + 1, 60))
    x[user, item] = 1.0
    # the gradient of ‖X − XB‖² + λ‖B‖² vanishes off the diagonal at the closed form
    grad = -(x.T @ (x - x @ b)) + 5.0 * b
    off = ~np.eye(60, dtype=bool)
    assert np.abs(grad[off]).max() < 1e-3 * np.abs(x.T @ x).max()


def test_recommends_the_users_group_not_just_popular_items() -> None:
    user, item, group = _planted()
    m = EaseSource(l2=100.0).fit(user, item, np.ones(len(user)), 60)
    history = [item[user == u][:3] for u in range(20)]
    lists = m.recommend(history, 5)
    same = np.mean([np.mean(lst % 6 == group[u]) for u, lst in enumerate(lists)])
    popular = np.argsort(-np.bincount(item, minlength=60), kind="stable")[:5]
    by_count = np.mean([np.mean(popular % 6 == group[u]) for u in range(20)])
    assert same > 0.8 and by_count < 0.4  # counts alone put the items everyone watches first
    for h, lst in zip(history, lists, strict=True):
        assert not set(h.tolist()) & set(lst.tolist())


def test_refuses_a_catalogue_too_big_to_invert() -> None:
    with pytest.raises(ValueError, match="max_items"):
        EaseSource(max_items=10).fit(np.zeros(3, int), np.arange(3), np.ones(3), 11)
