"""Behaviour of the ad-click chapter's models: what each one can and cannot learn."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.metrics import roc_auc_score

from mlsd.models import ConstantRate, HistoricalCTR, LightGBMClick, NegativeDownsampled
from mlsd.systems.ad_click.model import (
    DCNv2,
    HashedLogisticRegression,
    _field_hash,
    candidate_models,
)

torch.set_num_threads(1)


def xor_frame(n: int, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    """Clicks depend only on parity(a) XOR parity(b): each field alone carries no signal."""
    rng = np.random.default_rng(seed)
    vocab = np.random.default_rng(11)
    ids_a, ids_b = vocab.integers(0, 2**20, 8), vocab.integers(0, 2**20, 8)
    a, b = rng.integers(0, 8, n), rng.integers(0, 8, n)
    p = np.where((a % 2) ^ (b % 2), 0.9, 0.1)
    y = (rng.random(n) < p).astype(np.int64)
    return pd.DataFrame({"c_a": ids_a[a], "c_b": ids_b[b]}), y


def test_cross_network_captures_a_pure_interaction_that_logistic_regression_cannot() -> None:
    X, y = xor_frame(3000, seed=0)
    X_test, y_test = xor_frame(1000, seed=1)
    settings = {
        "embedding_dim": 4,
        "deep_layers": (),
        "field_buckets": 2**10,
        "epochs": 15,
        "batch_size": 128,
        "lr": 1e-2,
        "num_threads": 1,
        "patience": 15,
    }
    cross_only = DCNv2(n_cross_layers=1, **settings).fit(X, y)  # type: ignore[arg-type]
    embeddings_only = DCNv2(n_cross_layers=0, **settings).fit(X, y)  # type: ignore[arg-type]
    linear = HashedLogisticRegression(n_bits=10).fit(X, y)

    def auc(model: DCNv2 | HashedLogisticRegression) -> float:
        return float(roc_auc_score(y_test, model.predict_proba(X_test)[:, 1]))

    assert auc(cross_only) > 0.8  # the oracle AUC here is 0.9
    assert auc(embeddings_only) < 0.6  # embeddings + a linear head are still additive
    assert auc(linear) < 0.6


def test_dcn_predicts_the_same_in_one_batch_or_row_by_row_and_records_history() -> None:
    X, y = xor_frame(400, seed=2)
    model = DCNv2(embedding_dim=4, deep_layers=(8,), epochs=2, batch_size=64, num_threads=1)
    model.fit(X.assign(d_x=np.linspace(-1, 1, 400)), y)
    X_new = X.iloc[:20].assign(d_x=np.nan)  # a missing dense value is imputed, not propagated
    whole = model.predict_proba(X_new)
    rows = np.vstack([model.predict_proba(X_new.iloc[[i]]) for i in range(20)])
    np.testing.assert_allclose(whole, rows, rtol=1e-5)
    assert np.isfinite(whole).all()
    assert 1 <= model.history_.epochs_run <= 2
    assert len(model.history_.val_loss) == model.history_.epochs_run
    with pytest.raises(ValueError, match="c_b"):
        model.predict_proba(X_new.drop(columns=["c_b"]))


def test_dcn_leaves_torchs_global_rng_alone_and_is_seeded_by_its_own_streams() -> None:
    X, y = xor_frame(300, seed=4)

    def fit(seed: int) -> np.ndarray:
        model = DCNv2(embedding_dim=4, deep_layers=(8,), epochs=1, num_threads=1, random_state=seed)
        return model.fit(X, y).predict_proba(X)

    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    first = fit(0)
    assert torch.equal(torch.rand(3), expected)  # fitting drew nothing from the global RNG
    torch.manual_seed(999)  # a different global state changes nothing either
    np.testing.assert_array_equal(fit(0), first)
    assert not np.array_equal(fit(1), first)


def test_lightgbm_keeps_the_frequent_values_of_high_cardinality_columns() -> None:
    """Low-cardinality columns are native categoricals; a high-cardinality one keeps its most
    frequent values (and they carry its signal); one with no frequent value is dropped."""
    rng = np.random.default_rng(3)
    n = 3000
    low = rng.integers(0, 4, n)
    weights = np.where(np.arange(40) == 7, 5.0, 1.0)
    ids = rng.choice(40, size=n, p=weights / weights.sum())  # id 7: frequent, and clicks a lot
    X = pd.DataFrame(
        {
            "d_x": rng.normal(size=n),
            "c_low": (low * 1000 + 17).astype(np.int64),
            "c_id": ids * 7919,
            "c_unique": rng.integers(0, 2**40, n),  # every value once: nothing to learn
        }
    )
    p_true = np.where(low == 2, 0.6, 0.15) + np.where(ids == 7, 0.3, 0.0)
    y = (rng.random(n) < p_true).astype(np.int64)
    model = LightGBMClick(n_estimators=60, max_cat_cardinality=10, num_threads=1).fit(X, y)
    assert model.dropped_ == ["c_unique"] and model.capped_ == ["c_id", "c_unique"]
    assert model.feature_names_ == ["d_x", "c_low", "c_id"]
    assert len(model.categories_["c_id"]) == 10 and 7 * 7919 in model.categories_["c_id"]
    # an unseen category is treated as missing, not as some other category
    unseen = X.iloc[:5].assign(c_low=np.int64(999_999))
    p = model.predict_proba(unseen)[:, 1]
    assert np.isfinite(p).all()
    seen = model.predict_proba(X[X["c_low"] == 2017].iloc[:5])[:, 1]
    assert seen.mean() > 0.5 > p.mean()
    # the kept id carries its own click rate
    base = X[(low != 2) & (ids != 7)].iloc[:50]
    lifted = base.assign(c_id=np.int64(7 * 7919))
    gain = model.predict_proba(lifted)[:, 1].mean() - model.predict_proba(base)[:, 1].mean()
    assert gain > 0.1


def test_field_hash_separates_fields_and_stays_in_range() -> None:
    values = np.arange(1000, dtype=np.int64)
    h0, h1 = _field_hash(values, 0, 12), _field_hash(values, 1, 12)
    assert h0.min() >= 0 and h0.max() < 2**12
    assert (h0 != h1).mean() > 0.99
    np.testing.assert_array_equal(h0, _field_hash(values, 0, 12))


def test_historical_ctr_smooths_towards_the_global_rate_and_falls_back_on_its_key() -> None:
    X = pd.DataFrame({"c_ad_id": np.array([1, 1, 1, 1, 2, 2], dtype=np.int64)})
    y = np.array([1, 1, 0, 0, 0, 0])
    model = HistoricalCTR(prior_strength=2.0).fit(X, y)
    rate = 2 / 6
    new = pd.DataFrame({"c_ad_id": np.array([1, 2, 3], dtype=np.int64)})
    np.testing.assert_allclose(
        model.predict_proba(new)[:, 1], [(2 + 2 * rate) / 6, (0 + 2 * rate) / 4, rate]
    )
    other = pd.DataFrame({"c_small": [0, 0, 1, 1, 0, 1], "c_big": [0, 1, 2, 3, 4, 5]})
    assert HistoricalCTR().fit(other, y).key_ == "c_big"
    with pytest.raises(ValueError, match="no c_"):
        HistoricalCTR().fit(pd.DataFrame({"d_x": np.zeros(6)}), y)


def test_negative_downsampling_recalibrates_to_the_true_rate() -> None:
    rng = np.random.default_rng(4)
    y = (rng.random(20_000) < 0.05).astype(np.int64)
    X = pd.DataFrame({"d_x": np.zeros(len(y))})
    model = NegativeDownsampled(ConstantRate(), rate=0.1, random_state=0).fit(X, y)
    raw = model.predict_proba_uncorrected(X.iloc[:1])[0, 1]
    corrected = model.predict_proba(X.iloc[:1])[0, 1]
    assert raw > 0.25  # trained on about one negative in ten: badly over-predicts
    assert corrected == pytest.approx(y.mean(), rel=0.1)
    assert model.n_kept_ < 0.2 * len(y)


def test_candidate_models_are_the_chapter_line_up() -> None:
    models = candidate_models(random_state=5)
    assert list(models) == [
        *("historical_ctr", "logistic_regression", "lightgbm", "fm", "deepfm", "dcn_v2")
    ]
    for name, model in models.items():
        if name != "historical_ctr":
            assert model.get_params()["random_state"] == 5
