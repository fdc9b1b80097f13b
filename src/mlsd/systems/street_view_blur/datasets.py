"""Step 3 for street-view blurring: the world's labelled images, or your own (``--data``).

Two layouts of real data, every class name mapped to face or plate (others are dropped and
counted):

* ``coco:PATH``: a COCO-style JSON file (``images``, ``annotations`` with ``bbox = [x, y, w, h]``,
  ``categories``) with its images beside it (``file_name`` relative to the JSON's folder);
* ``boxes:DIR``: each image with a text file beside it (same stem, ``.txt``) of lines
  ``image x y w h [label or text]``, as public licence-plate benchmarks ship them; a label
  ``face`` is a face, anything else (a plate's characters, ``plate``) a plate. An empty text
  file is an image with nothing to blur.

Every image is resized to the scale's input size (its boxes with it). With at least
``MIN_SPLIT`` images the detectors train on a seeded 60% of them and are validated / tested on
20% each (**mode "split"**); with fewer, they train and validate on the world's images and are
tested on all the files (**mode "world-trained"**). A malformed file is a
:class:`~mlsd.data.DataError` naming the file, the line or the field.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pandas as pd

from mlsd.data import DataError
from mlsd.report import Blueprint
from mlsd.rng import rng
from mlsd.systems.street_view_blur.world import BOX_COLUMNS, ImageSet, StreetWorld, empty_boxes
from mlsd.systems.street_view_blur.world_render import FACE, PLATE

log = logging.getLogger(__name__)

FORMATS = ("coco", "boxes")
MIN_SPLIT = 30
FACE_NAMES = {"face", "faces", "human_face", "person_face", "head"}
PLATE_NAMES = {
    "plate",
    "plates",
    "license_plate",
    "licence_plate",
    "license plate",
    "licence plate",
    "number_plate",
    "numberplate",
    "car_plate",
    "lp",
}
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


@dataclass(frozen=True)
class StreetData:
    source: str
    mode: str  # world | split | world-trained
    train: ImageSet
    val: ImageSet
    test: ImageSet
    world: StreetWorld | None
    dropped_boxes: int = 0

    def metrics(self) -> dict[str, Any]:
        def describe(s: ImageSet) -> dict[str, int]:
            labels = s.boxes["label"].to_numpy()
            return {
                "images": len(s),
                "faces": int((labels == FACE).sum()),
                "plates": int((labels == PLATE).sum()),
            }

        h, w = self.test.images.shape[1:3]
        return {
            "data": {
                "source": self.source,
                "mode": self.mode,
                "width": w,
                "height": h,
                "train": describe(self.train),
                "val": describe(self.val),
                "test": describe(self.test),
                "dropped_boxes": self.dropped_boxes,
            }
        }


def world_data(world: StreetWorld) -> StreetData:
    return StreetData(
        "world",
        "world",
        world.labelled("train"),
        world.labelled("val"),
        world.labelled("test"),
        world,
    )


def _label(name: str, default_plate: bool) -> int | None:
    key = name.strip().lower()
    if key in FACE_NAMES:
        return FACE
    if key in PLATE_NAMES or default_plate:
        return PLATE
    return None


def _read_image(path: Path, width: int, height: int) -> tuple[np.ndarray, float, float, int, int]:
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise DataError(path, "cannot decode the image (not a PNG or JPEG?)")
    h, w = img.shape[:2]
    resized = cv2.resize(img, (width, height), interpolation=cv2.INTER_AREA)
    return resized, width / w, height / h, w, h


def _check_box(path: Path, box: list[float], w: int, h: int, where: dict[str, Any]) -> None:
    x, y, bw, bh = box
    if not all(np.isfinite(box)) or bw <= 0 or bh <= 0:
        raise DataError(path, f"box {box} needs finite numbers and a positive size", **where)
    if x < -1 or y < -1 or x + bw > w + 1 or y + bh > h + 1:
        raise DataError(path, f"box {box} lies outside the {w}x{h} image", **where)


def read_coco(path: Path, width: int, height: int) -> tuple[ImageSet, int]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(path, f"unreadable: {exc}") from exc
    if not text.strip():
        raise DataError(path, "empty annotation file")
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataError(path, f"not valid JSON: {exc.msg}", line=exc.lineno) from exc
    for key in ("images", "annotations", "categories"):
        if not isinstance(doc, dict) or not isinstance(doc.get(key), list):
            raise DataError(path, "missing or not a list", field=key)
    cats = {}
    for i, c in enumerate(doc["categories"]):
        if not isinstance(c, dict) or not isinstance(c.get("id"), int):
            raise DataError(path, "a category needs an integer id", field=f"categories[{i}]")
        cats[c["id"]] = _label(str(c.get("name", "")), default_plate=False)
    images: list[np.ndarray] = []
    index: dict[int, int] = {}
    sizes: list[tuple[int, int]] = []
    scales: list[tuple[float, float]] = []
    for i, im in enumerate(doc["images"]):
        if (
            not isinstance(im, dict)
            or not isinstance(im.get("id"), int)
            or not isinstance(im.get("file_name"), str)
        ):
            raise DataError(
                path, "an image needs an integer id and a file_name", field=f"images[{i}]"
            )
        file = path.parent / im["file_name"]
        if not file.is_file():
            raise DataError(path, f"image file {file} not found", field=f"images[{i}].file_name")
        img, sx, sy, w, h = _read_image(file, width, height)
        index[im["id"]] = len(images)
        images.append(img)
        sizes.append((w, h))
        scales.append((sx, sy))
    if not images:
        raise DataError(path, "no images", field="images")
    rows, dropped = [], 0
    for i, a in enumerate(doc["annotations"]):
        where: dict[str, Any] = {"field": f"annotations[{i}].bbox"}
        if not isinstance(a, dict) or a.get("image_id") not in index:
            raise DataError(path, "unknown image_id", field=f"annotations[{i}].image_id")
        if a.get("category_id") not in cats:
            raise DataError(path, "unknown category_id", field=f"annotations[{i}].category_id")
        box = a.get("bbox")
        if (
            not isinstance(box, list)
            or len(box) != 4
            or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in box)
        ):
            raise DataError(path, "bbox must be [x, y, w, h] numbers", **where)
        k = index[a["image_id"]]
        _check_box(path, [float(v) for v in box], *sizes[k], where)
        label = cats[a["category_id"]]
        if label is None:
            dropped += 1
            continue
        sx, sy = scales[k]
        rows.append(_row(k, label, box, sx, sy, width, height))
    return _image_set(images, rows, [Path(im["file_name"]).name for im in doc["images"]]), dropped


def _row(
    k: int, label: int, box: list[float], sx: float, sy: float, width: int, height: int
) -> tuple[Any, ...]:
    x, y = max(0.0, box[0] * sx), max(0.0, box[1] * sy)
    w = min(box[2] * sx, width - x)
    h = min(box[3] * sy, height - y)
    return (k, label, x, y, w, h, 0.0)


def _image_set(images: list[np.ndarray], rows: list[tuple[Any, ...]], names: list[str]) -> ImageSet:
    boxes = pd.DataFrame(rows, columns=list(BOX_COLUMNS)) if rows else empty_boxes()
    boxes = boxes.astype({"image": np.int64, "label": np.int64})
    meta = pd.DataFrame(
        {"image": np.arange(len(images)), "day": 0, "night": False, "fog": 0.0, "blur": 0.0}
    )
    return ImageSet(np.stack(images), boxes, meta, tuple(names))


def read_boxes(folder: Path, width: int, height: int) -> tuple[ImageSet, int]:
    if not folder.is_dir():
        raise DataError(folder, "not a folder (boxes: needs the folder of images and .txt files)")
    texts = sorted(folder.glob("*.txt"))
    if not texts:
        raise DataError(folder, "no .txt annotation files in the folder")
    images: list[np.ndarray] = []
    rows: list[tuple[Any, ...]] = []
    names: list[str] = []
    for txt in texts:
        image = next(
            (txt.with_suffix(s) for s in IMAGE_SUFFIXES if txt.with_suffix(s).is_file()), None
        )
        if image is None:
            raise DataError(txt, f"no image {txt.stem}.png / .jpg beside it")
        img, sx, sy, w, h = _read_image(image, width, height)
        k = len(images)
        images.append(img)
        names.append(image.name)
        try:
            lines = txt.read_text(encoding="utf-8").splitlines()
        except UnicodeDecodeError as exc:
            raise DataError(txt, f"not UTF-8 text: {exc}") from exc
        for n, line in enumerate(lines, start=1):
            parts = line.split()
            if not parts:
                continue
            if len(parts) < 5:
                raise DataError(txt, "needs 'image x y w h [label]'", line=n, field="h")
            if parts[0] != image.name:
                raise DataError(
                    txt,
                    f"names {parts[0]!r}, not the image beside it ({image.name})",
                    line=n,
                    field="image",
                )
            try:
                box = [float(v) for v in parts[1:5]]
            except ValueError as exc:
                raise DataError(txt, f"not a number: {exc}", line=n, field="x") from exc
            _check_box(txt, box, w, h, {"line": n, "field": "x"})
            label = _label(" ".join(parts[5:]) or "plate", default_plate=True)
            rows.append(_row(k, PLATE if label is None else label, box, sx, sy, width, height))
    if not rows:
        raise DataError(folder, "no boxes in any annotation file: nothing to evaluate")
    return _image_set(images, rows, names), 0


def read_files(spec: str, world: StreetWorld) -> StreetData:
    """``FORMAT:PATH`` (see the module docstring) as train / val / test sets."""
    fmt, _, raw = spec.partition(":")
    if fmt not in FORMATS or not raw:
        raise DataError(spec, f"--data must be FORMAT:PATH with FORMAT one of {', '.join(FORMATS)}")
    path = Path(raw).expanduser()
    if not path.exists():
        raise DataError(path, "does not exist")
    w, h = world.config.width, world.config.height
    data, dropped = read_coco(path, w, h) if fmt == "coco" else read_boxes(path, w, h)
    if len(data) >= MIN_SPLIT:
        order = rng(world.seed, "street-view/file-split").permutation(len(data))
        n_val = n_test = max(1, len(data) // 5)
        test, val = order[:n_test], order[n_test : n_test + n_val]
        train = order[n_test + n_val :]
        return StreetData(
            f"{fmt}:{path}",
            "split",
            data.subset(train),
            data.subset(val),
            data.subset(test),
            None,
            dropped,
        )
    return StreetData(
        f"{fmt}:{path}",
        "world-trained",
        world.labelled("train"),
        world.labelled("val"),
        data,
        None,
        dropped,
    )


def report_data(bp: Blueprint, data: StreetData) -> None:
    bp.section("Data")
    m = data.metrics()["data"]
    mode = {
        "world": "the world's labelled street images (every box known)",
        "split": "your images: the detectors train on a seeded 60%, validate on 20% and are "
        "tested on 20%",
        "world-trained": f"your images (fewer than {MIN_SPLIT}): the detectors train and "
        "validate on the world's images and are tested on all of yours",
    }[data.mode]
    bp.text(f"Source: `{data.source}`; {mode}. Images are {m['width']}×{m['height']} pixels.")
    bp.table(
        ["split", "images", "faces", "plates"],
        [[k, m[k]["images"], m[k]["faces"], m[k]["plates"]] for k in ("train", "val", "test")],
    )
    if data.dropped_boxes:
        bp.text(f"{data.dropped_boxes} boxes of other classes were dropped.")


def write_coco(data: ImageSet, folder: Path, json_name: str = "annotations.json") -> Path:
    """``data`` in the COCO layout (PNG images beside the JSON); returns the JSON's path."""
    folder.mkdir(parents=True, exist_ok=True)
    h, w = data.images.shape[1:3]
    images = []
    for i, img in enumerate(data.images):
        name = f"{i:06d}.png"
        cv2.imwrite(str(folder / name), img)
        images.append({"id": i + 1, "file_name": name, "width": w, "height": h})
    anns = [
        {
            "id": k + 1,
            "image_id": int(r[0]) + 1,
            "category_id": int(r[1]) + 1,
            "bbox": [float(v) for v in r[2:6]],
            "area": float(r[4] * r[5]),
            "iscrowd": 0,
        }
        for k, r in enumerate(data.boxes[["image", "label", "x", "y", "w", "h"]].to_numpy())
    ]
    cats = [{"id": 1, "name": "face"}, {"id": 2, "name": "license_plate"}]
    path = folder / json_name
    path.write_text(json.dumps({"images": images, "annotations": anns, "categories": cats}))
    return path


def write_boxes(data: ImageSet, folder: Path) -> Path:
    """``data`` in the per-image box-file layout (plates labelled with made-up text)."""
    folder.mkdir(parents=True, exist_ok=True)
    for i, img in enumerate(data.images):
        name = f"{i:06d}.png"
        cv2.imwrite(str(folder / name), img)
        rows = data.boxes[data.boxes["image"] == i]
        lines = [
            f"{name} {x:.1f} {y:.1f} {bw:.1f} {bh:.1f} {'face' if lab == FACE else 'AB123C'}"
            for lab, x, y, bw, bh in rows[["label", "x", "y", "w", "h"]].to_numpy()
        ]
        (folder / f"{i:06d}.txt").write_text("".join(x + "\n" for x in lines))
    return folder
