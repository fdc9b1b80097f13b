"""Image folders and IDX files: loading, and errors that name the file and the field."""

from __future__ import annotations

import gzip
import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mlsd.data import DataError
from mlsd.systems.visual_search.datasets import read_dataset


def png(arr: np.ndarray, fmt: str = "PNG") -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format=fmt)
    return buf.getvalue()


def write_folder(root: Path, n_per_class: int = 3) -> Path:
    rng = np.random.default_rng(0)
    for c in ("cats", "dogs"):
        (root / c).mkdir(parents=True)
        for i in range(n_per_class):
            arr = rng.integers(0, 255, size=(20 + i, 24, 3), dtype=np.uint8)
            (root / c / f"{i}.{'png' if i % 2 else 'jpg'}").write_bytes(
                png(arr, "PNG" if i % 2 else "JPEG")
            )
    return root


def write_idx(root: Path, n: int = 12, gz: bool = True, labels_n: int | None = None) -> Path:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 255, size=(n, 28, 28), dtype=np.uint8)
    labels = (np.arange(labels_n if labels_n is not None else n) % 3).astype(np.uint8)
    img = b"\x00\x00\x08\x03" + b"".join(v.to_bytes(4, "big") for v in (n, 28, 28))
    lab = b"\x00\x00\x08\x01" + (len(labels)).to_bytes(4, "big")
    suffix = ".gz" if gz else ""
    opener = gzip.compress if gz else (lambda b: b)
    root.mkdir(parents=True, exist_ok=True)
    (root / f"train-images-idx3-ubyte{suffix}").write_bytes(opener(img + images.tobytes()))
    (root / f"train-labels-idx1-ubyte{suffix}").write_bytes(opener(lab + labels.tobytes()))
    return root


def test_imagefolder_loads_classes_and_resizes(tmp_path: Path) -> None:
    data = read_dataset(f"imagefolder:{write_folder(tmp_path / 'f')}", image_size=16)
    assert data.images.shape == (6, 16, 16, 3) and data.images.dtype == np.uint8
    assert data.class_names == ["cats", "dogs"]
    assert np.bincount(data.labels).tolist() == [3, 3]


@pytest.mark.parametrize(("suffix", "fmt"), [("pgm", "PPM"), ("ppm", "PPM"), ("tif", "TIFF")])
def test_imagefolder_reads_the_netpbm_and_tiff_files_of_public_sets(
    tmp_path: Path, suffix: str, fmt: str
) -> None:
    """Public face and object sets ship .pgm / .ppm / .tif files (e.g. grey faces)."""
    rng = np.random.default_rng(0)
    for c in ("s1", "s2"):
        (tmp_path / c).mkdir()
        for i in range(2):
            shape = (23, 19) if suffix == "pgm" else (23, 19, 3)  # grey for .pgm
            arr = rng.integers(0, 255, size=shape, dtype=np.uint8)
            (tmp_path / c / f"{i}.{suffix}").write_bytes(png(arr, fmt))
    data = read_dataset(f"imagefolder:{tmp_path}", image_size=16)
    assert data.images.shape == (4, 16, 16, 3) and data.class_names == ["s1", "s2"]


def test_imagefolder_corrupt_file_is_named(tmp_path: Path) -> None:
    root = write_folder(tmp_path / "f")
    bad = root / "dogs" / "broken.png"
    bad.write_bytes(b"\x89PNG not really")
    with pytest.raises(DataError, match=r"broken\.png") as err:
        read_dataset(f"imagefolder:{root}")
    assert err.value.path == str(bad)


def test_imagefolder_without_classes_is_refused(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no class subfolders"):
        read_dataset(f"imagefolder:{tmp_path / 'empty'}")


@pytest.mark.parametrize("gz", [True, False])
def test_idx_loads_gz_and_plain(tmp_path: Path, gz: bool) -> None:
    root = write_idx(tmp_path / "idx", gz=gz)
    data = read_dataset(f"idx:{root}", image_size=32)
    assert data.images.shape == (12, 32, 32, 3)
    np.testing.assert_array_equal(data.images[..., 0], data.images[..., 2])  # grey → RGB
    assert data.labels.tolist() == [i % 3 for i in range(12)]
    # the images file itself works too
    name = "train-images-idx3-ubyte" + (".gz" if gz else "")
    assert read_dataset(f"idx:{root / name}").n_images == 12


def test_idx_label_count_mismatch_names_the_field(tmp_path: Path) -> None:
    root = write_idx(tmp_path / "idx", labels_n=10)
    with pytest.raises(DataError) as err:
        read_dataset(f"idx:{root}")
    assert err.value.field == "count" and "labels-idx1" in err.value.path


def test_idx_bad_magic_and_truncation(tmp_path: Path) -> None:
    root = write_idx(tmp_path / "idx", gz=False)
    f = root / "train-images-idx3-ubyte"
    raw = f.read_bytes()
    f.write_bytes(b"\x00\x00\x0d\x03" + raw[4:])
    with pytest.raises(DataError, match="magic") as err:
        read_dataset(f"idx:{root}")
    assert err.value.field == "magic"
    f.write_bytes(raw[:-5])
    with pytest.raises(DataError) as err:
        read_dataset(f"idx:{root}")
    assert err.value.field == "data"


def test_bad_spec_and_missing_path(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="FORMAT:PATH"):
        read_dataset("csv:/x")
    with pytest.raises(DataError, match="no such file"):
        read_dataset(f"idx:{tmp_path / 'nope'}")


@pytest.mark.parametrize(("n", "side", "message"), [(0, 28, "no images"), (5, 0, "0x0 pixels")])
def test_idx_without_pixels_is_refused(tmp_path: Path, n: int, side: int, message: str) -> None:
    root = tmp_path / "idx"
    root.mkdir()
    img = b"\x00\x00\x08\x03" + b"".join(v.to_bytes(4, "big") for v in (n, side, side))
    (root / "t-images-idx3-ubyte").write_bytes(img + bytes(n * side * side))
    (root / "t-labels-idx1-ubyte").write_bytes(
        b"\x00\x00\x08\x01" + n.to_bytes(4, "big") + bytes(n)
    )
    with pytest.raises(DataError, match=rf"t-images-idx3-ubyte: field 'dimensions': .*{message}"):
        read_dataset(f"idx:{root}")
