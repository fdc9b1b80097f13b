"""Step 7 for visual search: the days' uploads, and monitoring that stays quiet on a world whose
uploads never change and alerts (then retrains) when a dim, soft camera takes over."""

from __future__ import annotations

import numpy as np
import pytest

from mlsd.systems.visual_search.datasets_split import RetrievalSet, data_from_world
from mlsd.systems.visual_search.model import PixelPCAEncoder
from mlsd.systems.visual_search.monitoring import (
    Monitoring,
    clustered_se,
    compute_monitoring,
    image_stats,
)
from mlsd.systems.visual_search.world import VisualSearchWorld, VisualWorldConfig, low_light
from mlsd.world import Scale

CFG = VisualWorldConfig.for_scale(Scale.TINY).with_(
    n_train_products=40, n_eval_products=30, monitor_days=3, monitor_uploads=200
)


@pytest.fixture(scope="module")
def served() -> tuple[RetrievalSet, PixelPCAEncoder, np.ndarray]:
    rs = data_from_world(VisualSearchWorld(Scale.TINY, 0, CFG), 0).retrieval
    encoder = PixelPCAEncoder(n_components=16).fit(rs.train_images, rs.train_groups)
    catalogue = encoder.encode(np.concatenate(list(rs.index_source.chunks())))
    return rs, encoder, catalogue


def _monitor(
    served: tuple[RetrievalSet, PixelPCAEncoder, np.ndarray], **changes: float
) -> Monitoring:
    rs, encoder, catalogue = served
    world = VisualSearchWorld(Scale.TINY, 0, CFG.with_(**changes))  # same seed: same products
    return compute_monitoring(world, rs, "raw_pixels_pca", encoder, catalogue)


def test_uploads_are_seeded_and_the_new_camera_arrives_on_schedule() -> None:
    world = VisualSearchWorld(Scale.TINY, 0, CFG.with_(drift_start_day=2, drift_share_per_day=0.5))
    assert [world.config.low_light_share(d) for d in (0, 1, 2, 3, 4)] == [0, 0, 0.5, 1, 1]
    pids, photos, dim = world.uploads(2, 300)
    again = world.uploads(2, 300)
    assert np.array_equal(pids, again[0]) and np.array_equal(photos, again[1])
    assert set(pids.tolist()) <= set(world.product_ids("eval").tolist())
    assert 0.35 < dim.mean() < 0.65 and not world.uploads(1, 50)[2].any()
    stats = image_stats(photos)
    assert stats["brightness"][dim].mean() < 0.6 * stats["brightness"][~dim].mean()
    assert stats["sharpness"][dim].mean() < stats["sharpness"][~dim].mean()
    assert low_light(photos[0]).dtype == np.uint8
    with pytest.raises(ValueError, match="uploads per day"):
        world.uploads(1, 0)


def test_an_unchanging_world_raises_no_alert(
    served: tuple[RetrievalSet, PixelPCAEncoder, np.ndarray],
) -> None:
    result = _monitor(served, drift_share_per_day=0.0)
    d = result.daily
    assert d["day"].tolist() == [1.0, 2.0, 3.0] and (d["low_light_share"] == 0).all()
    assert result.alerts == [] and not result.retrain
    assert (d["psi_brightness"] < 0.25).all() and (d["psi_embedding"] > 0).all()
    assert result.baseline["uploads"] == 400 and 0 < result.baseline["map"] < 1
    m = result.metrics()["monitoring"]
    assert m["retrain"] is False and len(m["days"]) == 3 and m["model"] == "raw_pixels_pca"


def test_a_dim_camera_drifts_inputs_embeddings_and_quality_and_retrains(
    served: tuple[RetrievalSet, PixelPCAEncoder, np.ndarray],
) -> None:
    result = _monitor(served, drift_start_day=1, drift_share_per_day=0.5)
    d = result.daily
    assert d["low_light_share"].iloc[-1] == 1.0
    subjects = {(a.kind, a.subject) for a in result.alerts}
    assert ("feature_drift", "brightness") in subjects
    assert ("feature_drift", "embedding") in subjects
    assert ("prediction_drift", "prediction") in subjects
    assert ("metric_decay", "map") in subjects
    assert d["map"].iloc[-1] < 0.9 * result.baseline["map"]
    assert result.retrain and result.reason.startswith("retrain:")


def test_clustered_standard_error_grows_with_correlated_clusters() -> None:
    gen = np.random.default_rng(0)
    clusters = np.repeat(np.arange(20), 10)
    independent = gen.normal(size=200)
    correlated = np.repeat(gen.normal(size=20), 10)  # every value of a cluster the same
    naive = independent.std(ddof=1) / np.sqrt(200)
    assert clustered_se(independent, clusters) == pytest.approx(naive, rel=0.4)
    assert clustered_se(correlated, clusters) > 2 * correlated.std(ddof=1) / np.sqrt(200)
