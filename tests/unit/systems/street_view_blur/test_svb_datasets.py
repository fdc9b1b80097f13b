"""Real data layouts: COCO JSON and per-image box files, mapped to face / plate."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from mlsd.systems.street_view_blur.datasets import (
    MIN_SPLIT,
    read_boxes,
    read_coco,
    read_files,
    write_boxes,
    write_coco,
)
from mlsd.systems.street_view_blur.world import ImageSet, StreetConfig, StreetWorld
from mlsd.world import Scale

CFG = StreetConfig.for_scale(Scale.TINY).with_(n_train=6)


@pytest.fixture(scope="module")
def scenes() -> ImageSet:
    return StreetWorld(Scale.TINY, 0, CFG).labelled("train")


def test_coco_round_trip_keeps_boxes_and_maps_class_names(tmp_path: Path, scenes: ImageSet) -> None:
    path = write_coco(scenes, tmp_path)
    doc = json.loads(path.read_text())
    doc["categories"].append({"id": 9, "name": "dog"})
    doc["annotations"].append({"id": 999, "image_id": 1, "category_id": 9, "bbox": [1, 1, 5, 5]})
    path.write_text(json.dumps(doc))
    data, dropped = read_coco(path, CFG.width, CFG.height)
    assert dropped == 1 and len(data) == len(scenes)
    np.testing.assert_allclose(
        data.boxes[["x", "y", "w", "h"]].to_numpy(), scenes.boxes[["x", "y", "w", "h"]].to_numpy()
    )
    assert list(data.boxes["label"]) == list(scenes.boxes["label"])


def test_boxes_layout_reads_text_labels_as_plates_and_empty_files_as_negatives(
    tmp_path: Path, scenes: ImageSet
) -> None:
    write_boxes(scenes, tmp_path)
    (tmp_path / "000000.txt").write_text("")  # an image with nothing to blur
    data, _ = read_boxes(tmp_path, CFG.width, CFG.height)
    assert len(data) == len(scenes) and (data.boxes["image"] != 0).all()
    kept = scenes.boxes[scenes.boxes["image"] != 0]
    assert list(data.boxes["label"]) == list(kept["label"])


def test_images_are_resized_to_the_input_size_with_their_boxes(tmp_path: Path) -> None:
    big = StreetWorld(Scale.TINY, 0, CFG.with_(width=256, height=192)).labelled("train")
    data, _ = read_coco(write_coco(big, tmp_path), CFG.width, CFG.height)
    assert data.images.shape[1:3] == (CFG.height, CFG.width)
    np.testing.assert_allclose(data.boxes["w"].to_numpy(), big.boxes["w"].to_numpy() / 2)


def test_few_files_are_test_only_and_many_are_split(tmp_path: Path) -> None:
    world = StreetWorld(Scale.TINY, 0, CFG)
    few = read_files(f"coco:{write_coco(world.labelled('train'), tmp_path / 'few')}", world)
    assert few.mode == "world-trained" and len(few.test) == CFG.n_train
    many_cfg = CFG.with_(n_train=MIN_SPLIT)
    many_set = StreetWorld(Scale.TINY, 1, many_cfg).labelled("train")
    many = read_files(f"boxes:{write_boxes(many_set, tmp_path / 'many')}", world)
    assert many.mode == "split"
    assert len(many.train) + len(many.val) + len(many.test) == MIN_SPLIT
    assert len(many.test) == MIN_SPLIT // 5
