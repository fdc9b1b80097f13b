"""Real image files as public sets ship them: the digits benchmark's IDX and .pgm/.png writers
read back exactly by the system's readers, 8×8 images with 17 grey levels, and 16-bit grey
(PNG, TIFF, PGM with ``maxval`` above 255) scaled to 8 bits instead of clipped to white."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from benchmarks.bench_visual_digits import (
    DIGIT_LEVELS,
    digits,
    stratified_split,
    to_bytes,
    write_digits_folder,
    write_digits_idx,
    write_pgm,
)
from PIL import Image

from mlsd.data import DataError
from mlsd.systems.visual_search.datasets import read_dataset
from mlsd.systems.visual_search.features import decode_image


@pytest.fixture(scope="module")
def forty_digits() -> tuple[np.ndarray, np.ndarray]:
    """40 UCI digits, the first 4 of each class, in the set's order: levels 0..16, labels."""
    levels, labels = digits()
    assert levels.shape[1:] == (8, 8) and levels.max() == DIGIT_LEVELS
    keep = np.sort(np.concatenate([np.flatnonzero(labels == c)[:4] for c in range(10)]))
    return levels[keep], labels[keep]


def test_digit_levels_scale_to_seventeen_distinct_bytes() -> None:
    out = to_bytes(np.arange(DIGIT_LEVELS + 1, dtype=np.uint8))
    assert out[0] == 0 and out[-1] == 255 and len(np.unique(out)) == DIGIT_LEVELS + 1
    assert out[8] == 128  # 127.5 rounds half up, as Pillow scales a PGM of maxval 16


def test_stratified_split_is_seeded_and_takes_every_class(
    forty_digits: tuple[np.ndarray, np.ndarray],
) -> None:
    _, labels = forty_digits
    test = stratified_split(labels, seed=0)
    assert np.bincount(labels[test], minlength=10).tolist() == [1] * 10
    assert np.array_equal(test, stratified_split(labels, seed=0))
    assert not np.array_equal(test, stratified_split(labels, seed=1))


def test_idx_writer_reads_back_exactly(
    tmp_path: Path, forty_digits: tuple[np.ndarray, np.ndarray]
) -> None:
    levels, labels = forty_digits
    root = write_digits_idx(tmp_path / "idx", levels, labels, seed=0)
    names = sorted(p.name for p in root.iterdir())
    assert names == [
        "t10k-images-idx3-ubyte.gz",
        "t10k-labels-idx1-ubyte.gz",
        "train-images-idx3-ubyte",
        "train-labels-idx1-ubyte",
    ]
    data = read_dataset(f"idx:{root}", image_size=8)  # plain train files first, then .gz
    test = stratified_split(labels, seed=0)
    order = np.concatenate([np.flatnonzero(~test), np.flatnonzero(test)])
    assert data.images.shape == (40, 8, 8, 3)
    assert np.array_equal(data.images, np.repeat(to_bytes(levels[order])[..., None], 3, axis=3))
    assert np.array_equal(data.labels, labels[order])
    assert data.class_names == [str(c) for c in range(10)] and data.source_size == "8×8"


def test_pgm_and_png_folder_writer_reads_back_exactly(
    tmp_path: Path, forty_digits: tuple[np.ndarray, np.ndarray]
) -> None:
    levels, labels = forty_digits
    root = write_digits_folder(tmp_path / "folder", levels, labels)
    suffixes = {p.suffix for p in root.rglob("*.*")}
    assert suffixes == {".pgm", ".png"}
    first_pgm = next(root.rglob("*.pgm")).read_bytes()
    assert first_pgm.startswith(b"P5\n8 8\n16\n") and len(first_pgm) == 10 + 64
    data = read_dataset(f"imagefolder:{root}", image_size=8)
    order = np.concatenate([np.flatnonzero(labels == c) for c in range(10)])  # class, then name
    assert np.array_equal(data.images[..., 0], to_bytes(levels[order]))
    assert np.array_equal(data.images[..., 0], data.images[..., 2])
    assert np.array_equal(data.labels, labels[order]) and data.source_size == "8×8"


def test_tiny_images_are_upsampled_to_the_model_size(
    tmp_path: Path, forty_digits: tuple[np.ndarray, np.ndarray]
) -> None:
    levels, labels = forty_digits
    root = write_digits_folder(tmp_path / "folder", levels, labels)
    data = read_dataset(f"imagefolder:{root}", image_size=32)
    assert data.images.shape == (40, 32, 32, 3)
    assert data.images.max() == 255 and data.images.min() == 0  # the full range survives
    assert data.source_size == "8×8"  # the files' own size, for the blueprint


def test_source_size_is_the_range_of_the_files_sizes(tmp_path: Path) -> None:
    for c, shapes in (("a", [(6, 9), (4, 5)]), ("b", [(30, 20), (4, 5)])):
        (tmp_path / c).mkdir()
        for i, shape in enumerate(shapes):
            (tmp_path / c / f"{i}.png").write_bytes(encoded(np.zeros(shape, np.uint8), "PNG"))
    data = read_dataset(f"imagefolder:{tmp_path}", image_size=4)
    assert data.source_size == "5×4 to 20×30"  # width × height, smallest to largest


def encoded(arr: np.ndarray, fmt: str) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format=fmt)
    return buf.getvalue()


WIDE = np.array([[0, 257, 32_896, 65_535]], dtype=np.uint16)  # 0, 1, 128, 255 in 8 bits


@pytest.mark.parametrize("fmt", ["PNG", "TIFF"])
def test_sixteen_bit_grey_is_scaled_not_clipped(fmt: str) -> None:
    out = decode_image(encoded(WIDE, fmt), size=4)
    assert out[0, :, 0].tolist() == [0, 1, 128, 255]  # Pillow's convert gives 0, 255, 255, 255


def test_sixteen_bit_pgm_is_scaled_by_its_maxval(tmp_path: Path) -> None:
    body = np.array([[0, 250, 500, 1000]], dtype=">u2").tobytes()
    out = decode_image(b"P5\n4 1\n1000\n" + body, size=4)
    assert out[0, :, 0].tolist() == [0, 64, 128, 255]
    ascii_pgm = decode_image(b"P2\n3 1\n16\n0 8 16\n", size=3)  # plain PGM, 17 levels
    assert ascii_pgm[0, :, 0].tolist() == [0, 128, 255]
    write_pgm(tmp_path / "x.pgm", np.array([[0, 3], [6, 9]], np.uint8), maxval=9)
    assert decode_image((tmp_path / "x.pgm").read_bytes(), size=2)[..., 0].tolist() == [
        [0, 85],
        [170, 255],
    ]


def test_floating_point_image_is_refused_naming_the_file(tmp_path: Path) -> None:
    for c in ("a", "b"):
        (tmp_path / c).mkdir()
        for i in range(2):
            (tmp_path / c / f"{i}.png").write_bytes(encoded(np.full((5, 5), 9, np.uint8), "PNG"))
    bad = tmp_path / "b" / "f.tif"
    bad.write_bytes(encoded(np.array([[0.0, 0.5], [1.0, 0.25]], np.float32), "TIFF"))
    with pytest.raises(DataError, match="floating-point") as err:
        read_dataset(f"imagefolder:{tmp_path}", image_size=4)
    assert str(bad) in str(err.value)
