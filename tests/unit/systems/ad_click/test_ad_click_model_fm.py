"""Factorization machines and DeepFM: Rendle's identity, and the interactions they learn."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import torch

from mlsd.metrics import roc_auc
from mlsd.systems.ad_click.model import HashedLogisticRegression
from mlsd.systems.ad_click.model_fm import FM, DeepFM, pairwise_interactions


def test_pairwise_interactions_is_the_sum_over_pairs_of_dot_products() -> None:
    g = torch.Generator().manual_seed(0)
    v = torch.randn(5, 4, 3, generator=g, dtype=torch.float64)  # (B, F, D)
    brute = sum(
        (v[:, i] * v[:, j]).sum(dim=1) for i, j in itertools.combinations(range(v.shape[1]), 2)
    )
    torch.testing.assert_close(pairwise_interactions(v), brute)


def xor_clicks(n: int, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    """Clicks driven only by the pair (a, b): a = b clicks often, each field alone says nothing."""
    draw = np.random.default_rng(seed)
    a, b = draw.integers(0, 6, n), draw.integers(0, 6, n)
    p = np.where(a == b, 0.5, 0.05)
    X = pd.DataFrame({"c_a": a + 100, "c_b": b + 200, "d_noise": draw.normal(size=n)})
    return X, (draw.random(n) < p).astype(np.int64)


def test_fm_and_deepfm_learn_a_pair_that_a_linear_model_cannot() -> None:
    X, y = xor_clicks(6000, seed=0)
    X_test, y_test = xor_clicks(3000, seed=1)
    small = {"embedding_dim": 4, "field_buckets": 2**10, "num_threads": 1, "random_state": 0}
    fit = {"epochs": 20, "batch_size": 256, "lr": 2e-2, "patience": 5}
    lr = HashedLogisticRegression(n_bits=10, random_state=0).fit(X, y)
    aucs = {"lr": roc_auc(y_test, lr.predict_proba(X_test)[:, 1])}
    for name, model in (("fm", FM(**small, **fit)), ("deepfm", DeepFM(**small, **fit))):
        p = model.fit(X, y).predict_proba(X_test)[:, 1]
        aucs[name] = roc_auc(y_test, p)
    assert aucs["lr"] < 0.6, aucs  # no cross handed to it: the pair is invisible
    assert aucs["fm"] > 0.75 and aucs["deepfm"] > 0.75, aucs
