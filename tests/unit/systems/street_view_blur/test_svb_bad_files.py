"""Malformed ``--data coco:`` / ``boxes:`` inputs: ``mlsd run street-view-blur`` refuses each
with exit 2 and one line naming the file, the line or the field, before anything is written."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from bad_file_cases import Builder, RefusedRun, Specs, one_file

IMG = np.full((40, 60, 3), 128, np.uint8)


def coco(mutate: object) -> Builder:
    def build(d: Path) -> Specs:
        d.mkdir(parents=True)
        cv2.imwrite(str(d / "a.png"), IMG)
        doc = {
            "images": [{"id": 1, "file_name": "a.png"}],
            "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [5, 5, 10, 4]}],
            "categories": [{"id": 1, "name": "plate"}],
        }
        mutate(doc)  # type: ignore[operator]
        (d / "ann.json").write_text(json.dumps(doc, indent=1))
        return f"coco:{d / 'ann.json'}", None

    return build


def boxes(text: str, image: bool = True) -> Builder:
    def build(d: Path) -> Specs:
        d.mkdir(parents=True)
        if image:
            cv2.imwrite(str(d / "a.png"), IMG)
        (d / "a.txt").write_text(text)
        return f"boxes:{d}", None

    return build


def _outside(doc: dict) -> None:
    doc["annotations"][0]["bbox"] = [55, 5, 10, 4]


def _missing(doc: dict) -> None:
    doc["images"][0]["file_name"] = "gone.png"


def _unknown_cat(doc: dict) -> None:
    doc["annotations"][0]["category_id"] = 7


def _bad_bbox(doc: dict) -> None:
    doc["annotations"][0]["bbox"] = [5, 5, "wide", 4]


CASES = [
    (
        "coco-box-outside",
        coco(_outside),
        "outside the 60x40 image",
        "/ann.json: field 'annotations[0].bbox'",
    ),
    ("coco-missing-image", coco(_missing), "not found", "/ann.json: field 'images[0].file_name'"),
    (
        "coco-unknown-category",
        coco(_unknown_cat),
        "unknown category_id",
        "/ann.json: field 'annotations[0].category_id'",
    ),
    ("coco-bbox-not-numbers", coco(_bad_bbox), "numbers", "/ann.json: field 'annotations[0].bbox'"),
    ("coco-empty-file", one_file("ann.json", "", "coco"), "empty annotation file", "/ann.json"),
    (
        "coco-not-json",
        one_file("ann.json", '{"images": [\n  1,,\n]}', "coco"),
        "not valid JSON",
        "/ann.json:2",
    ),
    ("boxes-outside", boxes("a.png 50 30 20 20 ABC\n"), "outside", "/a.txt:1: field 'x'"),
    (
        "boxes-not-a-number",
        boxes("a.png 1 2 3 4 face\na.png 1 x 3 4\n"),
        "not a number",
        "/a.txt:2: field 'x'",
    ),
    ("boxes-short-line", boxes("a.png 1 2 3\n"), "needs", "/a.txt:1: field 'h'"),
    (
        "boxes-other-image",
        boxes("b.png 1 2 3 4\n"),
        "not the image beside it",
        "/a.txt:1: field 'image'",
    ),
    ("boxes-missing-image", boxes("a.png 1 2 3 4\n", image=False), "no image", "/a.txt"),
    ("boxes-all-empty", boxes(""), "no boxes in any annotation file", ""),
]


@pytest.mark.parametrize(("name", "build", "reason", "where"), CASES, ids=[c[0] for c in CASES])
def test_bad_files_are_refused_in_one_line(
    name: str, build: Builder, reason: str, where: str, refused_run: RefusedRun
) -> None:
    refused_run("street-view-blur", build, reason, where)
