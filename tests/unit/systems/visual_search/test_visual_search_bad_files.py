"""Malformed image folders and IDX files in ``--data``: the bad-file table.

Each row is refused by ``mlsd run`` with exit 2 and one line naming the file (and the line and
field where there is one), before any training, with no traceback and nothing left behind (the
``refused_run`` fixture of ``tests/unit/systems/conftest.py``). Issue #17's survey found these
by hand; a new malformed case adds a row.
"""

from __future__ import annotations

import gzip
import io
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from bad_file_cases import Builder, Case, RefusedRun, Specs, empty_folder, one_file
from PIL import Image


# ---- image folders --------------------------------------------------------------------------
def image_bytes(seed: int, fmt: str = "PNG") -> bytes:
    arr = np.random.default_rng(seed).integers(0, 255, size=(20, 20, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format=fmt)
    return buf.getvalue()


def wide_png() -> bytes:
    buf = io.BytesIO()
    Image.new("1", (20_000, 20), 0).save(buf, format="PNG")  # a few hundred bytes
    return buf.getvalue()


def float_tiff() -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.linspace(0, 1, 400, dtype=np.float32).reshape(20, 20)).save(buf, "TIFF")
    return buf.getvalue()


def folder(per_class: dict[str, int], extra: dict[str, bytes] | None = None) -> Builder:
    def build(d: Path) -> Specs:
        d.mkdir(parents=True)
        for c, (name, n) in enumerate(per_class.items()):
            (d / name).mkdir()
            for i in range(n):
                (d / name / f"{i}.png").write_bytes(image_bytes(100 * c + i))
        for rel, data in (extra or {}).items():
            (d / rel).parent.mkdir(parents=True, exist_ok=True)
            (d / rel).write_bytes(data)
        return f"imagefolder:{d}", None

    return build


def image_file_as_folder(d: Path) -> Specs:
    spec, _ = one_file("f.png", image_bytes(0), "imagefolder")(d)
    return spec, None


TWO_CLASSES = {"a": 20, "b": 20}
IMAGEFOLDER: list[Case] = [
    Case("imagefolder-6-images", folder({"a": 3, "b": 3}), "too few images", ""),
    Case("imagefolder-one-class", folder({"a": 40}), "two classes", ""),
    Case("imagefolder-no-classes", folder({}), "no class subfolders", ""),
    Case(
        "imagefolder-no-images",
        folder({}, {"a/readme.txt": b"x", "b/x.txt": b"y"}),
        "no image files",
        "",
    ),
    Case(
        "imagefolder-corrupt-png",
        folder(TWO_CLASSES, {"b/broken.png": b"\x89PNG not really"}),
        "cannot decode",
        "/b/broken.png",
    ),
    Case(
        "imagefolder-empty-jpg",
        folder(TWO_CLASSES, {"a/z.jpg": b""}),
        "no bytes",
        "/a/z.jpg",
    ),
    Case(
        "imagefolder-truncated-png",
        folder(TWO_CLASSES, {"a/t.png": image_bytes(1)[:200]}),
        "cannot decode",
        "/a/t.png",
    ),
    Case(
        "imagefolder-text-as-jpg",
        folder(TWO_CLASSES, {"a/notes.jpg": b"hello"}),
        "cannot decode",
        "/a/notes.jpg",
    ),
    Case(
        "imagefolder-huge-image",
        folder(TWO_CLASSES, {"a/wide.png": wide_png()}),
        "too large",
        "/a/wide.png",
    ),
    Case(
        "imagefolder-float-tiff",
        folder(TWO_CLASSES, {"a/depth.tif": float_tiff()}),
        "floating-point",
        "/a/depth.tif",
    ),
    Case(
        "imagefolder-is-a-file",
        image_file_as_folder,
        "needs a directory",
        "/f.png",
    ),
]


