"""Real images for visual search: image folders and IDX files (book ch. 2).

* ``imagefolder:PATH``: one subfolder per class (``PATH/<class>/<image>.png|jpg|...``), the
  layout of ImageNet-style datasets; the class is the relevance label.
* ``idx:PATH``: the IDX layout of MNIST-style datasets, ``*-images-idx3-ubyte[.gz]`` with
  ``*-labels-idx1-ubyte[.gz]`` next to it; ``PATH`` is the images file or a folder holding one
  or more such pairs (train and test files are pooled: the run makes its own seeded split).

Every image is converted to RGB (grey replicated) and resized to the model's square size (the
preprocessing of :mod:`~mlsd.systems.visual_search.features`: tiny images, such as 8×8 digits,
are upsampled); the files' own sizes are kept in :attr:`ImageData.source_size`.
Bad files raise :class:`mlsd.data.DataError` naming the file, and the record or field.
"""

from __future__ import annotations

import gzip
import io
import logging
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from mlsd.data import DataError
from mlsd.systems.visual_search.features import ImageDecodeError, decode_image, to_model_size

log = logging.getLogger(__name__)

# what the field's image-folder convention reads (torchvision's IMG_EXTENSIONS), all via Pillow
IMAGE_SUFFIXES = (
    *(".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp"),
    *(".ppm", ".pgm", ".pbm", ".tif", ".tiff"),
)
FORMATS = ("imagefolder", "idx")


@dataclass(frozen=True)
class ImageData:
    """Images ``(N, S, S, 3)`` uint8 with integer class labels."""

    images: np.ndarray
    labels: np.ndarray
    class_names: list[str]
    source: str
    fmt: str
    source_size: str = ""  # the files' own W×H, or the range "min W×H to max W×H"

    @property
    def n_images(self) -> int:
        return len(self.labels)


def read_dataset(spec: str, image_size: int = 32) -> ImageData:
    """Load ``FORMAT:PATH`` (see the module docstring)."""
    fmt, sep, path = spec.partition(":")
    if not sep or fmt not in FORMATS or not path:
        raise DataError(spec, f"expected FORMAT:PATH with FORMAT one of {', '.join(FORMATS)}")
    p = Path(path)
    if not p.exists():
        raise DataError(p, "no such file or directory")
    data = load_imagefolder(p, image_size) if fmt == "imagefolder" else load_idx(p, image_size)
    counts = np.bincount(data.labels)
    if len(data.class_names) < 2 or (counts >= 2).sum() < 2:
        raise DataError(p, "need at least two classes with two or more images each")
    log.info("loaded %d images of %d classes from %s", data.n_images, len(counts), p)
    return data


def size_range(sizes: set[tuple[int, int]]) -> str:
    """``{(W, H), ...}`` as ``"W×H"`` (one size) or ``"W×H to W×H"`` (smallest to largest area)."""
    if not sizes:
        return ""
    by_area = sorted(sizes, key=lambda s: (s[0] * s[1], s))
    lo, hi = by_area[0], by_area[-1]
    return f"{lo[0]}×{lo[1]}" if lo == hi else f"{lo[0]}×{lo[1]} to {hi[0]}×{hi[1]}"


def list_images(folder: Path) -> list[Path]:
    """Image files under ``folder`` (recursively), sorted."""
    return sorted(
        f for f in folder.rglob("*") if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES
    )


def load_imagefolder(root: Path, image_size: int) -> ImageData:
    if not root.is_dir():
        raise DataError(root, "imagefolder needs a directory with one subfolder per class")
    classes = sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    if not classes:
        raise DataError(root, "no class subfolders (expected PATH/<class>/<image files>)")
    images: list[np.ndarray] = []
    labels: list[int] = []
    sizes: set[tuple[int, int]] = set()
    for c, name in enumerate(classes):
        for f in list_images(root / name):
            raw = f.read_bytes()
            try:
                images.append(decode_image(raw, image_size))
            except ImageDecodeError as exc:
                raise DataError(f, str(exc)) from None
            sizes.add(Image.open(io.BytesIO(raw)).size)  # the header only: decoded above
            labels.append(c)
    if not images:
        raise DataError(root, f"no image files ({', '.join(IMAGE_SUFFIXES)}) in the class folders")
    return ImageData(
        np.stack(images),
        np.asarray(labels, np.int64),
        classes,
        str(root),
        "imagefolder",
        size_range(sizes),
    )


