"""The run's split: world photos streamed in chunks, disjoint train / catalogue / queries."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mlsd.data import DataError
from mlsd.systems.visual_search.datasets_split import (
    ArrayImages,
    WorldPhotos,
    data_from_files,
    data_from_world,
)
from mlsd.systems.visual_search.world import QUERY_PHOTO_BASE, VisualSearchWorld, VisualWorldConfig
from mlsd.world import Scale

CFG = VisualWorldConfig.for_scale(Scale.TINY).with_(n_train_products=6, n_eval_products=5)


def write_folder(root: Path, n_per_class: int) -> Path:
    rng = np.random.default_rng(0)
    for c in ("cats", "dogs"):
        (root / c).mkdir(parents=True)
        for i in range(n_per_class):
            pixels = rng.integers(0, 255, size=(20, 24, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / c / f"{i}.png")
    return root


def test_world_photos_stream_equals_rendering_all_at_once() -> None:
    world = VisualSearchWorld(Scale.TINY, 3, CFG)
    pids, idx = world.catalog("eval")
    src = WorldPhotos(world, pids, idx)
    whole = world.photos(pids, idx)
    assert len(src) == len(pids)
    np.testing.assert_array_equal(np.concatenate(list(src.chunks(4))), whole)
    np.testing.assert_array_equal(src.take(np.array([7, 2])), whole[[7, 2]])


def test_array_images_chunks_and_take() -> None:
    x = np.arange(10 * 2 * 2 * 3, dtype=np.uint8).reshape(10, 2, 2, 3)
    src = ArrayImages(x)
    assert [len(c) for c in src.chunks(4)] == [4, 4, 2]
    np.testing.assert_array_equal(src.take(np.array([9, 0])), x[[9, 0]])


def test_world_split_keeps_training_products_out_of_the_catalogue() -> None:
    world = VisualSearchWorld(Scale.TINY, 0, CFG)
    result = data_from_world(world, seed=0)
    rs = result.retrieval
    assert not set(rs.train_groups.tolist()) & set(rs.index_groups.tolist())
    assert set(rs.query_groups.tolist()) <= set(rs.index_groups.tolist())
    assert len(rs.train_images) == 6 * CFG.photos_per_product
    assert rs.n_index == 5 * CFG.photos_per_product and len(rs.query_images) == 5 * 2
    # queries are fresh photos: none equals a catalogue photo of its product
    catalogue = np.concatenate(list(rs.index_source.chunks()))
    assert not any((catalogue == q).all(axis=(1, 2, 3)).any() for q in rs.query_images)
    m = result.metrics()["data"]
    assert m["source"] == "world" and m["index_images"] == rs.n_index
    assert CFG.photos_per_product < QUERY_PHOTO_BASE


def test_file_split_is_seeded_and_disjoint(tmp_path: Path) -> None:
    root = write_folder(tmp_path / "f", n_per_class=32)
    a = data_from_files(f"imagefolder:{root}", 16, seed=0, scale="tiny")
    b = data_from_files(f"imagefolder:{root}", 16, seed=0, scale="tiny")
    c = data_from_files(f"imagefolder:{root}", 16, seed=1, scale="tiny")
    m = a.metrics()["data"]
    assert m["train_images"] == 32 and m["query_images"] == 8 and m["index_images"] == 24
    assert a.class_names == ["cats", "dogs"] and a.world is None
    np.testing.assert_array_equal(a.retrieval.train_images, b.retrieval.train_images)
    assert not np.array_equal(a.retrieval.train_images, c.retrieval.train_images)


@pytest.mark.parametrize("per_class", [3, 20, 31])
def test_file_split_refuses_too_few_images_with_the_reason(tmp_path: Path, per_class: int) -> None:
    root = write_folder(tmp_path / "f", n_per_class=per_class)
    with pytest.raises(DataError, match=r"too few images to split: .* need at least 63") as err:
        data_from_files(f"imagefolder:{root}", 16, seed=0, scale="tiny")
    assert err.value.path == str(root)
