"""Preprocessing (decoding uploads, tensors) and near-duplicate fingerprints."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from mlsd.systems.visual_search.features import (
    ImageDecodeError,
    check_images,
    decode_image,
    dedupe_mask,
    fingerprint,
    near_duplicate_pairs,
    png_bytes,
    to_model_size,
    to_tensor,
)
from mlsd.systems.visual_search.model import l2_normalise


def png(arr: np.ndarray, fmt: str = "PNG") -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format=fmt)
    return buf.getvalue()


def vectors(n: int, d: int = 16, seed: int = 0) -> np.ndarray:
    return l2_normalise(np.random.default_rng(seed).normal(size=(n, d)))


def test_decode_image_refuses_empty_corrupt_and_huge() -> None:
    ok = decode_image(png(np.zeros((5, 7, 3), np.uint8)), 8)
    assert ok.shape == (8, 8, 3)
    with pytest.raises(ImageDecodeError, match="empty"):
        decode_image(b"", 8)
    with pytest.raises(ImageDecodeError, match="cannot decode"):
        decode_image(b"definitely not an image", 8)
    big = png(np.zeros((10, 300, 3), np.uint8))
    with pytest.raises(ImageDecodeError, match="too large"):
        decode_image(big, 8, max_side=256)


def test_png_round_trip_and_grey_to_rgb() -> None:
    img = np.random.default_rng(0).integers(0, 256, size=(8, 8, 3), dtype=np.uint8)
    np.testing.assert_array_equal(decode_image(png_bytes(img), 8), img)  # PNG is lossless
    grey = to_model_size(np.full((5, 9), 7, np.uint8), 4)
    assert grey.shape == (4, 4, 3) and (grey == 7).all()


def test_check_images_and_to_tensor() -> None:
    with pytest.raises(ValueError, match="uint8"):
        check_images(np.zeros((2, 8, 8, 3), np.float32))
    with pytest.raises(ValueError, match="uint8"):
        check_images(np.zeros((2, 8, 6, 3), np.uint8))
    x = np.array([[[[0, 255, 128]]]], np.uint8)
    t = to_tensor(x)
    assert t.shape == (1, 3, 1, 1)
    assert float(t.min()) == -0.5 and float(t.max()) == 0.5


def test_near_duplicates_and_dedupe() -> None:
    x = vectors(50)
    dup = l2_normalise(x[[3, 3, 10]] + 0.01 * vectors(3, seed=5))
    allv = np.concatenate([x, dup])
    pairs = near_duplicate_pairs(allv, 0.99)
    found = {tuple(p) for p in pairs.tolist()}
    assert {(3, 50), (3, 51), (50, 51), (10, 52)} <= found
    assert all(i < j for i, j in found)
    keep = dedupe_mask(len(allv), pairs)
    assert keep[:50].all() and not keep[50:].any()


def test_fingerprint_ignores_brightness() -> None:
    img = np.random.default_rng(0).integers(0, 200, size=(2, 16, 16, 3), dtype=np.uint8)
    brighter = np.clip(img.astype(int) + 30, 0, 255).astype(np.uint8)
    f = fingerprint(np.concatenate([img, brighter]))
    assert f.shape == (4, 192)
    assert float(f[0] @ f[2]) > 0.99 and float(f[0] @ f[1]) < 0.5


def test_large_jpegs_decode_reduced_to_the_same_image(monkeypatch: pytest.MonkeyPatch) -> None:
    """A big JPEG is decoded at a reduced scale (DCT scaling), never at full size, and gives
    the same model input as a full decode up to JPEG noise."""
    small = np.random.default_rng(0).integers(0, 255, (32, 32, 3), dtype=np.uint8)
    big = np.asarray(Image.fromarray(small).resize((2048, 2048), Image.Resampling.NEAREST))
    data = png(big, fmt="JPEG")
    decoded_sizes: list[tuple[int, int]] = []
    load = Image.Image.load

    def spy(self: Image.Image) -> object:
        out = load(self)
        decoded_sizes.append(self.size)
        return out

    monkeypatch.setattr(Image.Image, "load", spy)
    reduced = decode_image(data, 32)
    assert max(decoded_sizes) <= (256, 256)  # 1/8 of 2048: at least 4x the 32-pixel input
    monkeypatch.undo()
    full = to_model_size(np.asarray(Image.open(io.BytesIO(data)).convert("RGB")), 32)
    assert reduced.shape == (32, 32, 3)
    assert np.abs(reduced.astype(int) - full.astype(int)).mean() < 6
