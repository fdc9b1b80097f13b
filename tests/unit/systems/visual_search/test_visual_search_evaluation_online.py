"""The simulated users of the online test, and the A/B test they feed."""

from __future__ import annotations

import numpy as np

from mlsd.systems.visual_search.datasets_split import data_from_world
from mlsd.systems.visual_search.evaluation_online import compute_online, simulate_sessions
from mlsd.systems.visual_search.model import CNNEncoder, PixelPCAEncoder
from mlsd.systems.visual_search.world import VisualSearchWorld, VisualWorldConfig
from mlsd.world import Scale


def test_sessions_click_relevant_results_with_position_bias() -> None:
    n, k = 4000, 10
    q = np.zeros(n, dtype=int)
    rng = np.random.default_rng(0)
    relevant_first = simulate_sessions(np.zeros((n, k), int), np.zeros((n, k), int), q, q, rng)
    groups = np.ones((n, k), int)
    groups[:, 7] = 0  # the product only at rank 8
    late = simulate_sessions(groups, np.ones((n, k), int), q, q, np.random.default_rng(0))
    assert relevant_first.clicked.mean() > 0.55 > late.clicked.mean()
    assert np.nanmean(relevant_first.first_click_s) < np.nanmean(late.first_click_s)
    assert np.isnan(late.first_click_s[~late.clicked]).all()
    assert (relevant_first.first_click_rank[relevant_first.clicked] >= 1).all()


def test_online_ab_test_reports_arms_tests_and_a_decision() -> None:
    cfg = VisualWorldConfig.for_scale(Scale.TINY).with_(
        n_train_products=8, n_eval_products=10, photos_per_product=3, n_sessions=400
    )
    world = VisualSearchWorld(Scale.TINY, 0, cfg)
    rs = data_from_world(world, 0).retrieval
    catalogue = np.concatenate(list(rs.index_source.chunks()))
    pix = PixelPCAEncoder(n_components=8).fit(rs.train_images, rs.train_groups)
    cnn = CNNEncoder(dim=8, width=4, train_steps=0).fit(rs.train_images, rs.train_groups)
    arms = {
        "control": ("raw_pixels_pca", pix, pix.encode(catalogue)),
        "treatment": ("untrained_cnn", cnn, cnn.encode(catalogue)),
    }
    result = compute_online(world, rs, arms, seed=0)
    on = result.metrics()["online"]
    assert on["sessions"] == 400
    assert on["control"]["model"] == "raw_pixels_pca"
    assert on["treatment"]["model"] == "untrained_cnn"
    assert on["control"]["sessions"] + on["treatment"]["sessions"] == 400
    assert on["primary_metric"] == "result_ctr"
    assert on["guardrails"] == ["time_to_first_click_s"]
    ctr = on["tests"]["result_ctr"]
    assert ctr["ci_low"] <= ctr["diff"] <= ctr["ci_high"]
    assert on["decision"] in {"ship", "don't ship", "inconclusive", "invalid (SRM)"}
    assert on["srm"]["n_control"] == on["control"]["sessions"]
    again = compute_online(world, rs, arms, seed=0).metrics()["online"]
    assert again["tests"] == on["tests"]  # seeded: the same sessions and clicks
