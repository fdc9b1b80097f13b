"""LightGBM's own data-parallel training on Ray actors (mlsd.engine_lightgbm, issue #15): the
model trained on 2 machines (histograms all-reduced over sockets on 127.0.0.1) ranks and
classifies as well as the one trained on one machine, within a stated tolerance (each machine
bins its own rows, so the trees are close, not bit-equal)."""

from __future__ import annotations

import logging

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import ndcg_score, roc_auc_score

from mlsd import engine_lightgbm
from mlsd.contracts import click_frame
from mlsd.engine import Engine, LocalEngine
from mlsd.engine_lightgbm import split_rows, train_lightgbm
from mlsd.models import LightGBMClick
from mlsd.systems.event_rec.model import LambdaRank

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


@pytest.mark.slow  # two fits on LightGBM's actors
def test_the_models_fit_data_parallel_inside_the_engines_block(
    ray_engine: Engine, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Inside ``RayEngine.data_parallel()`` (threshold lowered to these tiny sets) event-rec's
    LambdaRank and LightGBMClick (early stopping on its held-out 10%) train on 2 actors and
    rank / classify as well as their in-process fits."""
    monkeypatch.setattr(engine_lightgbm, "DATA_PARALLEL_MIN_ROWS", 1000)
    caplog.set_level(logging.INFO, logger="mlsd.engine_lightgbm")
    g = np.random.default_rng(2)
    sizes = g.integers(5, 15, 500)
    group = np.repeat(np.arange(500), sizes)
    X = pd.DataFrame(g.normal(size=(len(group), 4)), columns=["d_a", "d_b", "d_c", "d_d"])
    rel = X["d_a"] + 0.5 * X["d_b"] + 0.5 * g.normal(size=len(X))
    y = (rel > 1.5).astype(int).to_numpy()
    train, test = group < 400, group >= 400
    Xc, yc = click_frame(4000, 0)
    Xt, yt = click_frame(2000, 1)

    def fit() -> tuple[LambdaRank, LightGBMClick]:
        rank = LambdaRank(n_estimators=40, num_leaves=15, min_child_samples=20)
        click = LightGBMClick(n_estimators=300, num_leaves=15, num_threads=1)
        return rank.fit(X[train], y[train], group[train]), click.fit(Xc, yc)

    rank_one, click_one = fit()
    assert not [r for r in caplog.records if "Ray actors in" in r.getMessage()]
    with ray_engine.data_parallel():
        rank_two, click_two = fit()
    on_ray = [r.getMessage() for r in caplog.records if "Ray actors in" in r.getMessage()]
    assert len(on_ray) == 2 and all("on 2 Ray actors" in m for m in on_ray)
    machines = [r.getMessage() for r in caplog.records if "Ray actors (" in r.getMessage()]
    assert machines and all(m.count("127.0.0.1:") == 2 for m in machines)  # the loopback node

    def ndcg(model: LambdaRank) -> float:
        s, out = model.score(X[test]), []
        for k in np.unique(group[test]):
            rows = group[test] == k
            if y[test][rows].max() > 0:
                out.append(ndcg_score([y[test][rows]], [s[rows]], k=10))
        return float(np.mean(out))

    assert ndcg(rank_one) > 0.6
    assert abs(ndcg(rank_two) - ndcg(rank_one)) < NDCG_TOLERANCE
    auc_one = roc_auc_score(yt, click_one.predict_proba(Xt)[:, 1])
    auc_two = roc_auc_score(yt, click_two.predict_proba(Xt)[:, 1])
    assert auc_one > 0.7
    assert abs(auc_two - auc_one) < AUC_TOLERANCE
    assert 0 < click_two.best_iteration_ < 300  # early stopping ran on the actors


@pytest.mark.slow  # starts LightGBM's actors
def test_a_fit_leaves_no_actor_holding_cpus(
    ray_engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Between fits the block holds no CPU: a later Ray Train fit (or any task) in the same
    ``data_parallel()`` block must find the instance's CPUs free, or it waits for ever."""
    import time

    import ray

    from mlsd.engine_lightgbm import fit_booster

    ray_engine.start()
    g = np.random.default_rng(3)
    X = g.normal(size=(600, 3))
    y = (X[:, 0] + g.normal(size=600) > 0).astype(int)
    monkeypatch.setattr(engine_lightgbm, "DATA_PARALLEL_MIN_ROWS", 100)
    with ray_engine.data_parallel():
        fit_booster({**PARAMS, "objective": "binary"}, X, y, 5)
        total = ray.cluster_resources()["CPU"]
        deadline = time.monotonic() + 30
        while ray.available_resources().get("CPU", 0) < total and time.monotonic() < deadline:
            time.sleep(0.2)
        assert ray.available_resources().get("CPU", 0) == total
