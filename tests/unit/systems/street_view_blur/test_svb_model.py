"""The detectors: NMS, decoding, counted compute, training that learns, Haar without training."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mlsd.systems.street_view_blur.model import conv_macs
from mlsd.systems.street_view_blur.model_centernet import CenterNetDetector
from mlsd.systems.street_view_blur.model_haar import HaarCascades
from mlsd.systems.street_view_blur.model_nms import DETECTION_COLUMNS, nms_frame
from mlsd.systems.street_view_blur.world import StreetConfig, StreetWorld
from mlsd.world import Scale


def test_nms_keeps_the_best_of_overlapping_boxes_per_class() -> None:
    frame = pd.DataFrame(
        [
            (0, 0, 10.0, 10.0, 10.0, 10.0, 0.9),
            (0, 0, 11.0, 10.0, 10.0, 10.0, 0.8),  # overlaps the first: dropped
            (0, 1, 11.0, 10.0, 10.0, 10.0, 0.7),  # other class: kept
            (0, 0, 40.0, 40.0, 5.0, 5.0, 0.3),  # far away: kept
            (1, 0, 11.0, 10.0, 10.0, 10.0, 0.5),  # other image: kept
        ],
        columns=list(DETECTION_COLUMNS),
    )
    out = nms_frame(frame)
    assert list(out["score"]) == [0.9, 0.7, 0.3, 0.5]


@pytest.fixture(scope="module")
def tiny() -> tuple[object, object]:
    cfg = StreetConfig.for_scale(Scale.TINY).with_(n_train=8, n_val=8)
    w = StreetWorld(Scale.TINY, 0, cfg)
    return w.labelled("train"), w.labelled("val")


def _centre_contrast(model: CenterNetDetector, data: object) -> float:
    """Mean heatmap at the true centres (their class) over the mean heatmap elsewhere."""
    heat = model.raw(data.images)  # type: ignore[attr-defined]
    b = data.boxes  # type: ignore[attr-defined]
    iy = ((b["y"] + b["h"] / 2) // 4).astype(int).clip(0, heat.shape[2] - 1)
    ix = ((b["x"] + b["w"] / 2) // 4).astype(int).clip(0, heat.shape[3] - 1)
    at = heat[b["image"], b["label"], iy, ix]
    return float(at.mean() / heat.mean())


def test_centernet_learns_where_faces_and_plates_are(tiny: tuple) -> None:
    train, _ = tiny
    few = train.subset(np.arange(8))  # it must at least fit eight images
    kw = {"width": 8, "input_width": 128, "input_height": 96, "batch_size": 4}
    model = CenterNetDetector(epochs=20, augment=False, **kw).fit(few.images, few.boxes)
    untrained = CenterNetDetector(epochs=1, lr=1e-9, **kw).fit(few.images, few.boxes)
    assert model.train_loss_[-1] < model.train_loss_[0] / 2
    assert _centre_contrast(model, few) > 3.0 * _centre_contrast(untrained, few)
    det = model.detect(few.images)
    assert det["score"].between(0, 1).all() and (det.groupby("image").size() <= 50).all()


def test_half_resolution_counts_a_quarter_of_the_compute(tiny: tuple) -> None:
    train, _ = tiny
    full = CenterNetDetector(width=4, input_width=128, input_height=96, epochs=1).fit(
        train.images[:4], train.boxes[train.boxes["image"] < 4]
    )
    half = CenterNetDetector(width=4, input_width=128, input_height=96, input_scale=0.5, epochs=1)
    half.fit(train.images[:4], train.boxes[train.boxes["image"] < 4])
    ratio = conv_macs(half) / conv_macs(full)
    assert 0.2 < ratio < 0.3
    det = half.detect(train.images[:4])  # boxes come back in the images' own pixels
    assert (det["x"] + det["w"] <= 128 * 1.5).all()


def test_haar_cascades_need_no_training_and_answer_in_image_pixels(tiny: tuple) -> None:
    _, val = tiny
    model = HaarCascades(upscale=2.0)
    assert model.fit() is model
    det = model.detect(val.images[:4])
    assert list(det.columns) == list(DETECTION_COLUMNS)
    assert det["score"].between(0, 1).all()
    assert (det["x"] >= 0).all() and (det["x"] + det["w"] <= 128 + 1).all()
