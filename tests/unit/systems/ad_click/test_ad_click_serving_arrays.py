"""Serving by arrays: the gathered feature blocks and every model's kernel give what the frame
path gives, on the same requests; errors and fall-backs stay as they were."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
from prometheus_client import CollectorRegistry, Histogram, generate_latest

from mlsd.api.metrics import PROBABILITY_BUCKETS, ServingMetrics
from mlsd.api.routes.ad_click import ScoreResponse, score_json
from mlsd.features import combine_cross, cross_left, cross_right, hash_cross
from mlsd.models import ClickEstimator, NegativeDownsampled
from mlsd.stores import FrameStore
from mlsd.systems.ad_click import serving_arrays
from mlsd.systems.ad_click.features import (
    CATEGORICAL_FEATURES,
    DENSE_FEATURES,
    UnknownIdError,
)
from mlsd.systems.ad_click.model import NEGATIVE_RATE, HashedLogisticRegression
from mlsd.systems.ad_click.model_dcn import DCNv2
from mlsd.systems.ad_click.model_fm import FM, DeepFM
from mlsd.systems.ad_click.serving import AdClickScorer, CandidateError
from mlsd.systems.ad_click.serving_arrays import ArraysUnavailableError, OnlineArrays
from mlsd.systems.ad_click.serving_kernels import AGREEMENT, choose_runtime

SEED = 0
DEEP: dict[str, Any] = {"embedding_dim": 4, "field_buckets": 2**10, "epochs": 1, "batch_size": 256}


@pytest.fixture(scope="module")
def line_up(tiny_run: Any) -> dict[str, ClickEstimator]:
    """Every model of the chapter, small, on a slice of the training rows: the conftest's
    baseline and LightGBM, and logistic regression, FM, DeepFM and DCN-v2 (downsampled)."""
    train = tiny_run.data.split["train"][:4000]
    X, y = tiny_run.data.X.iloc[train].reset_index(drop=True), tiny_run.data.y[train]
    learners: dict[str, ClickEstimator] = {
        "logistic_regression": HashedLogisticRegression(n_bits=12, random_state=SEED),
        "fm": FM(num_threads=1, random_state=SEED, **DEEP),
        "deepfm": DeepFM(deep_layers=(8,), num_threads=1, random_state=SEED, **DEEP),
        "dcn_v2": DCNv2(deep_layers=(8,), num_threads=1, random_state=SEED, **DEEP),
    }
    fitted = {
        name: NegativeDownsampled(m, rate=NEGATIVE_RATE, random_state=SEED).fit(X, y)
        for name, m in learners.items()
    }
    return dict(tiny_run.trained.models) | fitted


@pytest.fixture(scope="module")
def store(tiny_run: Any) -> FrameStore:
    return FrameStore(tiny_run.data.tables)


def requests(tiny_run: Any, n: int, k: int = 40) -> list[tuple[int, int, str, list[int]]]:
    draw = np.random.default_rng(7)
    users = tiny_run.data.tables["user"]["key"].astype(np.int64).to_numpy()
    ads = tiny_run.data.tables["ad"]["key"].astype(np.int64).to_numpy()
    devices = ["ios", "android", "web", "tv"]  # "tv": a device no training row had
    return [
        (
            int(draw.choice(users)),
            int(draw.integers(24)),
            str(draw.choice(devices)),
            draw.choice(ads, size=min(k, len(ads)), replace=False).tolist(),
        )
        for _ in range(n)
    ]


def frame_of(req: tuple[int, int, str, list[int]]) -> pd.DataFrame:
    user, hour, device, ads = req
    return pd.DataFrame({"user_id": user, "hour": hour, "device": device, "ad_id": ads})


def test_cross_parts_combine_to_the_cross_hash() -> None:
    a = np.array(["de", "fr", "de", "us"], dtype=object)
    b = np.array([3, 3, 7, 11])
    want = hash_cross("country", a, "category", b)
    got = combine_cross(cross_left("country", a), cross_right("country", "category", b))
    assert np.array_equal(got, want)
    # broadcast: one left value against many right values
    one = combine_cross(cross_left("country", a[:1]), cross_right("country", "category", b))
    assert np.array_equal(one, hash_cross("country", np.repeat(a[:1], 4), "category", b))


def test_gathered_blocks_equal_the_feature_frame(tiny_run: Any, store: FrameStore) -> None:
    scorer = AdClickScorer(next(iter(tiny_run.trained.models.values())), store, "m")
    arrays = scorer.arrays()
    assert arrays is not None
    for req in requests(tiny_run, 15):
        X = scorer.features(frame_of(req))
        dense, cat, bids = arrays.gather(req[0], req[1], req[2], np.asarray(req[3]))
        assert dense.shape == (len(req[3]), len(DENSE_FEATURES)) and dense.flags.c_contiguous
        np.testing.assert_allclose(dense, X[list(DENSE_FEATURES)].to_numpy(), rtol=0, atol=1e-12)
        assert np.array_equal(cat, X[list(CATEGORICAL_FEATURES)].to_numpy())
        ads = tiny_run.data.tables["ad"].set_index("key")["bid"]
        assert np.allclose(bids, ads.loc[[str(a) for a in req[3]]].to_numpy())


def test_every_model_scores_as_on_the_frame_path(
    tiny_run: Any, store: FrameStore, line_up: dict[str, ClickEstimator]
) -> None:
    reqs = requests(tiny_run, 8)
    for name, model in line_up.items():
        scorer = AdClickScorer(model, store, name)
        assert scorer.kernel.runtime != "frame", name  # every model of the line-up has a kernel
        for req in reqs:
            want = model.predict_proba(scorer.features(frame_of(req)))[:, 1]
            result = scorer.score(*req)
            got = pd.Series(result.p_click, index=result.ad_ids).loc[req[3]].to_numpy()
            np.testing.assert_allclose(got, want, rtol=0, atol=AGREEMENT, err_msg=name)
            value = result.p_click * result.bids
            assert np.array_equal(result.expected_value, value)
            assert (np.diff(value) <= 0).all(), name  # ranked by expected value
            assert [a.ad_id for a in result.ads] == result.ad_ids.tolist()
        top = scorer.score(*reqs[0], k=3)
        assert top.ad_ids.tolist() == scorer.score(*reqs[0]).ad_ids[:3].tolist()


def test_onnxruntime_serves_only_agreeing_scores(
    tiny_run: Any, store: FrameStore, line_up: dict[str, ClickEstimator]
) -> None:
    pytest.importorskip("onnxruntime")
    model = line_up["dcn_v2"]
    scorer = AdClickScorer(model, store, "dcn_v2")
    arrays = scorer.arrays()
    assert arrays is not None and scorer.kernel.runtime == "torch"
    probe = arrays.probe(50)
    chosen = choose_runtime(model, scorer.kernel, probe)
    assert chosen.runtime in {"torch", "onnxruntime"}
    np.testing.assert_allclose(chosen(*probe), scorer.kernel(*probe), rtol=0, atol=AGREEMENT)
    # a model with no deep network keeps its kernel, unmeasured
    lgbm = AdClickScorer(line_up["lightgbm"], store, "lightgbm")
    assert choose_runtime(lgbm.model, lgbm.kernel, probe) is lgbm.kernel


def test_bad_requests_fail_as_before(tiny_run: Any, store: FrameStore) -> None:
    scorer = AdClickScorer(tiny_run.trained.models["lightgbm"], store, "lightgbm")
    user, hour, device, ads = requests(tiny_run, 1)[0]
    with pytest.raises(UnknownIdError) as unknown_user:
        scorer.score(10**9, hour, device, [10**9 + 1])  # both unknown: the user is named
    assert unknown_user.value.kind == "user" and unknown_user.value.ids == [10**9]
    with pytest.raises(UnknownIdError) as unknown_ads:
        scorer.score(user, hour, device, [*ads[:2], 10**9 + 2, 10**9 + 1])
    assert unknown_ads.value.kind == "ad" and unknown_ads.value.ids == [10**9 + 1, 10**9 + 2]
    with pytest.raises(CandidateError, match="duplicate ad ids"):
        scorer.score(user, hour, device, [ads[0], ads[1], ads[0]])
    with pytest.raises(CandidateError, match="at least one"):
        scorer.score(user, hour, device, [])


def test_replaced_or_missing_tables(tiny_run: Any) -> None:
    tables = dict(tiny_run.data.tables)
    store = FrameStore(tables)
    scorer = AdClickScorer(tiny_run.trained.models["lightgbm"], store, "lightgbm")
    req = requests(tiny_run, 1)[0]
    before = scorer.score(*req).p_click
    first = scorer.arrays()
    users = tables["user"].copy()
    users["imps"] = users["imps"] * 0 + 500  # new counts: the arrays must follow them
    store.put_frame("user", users)
    assert scorer.arrays() is not first
    X = scorer.features(frame_of(req))
    after = scorer.score(*req)
    want = scorer.model.predict_proba(X)[:, 1]
    got = pd.Series(after.p_click, index=after.ad_ids).loc[req[3]].to_numpy()
    np.testing.assert_allclose(got, want, rtol=0, atol=AGREEMENT)
    assert not np.allclose(np.sort(after.p_click), np.sort(before))
    # tables the arrays cannot serve (a namespace missing) keep the frame path
    partial = FrameStore({ns: f for ns, f in tables.items() if ns != "user_ad"})
    fallback = AdClickScorer(tiny_run.trained.models["lightgbm"], partial, "lightgbm")
    assert fallback.arrays() is None
    assert len(fallback.score(*req).ad_ids) == len(req[3])


def test_the_http_body_is_the_response_model(tiny_run: Any, store: FrameStore) -> None:
    scorer = AdClickScorer(tiny_run.trained.models["lightgbm"], store, "lightgbm")
    result = scorer.score(*requests(tiny_run, 1)[0], k=5)
    body = ScoreResponse.model_validate_json(score_json(result))
    assert [a.ad_id for a in body.ads] == result.ad_ids.tolist()
    assert [a.p_click for a in body.ads] == result.p_click.tolist()
    assert body.model == "lightgbm" and body.degraded is False and body.degraded_reason is None
    assert set(body.timings_ms) == {"features", "model", "total"}


def test_predictions_are_observed_as_one_observe_per_value() -> None:
    values = np.array([0.0, 1e-7, 0.01, 0.05, 0.05, 0.3, 0.999, 1.0, np.nan])
    metrics = ServingMetrics()
    metrics.observe_predictions("ad-click", values)
    registry = CollectorRegistry()
    hist = Histogram(
        "mlsd_predictions", "x", ["system"], buckets=PROBABILITY_BUCKETS, registry=registry
    )
    for v in values:
        hist.labels(system="ad-click").observe(float(v))

    def series(text: bytes) -> list[str]:
        return [ln for ln in text.decode().splitlines() if ln.startswith("mlsd_predictions_")]

    got, want = series(metrics.render()), series(generate_latest(registry))
    assert [ln for ln in got if "_created" not in ln] == [ln for ln in want if "_created" not in ln]


def test_a_feature_column_without_a_gather_keeps_the_frame_path(
    tiny_run: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A column added to the feature pipeline but not to the gathers must not be served
    uninitialised: the arrays refuse the tables and the scorer keeps the frame path."""
    tables = tiny_run.data.tables
    assert OnlineArrays(tables).probe(3)[0].shape[0] == 3  # served before the new column
    monkeypatch.setitem(serving_arrays.CAT_INDEX, "c_new_field", len(serving_arrays.CAT_INDEX))
    with pytest.raises(ArraysUnavailableError, match="c_new_field"):
        OnlineArrays(tables)
    scorer = AdClickScorer(tiny_run.trained.models["lightgbm"], FrameStore(tables), "lightgbm")
    assert scorer.arrays() is None
