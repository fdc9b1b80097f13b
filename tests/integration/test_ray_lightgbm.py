"""LightGBM's own data-parallel training on Ray actors (mlsd.engine_lightgbm, issue #15): the
model trained on 2 machines (histograms all-reduced over sockets on 127.0.0.1) ranks and
classifies as well as the one trained on one machine, within a stated tolerance (each machine
bins its own rows, so the trees are close, not bit-equal)."""

from __future__ import annotations

from collections.abc import Iterator

import lightgbm as lgb
import numpy as np
import pytest
from sklearn.metrics import ndcg_score, roc_auc_score

from mlsd.engine import Engine, LocalEngine, make_engine
from mlsd.engine_lightgbm import split_rows, train_lightgbm

pytest.importorskip("ray")
pytestmark = [
    pytest.mark.xdist_group("ray"),
    pytest.mark.filterwarnings("ignore::DeprecationWarning:ray.*"),
]

AUC_TOLERANCE = 0.01  # |AUC(2 machines) - AUC(1 machine)| on held-out rows
NDCG_TOLERANCE = 0.02  # |nDCG@10(2 machines) - nDCG@10(1 machine)| on held-out groups
PARAMS = {
    "num_leaves": 15,
    "learning_rate": 0.1,
    "min_child_samples": 20,
    "verbosity": -1,
    "seed": 0,
    "deterministic": True,
    "force_row_wise": True,
    "num_threads": 1,
}


@pytest.fixture(scope="module")
def ray_engine() -> Iterator[Engine]:
    engine = make_engine("ray", workers=2)
    try:
        yield engine
    finally:
        engine.shutdown()


def test_rows_split_without_cutting_a_group() -> None:
    assert split_rows(10, 2) == [slice(0, 5), slice(5, 10)]
    parts = split_rows(12, 2, [3, 4, 2, 3])
    assert parts == [slice(0, 7), slice(7, 12)]  # the cut falls on a group's end
    with pytest.raises(ValueError, match="sum to 11"):
        split_rows(12, 2, [3, 4, 4])
    with pytest.raises(ValueError, match="cannot be split"):
        split_rows(3, 2, [3])


def test_data_parallel_lightgbm_classifies_as_well_as_one_machine(ray_engine: Engine) -> None:
    g = np.random.default_rng(0)
    X, Xt = g.normal(size=(4000, 6)), g.normal(size=(2000, 6))
    y, yt = ((m[:, 0] + m[:, 1] * m[:, 2] + g.normal(size=len(m)) > 0).astype(int) for m in (X, Xt))
    params = {**PARAMS, "objective": "binary"}
    one = train_lightgbm(LocalEngine(), params, X, y, 40)
    two = train_lightgbm(ray_engine, params, X, y, 40)
    assert two.num_trees() == one.num_trees() == 40
    auc_one, auc_two = roc_auc_score(yt, one.predict(Xt)), roc_auc_score(yt, two.predict(Xt))
    assert auc_one > 0.75
    assert abs(auc_two - auc_one) < AUC_TOLERANCE
    assert np.corrcoef(one.predict(Xt), two.predict(Xt))[0, 1] > 0.95


def test_data_parallel_lambdarank_ranks_as_well_as_one_machine(ray_engine: Engine) -> None:
    g = np.random.default_rng(1)
    sizes = g.integers(5, 15, 500)
    n = int(sizes.sum())
    X = g.normal(size=(n, 5))
    rel = X[:, 0] + 0.5 * X[:, 1] + 0.5 * g.normal(size=n)
    y = (rel > 1).astype(int) + (rel > 2).astype(int)
    cut = int(sizes[:400].sum())
    params = {**PARAMS, "objective": "lambdarank"}
    one = train_lightgbm(LocalEngine(), params, X[:cut], y[:cut], 40, group_sizes=sizes[:400])
    two = train_lightgbm(ray_engine, params, X[:cut], y[:cut], 40, group_sizes=sizes[:400])

    def ndcg(model: lgb.Booster) -> float:
        s, out, start = model.predict(X), [], cut
        for k in sizes[400:]:
            if y[start : start + k].max() > 0:
                out.append(ndcg_score([y[start : start + k]], [s[start : start + k]], k=10))
            start += k
        return float(np.mean(out))

    assert ndcg(one) > 0.8
    assert abs(ndcg(two) - ndcg(one)) < NDCG_TOLERANCE


@pytest.mark.slow  # Ray Train starts its own worker group
def test_the_local_instance_is_on_loopback_and_trains_there(ray_engine: Engine) -> None:
    """The private instance's node is 127.0.0.1 (its servers listen on loopback only), and Ray
    Train's gloo workers find each other there: data-parallel equals the in-process loop."""
    import ray
    import torch
    from torch import nn

    from mlsd.training import fit_torch

    ray_engine.start()
    assert [n["NodeManagerAddress"] for n in ray.nodes() if n["Alive"]] == ["127.0.0.1"]
    g = torch.Generator().manual_seed(0)
    X = torch.randn(200, 3, generator=g)
    y = (X[:, 0] > 0).float()
    weights = []
    for parallel in (False, True):
        torch.manual_seed(0)
        model = nn.Linear(3, 1)

        def fit(m: nn.Module = model) -> None:
            fit_torch(
                m,
                [X],
                y,
                loss_fn=lambda out, t: nn.functional.binary_cross_entropy_with_logits(
                    out.squeeze(1), t
                ),
                epochs=2,
                batch_size=50,
                lr=0.1,
                seed=1,
            )

        if parallel:
            with ray_engine.data_parallel():
                fit()
        else:
            fit()
        weights.append(model.weight.detach().clone())
    torch.testing.assert_close(weights[1], weights[0], rtol=0, atol=1e-5)