# ---- IDX ------------------------------------------------------------------------------------
def idx_pair(
    n: int,
    *,
    classes: int = 3,
    n_labels: int | None = None,
    side: int = 8,
    images: Callable[[bytes], bytes] = lambda b: b,
    labels: Callable[[bytes], bytes] | None = lambda b: b,
    suffix: str = "",
) -> Builder:
    """An ``*-images-idx3-ubyte`` / ``*-labels-idx1-ubyte`` pair, each passed through a filter
    (``labels=None``: no labels file)."""

    def build(d: Path) -> Specs:
        d.mkdir(parents=True)
        pixels = np.random.default_rng(0).integers(0, 255, size=(n, side, side), dtype=np.uint8)
        m = n if n_labels is None else n_labels
        ys = (np.arange(m) % classes).astype(np.uint8)
        img = b"\x00\x00\x08\x03" + b"".join(v.to_bytes(4, "big") for v in (n, side, side))
        (d / f"train-images-idx3-ubyte{suffix}").write_bytes(images(img + pixels.tobytes()))
        if labels is not None:
            lab = b"\x00\x00\x08\x01" + m.to_bytes(4, "big") + ys.tobytes()
            (d / f"train-labels-idx1-ubyte{suffix}").write_bytes(labels(lab))
        return f"idx:{d}", None

    return build


def half(b: bytes) -> bytes:
    return b[: len(b) // 2]


IMAGES = "/train-images-idx3-ubyte"
LABELS = "/train-labels-idx1-ubyte"
IDX: list[Case] = [
    Case("idx-40-images", idx_pair(40, classes=10), "too few images", ""),
    Case(
        "idx-bad-magic",
        idx_pair(200, images=lambda b: b"\x01" + b[1:]),
        "magic number 01000803",
        f"{IMAGES}: field 'magic'",
    ),
    Case(
        "idx-truncated-data",
        idx_pair(200, images=half),
        "need 12800 data bytes",
        f"{IMAGES}: field 'data'",
    ),
    Case(
        "idx-short-header",
        idx_pair(200, images=lambda b: b[:2]),
        "shorter than the IDX header",
        f"{IMAGES}: field 'magic'",
    ),
    Case("idx-no-labels", idx_pair(200, labels=None), "no labels file", IMAGES),
    Case(
        "idx-label-count",
        idx_pair(200, n_labels=150),
        "150 labels for 200 images",
        f"{LABELS}: field 'count'",
    ),
    Case(
        "idx-truncated-gz",
        idx_pair(200, suffix=".gz", images=lambda b: half(gzip.compress(b)), labels=gzip.compress),
        "truncated gzip",
        f"{IMAGES}.gz",
    ),
    Case(
        "idx-not-gzip-gz",
        idx_pair(200, suffix=".gz", labels=gzip.compress),
        "not a gzip",
        f"{IMAGES}.gz",
    ),
    Case(
        "idx-zero-images",
        idx_pair(0),
        "no images",
        f"{IMAGES}: field 'dimensions'",
    ),
    Case(
        "idx-zero-size-images",
        idx_pair(200, side=0),
        "images of 0x0 pixels",
        f"{IMAGES}: field 'dimensions'",
    ),
    Case("idx-one-class", idx_pair(200, classes=1), "two classes", ""),
    Case(
        "idx-labels-with-3-dims",
        idx_pair(200, labels=lambda b: b"\x00\x00\x08\x03" + b[4:]),
        "has 3 dimensions, expected 1",
        f"{LABELS}: field 'magic'",
    ),
    Case("idx-empty-folder", empty_folder("idx"), "no \\*-images-idx3-ubyte", ""),
]

CASES = IMAGEFOLDER + IDX


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_file_is_refused_in_one_line(case: Case, refused_run: RefusedRun) -> None:
    refused_run("visual-search", case.build, case.reason, case.where)


def test_the_table_covers_image_folders_and_idx() -> None:
    assert {c.id.split("-")[0] for c in CASES} == {"imagefolder", "idx"}
    assert len(CASES) >= 20 and len({c.id for c in CASES}) == len(CASES)
