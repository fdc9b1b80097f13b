"""Serving: artifacts round trip, the blur hides only boxes, the batch pipeline resumes."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

from mlsd.data import DataError
from mlsd.serving import ServingArtifactError
from mlsd.systems.street_view_blur.model_haar import HaarCascades
from mlsd.systems.street_view_blur.serving import (
    Blurrer,
    ImageDecodeError,
    decode_image,
    encode_png,
    load_blurrer,
    save_serving_artifacts,
)
from mlsd.systems.street_view_blur.serving_batch import BOXES_FILE, blur_folder
from mlsd.systems.street_view_blur.serving_blur import blur_image


class BoxEveryImage(HaarCascades):
    """A stand-in detector: one face box at the top-left of every image."""

    def detect(self, images: np.ndarray, min_score: float = 0.0) -> pd.DataFrame:
        n = len(images)
        return pd.DataFrame(
            {
                "image": np.arange(n),
                "label": np.zeros(n, np.int64),
                "x": 2.0,
                "y": 2.0,
                "w": 8.0,
                "h": 8.0,
                "score": 0.9,
            }
        )


def noisy(seed: int, h: int = 40, w: int = 50) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 255, (h, w, 3), dtype=np.uint8)


def test_blur_changes_only_the_boxes_and_their_margin() -> None:
    img = noisy(0)
    box = pd.DataFrame({"label": [0], "x": [10.0], "y": [10.0], "w": [10.0], "h": [10.0]})
    out = blur_image(img, box)
    changed = (out != img).any(axis=2)
    ys, xs = np.nonzero(changed)
    assert changed[12:18, 12:18].all()
    assert xs.min() >= 8 and xs.max() < 22 and ys.min() >= 8 and ys.max() < 22
    assert out[12:18, 12:18].std() < img[12:18, 12:18].std() / 3


def test_artifacts_round_trip_and_a_tampered_file_is_refused(tmp_path: Path) -> None:
    art = tmp_path / "artifacts"
    save_serving_artifacts(art, HaarCascades(upscale=2.0).fit(), "haar_cascades", (0.4, 0.6), {})
    blurrer = load_blurrer(art)
    assert blurrer.thresholds == (0.4, 0.6) and blurrer.model.upscale == 2.0
    (art / "serving.json").write_text(json.dumps({"model": "x", "thresholds": [0.1]}))
    with pytest.raises(ServingArtifactError, match=r"serving\.json"):
        load_blurrer(art)


def test_decode_refuses_corrupt_empty_and_huge_images() -> None:
    png = encode_png(noisy(1))
    assert decode_image(png).shape == (40, 50, 3)
    with pytest.raises(ImageDecodeError, match="empty"):
        decode_image(b"")
    with pytest.raises(ImageDecodeError, match="cannot decode"):
        decode_image(png[:40])
    with pytest.raises(ImageDecodeError, match="too large") as exc:
        decode_image(encode_png(np.zeros((10, 300, 3), np.uint8)), max_side=200)
    assert exc.value.too_large


def test_batch_pipeline_writes_blurred_images_and_resumes(tmp_path: Path) -> None:
    folder, out = tmp_path / "in", tmp_path / "out"
    (folder / "sub").mkdir(parents=True)
    for i in range(5):
        cv2.imwrite(str(folder / ("sub" if i % 2 else "") / f"{i}.png"), noisy(i))
    (folder / "broken.jpg").write_bytes(b"not a jpeg")
    blurrer = Blurrer(BoxEveryImage(), "stand-in", (0.5, 0.5))
    first = blur_folder(folder, out, blurrer, batch_size=2)
    assert (first.processed, first.failed, first.resumed, first.faces) == (5, 1, 0, 5)
    lines = [json.loads(x) for x in (out / BOXES_FILE).read_text().splitlines()]
    assert sorted(r["image"] for r in lines) == sorted(
        ["0.png", "2.png", "4.png", "sub/1.png", "sub/3.png", "broken.jpg"]
    )
    blurred = cv2.imread(str(out / "images" / "sub" / "3.png"))
    assert not np.array_equal(blurred[2:10, 2:10], noisy(3)[2:10, 2:10])
    assert np.array_equal(blurred[20:, 20:], noisy(3)[20:, 20:])
    # an interrupted job: the last line half-written and one output lost
    text = (out / BOXES_FILE).read_text().splitlines()
    (out / BOXES_FILE).write_text("\n".join(text[:-2]) + "\n" + text[-2][:15])
    again = blur_folder(folder, out, blurrer, batch_size=2)
    assert again.resumed == 4 and again.processed + again.failed == 2
    assert blur_folder(folder, out, blurrer).processed == 0


def test_batch_pipeline_refuses_an_output_inside_the_input(tmp_path: Path) -> None:
    (tmp_path / "a.png").write_bytes(encode_png(noisy(0)))
    blurrer = Blurrer(BoxEveryImage(), "stand-in", (0.5, 0.5))
    with pytest.raises(DataError, match="inside the input"):
        blur_folder(tmp_path, tmp_path / "out", blurrer)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no image files"):
        blur_folder(tmp_path / "empty", tmp_path / "elsewhere", blurrer)
