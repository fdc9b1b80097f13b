"""Offline evaluation: pycocotools' numbers, the privacy metrics and the privacy-first threshold."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mlsd.systems.street_view_blur.evaluation import (
    RECALL_TARGET,
    choose_thresholds,
    coverage,
    score_set,
)
from mlsd.systems.street_view_blur.model import frame_of
from mlsd.systems.street_view_blur.world import ImageSet, StreetConfig, StreetWorld
from mlsd.world import Scale


@pytest.fixture(scope="module")
def data() -> ImageSet:
    cfg = StreetConfig.for_scale(Scale.TINY).with_(n_val=20)
    return StreetWorld(Scale.TINY, 0, cfg).labelled("val")


def test_the_perfect_detector_scores_one_everywhere(data: ImageSet) -> None:
    s = score_set(data, frame_of(data), (0.5, 0.5))
    assert s.map50 == pytest.approx(1.0) and s.map == pytest.approx(1.0)
    assert s.recall == (1.0, 1.0) and s.precision == (1.0, 1.0)
    assert s.area_share == (1.0, 1.0)
    assert 0 < s.over_blur < s.blurred_share  # the margin only
    assert s.slices["all"]["objects"] == len(data.boxes)


def test_shifted_boxes_lose_iou_and_area(data: ImageSet) -> None:
    shifted = frame_of(data)
    shifted["x"] += shifted["w"] * 0.6  # IoU 0.25: no match at 0.5
    s = score_set(data, shifted, (0.5, 0.5))
    assert s.map50 < 0.1 and max(s.recall) < 0.1
    assert 0.3 < s.area_share[0] < 0.9  # part of each face is still covered
    assert s.over_blur > score_set(data, frame_of(data), (0.5, 0.5)).over_blur


def test_a_box_below_its_threshold_blurs_nothing(data: ImageSet) -> None:
    det = frame_of(data)
    det["score"] = np.where(det["label"] == 0, 0.3, 0.9)
    s = score_set(data, det, (0.5, 0.5))
    assert s.recall[0] == 0.0 and s.area_share[0] == 0.0 and s.recall[1] == 1.0
    assert s.map50 == pytest.approx(1.0)  # AP ranks; thresholds do not change it


def test_threshold_is_the_highest_reaching_the_recall_target(data: ImageSet) -> None:
    det = frame_of(data)
    r = np.random.default_rng(0)
    det["score"] = r.uniform(0.1, 1.0, len(det))
    (t_face, t_plate), met = choose_thresholds(data, det)
    assert met
    for label, t in ((0, t_face), (1, t_plate)):
        scores = det.loc[det["label"] == label, "score"].to_numpy()
        assert (scores >= t).mean() >= RECALL_TARGET
        assert (scores > t).mean() < RECALL_TARGET  # any higher loses the target


def test_coverage_is_the_hidden_share_of_each_box(data: ImageSet) -> None:
    one = data.boxes.iloc[[0]].reset_index(drop=True)
    sub = ImageSet(data.images, one, data.meta)
    half = frame_of(sub).assign(score=1.0)
    x, w = float(one["x"].iloc[0]), float(one["w"].iloc[0])
    half["w"] = w / 2 / 1.15  # the blur margin widens it back to about half
    half["x"] = x + 0.15 * (w / 2 / 1.15)
    cov = coverage(sub, half)
    assert 0.3 < cov[0] < 0.75
    assert coverage(sub, pd.DataFrame(columns=half.columns))[0] == 0.0
