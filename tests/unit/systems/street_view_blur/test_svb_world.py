"""The street world: deterministic by seed, boxes inside the images, drift with the day."""

from __future__ import annotations

import numpy as np
import pytest

from mlsd.systems.street_view_blur.world import StreetConfig, StreetWorld
from mlsd.world import Scale

CFG = StreetConfig.for_scale(Scale.TINY).with_(n_train=24, monitor_days=4)


@pytest.fixture(scope="module")
def train() -> object:
    return StreetWorld(Scale.TINY, 0, CFG).labelled("train")


def test_same_seed_same_images_other_seed_other_images(train: object) -> None:
    again = StreetWorld(Scale.TINY, 0, CFG).labelled("train")
    other = StreetWorld(Scale.TINY, 1, CFG).labelled("train")
    assert np.array_equal(train.images, again.images)  # type: ignore[attr-defined]
    assert train.boxes.equals(again.boxes)  # type: ignore[attr-defined]
    assert not np.array_equal(train.images, other.images)  # type: ignore[attr-defined]


def test_boxes_are_inside_the_images_and_both_classes_appear(train: object) -> None:
    b = train.boxes  # type: ignore[attr-defined]
    assert set(b["label"]) == {0, 1}
    assert (b["x"] >= 0).all() and (b["y"] >= 0).all()
    assert (b["x"] + b["w"] <= CFG.width).all() and (b["y"] + b["h"] <= CFG.height).all()
    assert (b["w"] >= 2).all() and (b["h"] >= 2).all()
    assert b["occluded"].between(0, 0.8).all()
    assert train.images.shape == (24, CFG.height, CFG.width, 3)  # type: ignore[attr-defined]


def test_the_fleet_drifts_darker_and_blurrier_after_training() -> None:
    w = StreetWorld(Scale.TINY, 0, CFG)
    early = w.day_images("probe", 0, 40).meta
    late = w.day_images("probe", 4, 40).meta
    assert late["night"].mean() > early["night"].mean()
    assert late["blur"].mean() > early["blur"].mean()


def test_reports_grow_with_what_is_left_visible() -> None:
    w = StreetWorld(Scale.TINY, 0, CFG)
    ids = np.arange(2000)
    none = w.reports(np.zeros(2000), ids, "a")
    many = w.reports(np.full(2000, 3.0), ids, "b")
    assert none.sum() == 0 and many.mean() > 0.3
