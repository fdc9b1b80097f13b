"""Serving measurements: the served ANN configurations and the request latency by stage."""

from __future__ import annotations

import numpy as np

from mlsd.systems.video_rec.model import FitReport
from mlsd.systems.video_rec.serving import ANN_PARAMS, Recommender
from mlsd.systems.video_rec.serving_latency import STAGES, ann_configs, request_latency
from mlsd.systems.video_rec.world import VideoRecWorld


def test_ann_configs_are_the_served_ones() -> None:
    configs = ann_configs(5000)
    assert set(configs) == set(ANN_PARAMS)
    assert configs["hnsw"].params == {"hnsw_m": 32, "ef_construction": 80, "ef_search": 64}
    assert configs["hnsw"].search_params == {"ef_search": 64}
    assert configs["ivf"].search_params == {"nprobe": 16} and configs["exact"].kind == "flat"
    assert configs["ivf"].label == "IVF128, nprobe=16"  # FAISS's cells for 5,000 videos


def test_request_latency_has_every_stage(
    fitted: tuple[VideoRecWorld, Recommender, FitReport],
) -> None:
    _, rec, _ = fitted
    lat = request_latency(rec, np.arange(5))
    assert set(lat) == set(STAGES) and all(lat[s]["n"] == 5 for s in STAGES)
    assert lat["total"]["p50"] >= lat["ranking"]["p50"] > 0