# ---- IDX ------------------------------------------------------------------------------------
def _read_maybe_gz(path: Path) -> bytes:
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as fh:
                return fh.read()
        return path.read_bytes()
    except EOFError:
        raise DataError(
            path, "truncated gzip file: the compressed stream ends early (an interrupted copy?)"
        ) from None
    except gzip.BadGzipFile:
        raise DataError(path, "not a gzip file, though its name ends in .gz") from None
    except (OSError, zlib.error) as exc:
        raise DataError(path, f"cannot read: {exc}") from None


def read_idx(path: Path, ndim: int) -> np.ndarray:
    """An IDX file of unsigned bytes with ``ndim`` dimensions (3: images, 1: labels)."""
    raw = _read_maybe_gz(path)
    if len(raw) < 4:
        raise DataError(
            path, f"file has {len(raw)} bytes, shorter than the IDX header", field="magic"
        )
    if raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise DataError(
            path,
            f"magic number {raw[:4].hex()} is not an unsigned-byte IDX file (expected 0000080X)",
            field="magic",
        )
    if raw[3] != ndim:
        raise DataError(path, f"has {raw[3]} dimensions, expected {ndim}", field="magic")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(path, "header truncated", field="dimensions")
    dims = [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    expected = int(np.prod(dims))
    if len(raw) - header != expected:
        raise DataError(
            path,
            f"dimensions {dims} need {expected} data bytes, found {len(raw) - header}",
            field="data",
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims)


def _labels_file_for(images_file: Path) -> Path:
    name = images_file.name.replace("images-idx3-ubyte", "labels-idx1-ubyte")
    candidates = [images_file.with_name(name)]
    if name.endswith(".gz"):
        candidates.append(images_file.with_name(name[:-3]))
    else:
        candidates.append(images_file.with_name(name + ".gz"))
    for c in candidates:
        if c.is_file():
            return c
    raise DataError(images_file, f"no labels file next to it (expected {candidates[0].name})")


def load_idx(path: Path, image_size: int) -> ImageData:
    if path.is_dir():
        files = sorted(path.glob("*-images-idx3-ubyte")) + sorted(
            path.glob("*-images-idx3-ubyte.gz")
        )
        if not files:
            raise DataError(path, "no *-images-idx3-ubyte[.gz] file in this folder")
    else:
        files = [path]
    images: list[np.ndarray] = []
    labels: list[np.ndarray] = []
    sizes: set[tuple[int, int]] = set()
    for f in files:
        imgs = read_idx(f, 3)
        if imgs.shape[0] == 0:
            raise DataError(f, "no images: the header says 0", field="dimensions")
        if imgs.shape[1] == 0 or imgs.shape[2] == 0:
            raise DataError(
                f, f"images of {imgs.shape[1]}x{imgs.shape[2]} pixels", field="dimensions"
            )
        lab_file = _labels_file_for(f)
        labs = read_idx(lab_file, 1)
        if len(labs) != len(imgs):
            raise DataError(
                lab_file, f"{len(labs)} labels for {len(imgs)} images in {f.name}", field="count"
            )
        images.append(np.stack([to_model_size(im, image_size) for im in imgs]))
        sizes.add((int(imgs.shape[2]), int(imgs.shape[1])))  # IDX: rows, then columns
        labels.append(labs.astype(np.int64))
    y = np.concatenate(labels)
    names = [str(c) for c in range(int(y.max()) + 1)] if len(y) else []
    return ImageData(np.concatenate(images), y, names, str(path), "idx", size_range(sizes))
