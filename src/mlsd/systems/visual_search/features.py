"""Visual search's features: image preprocessing and near-duplicate fingerprints (book ch. 2).

An image system has no hand-made feature table: the encoder learns its features from pixels.
What the chapter's data preparation does instead is here:

* **preprocessing** (the same offline and online, so training and serving cannot drift apart):
  :func:`decode_image` turns uploaded bytes into the model's ``(S, S, 3)`` uint8 RGB (refusing
  images over ``MAX_SIDE`` pixels a side before decoding them), :func:`to_model_size` resizes,
  :func:`check_images` validates a batch and :func:`to_tensor` centres it for the CNN;
* **near-duplicate detection** before indexing: :func:`fingerprint` (a mean-centred colour
  thumbnail, robust to re-encoding, a pixel of shift and brightness changes),
  :func:`near_duplicate_pairs` (every pair above a cosine threshold, by FAISS range search) and
  :func:`dedupe_mask` (keep the first image of every group).
"""

from __future__ import annotations

import io
import warnings

import cv2
import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from mlsd.index import pairs_within

MAX_SIDE = 4096  # larger images are refused (decompression bombs, accidental uploads)
FINGERPRINT_SIDE = 8


class ImageDecodeError(ValueError):
    """Bytes that are not a usable image; the message says why."""


# ---- preprocessing ----------------------------------------------------------------------------
def check_images(images: np.ndarray) -> np.ndarray:
    """``images`` as a contiguous uint8 ``(N, S, S, 3)`` array, or a ``ValueError`` saying why."""
    arr = np.asarray(images)
    if arr.dtype != np.uint8 or arr.ndim != 4 or arr.shape[3] != 3 or arr.shape[1] != arr.shape[2]:
        raise ValueError(f"images must be uint8 (N, S, S, 3), got {arr.dtype} {arr.shape}")
    return np.ascontiguousarray(arr)


def to_tensor(images: np.ndarray) -> torch.Tensor:
    """uint8 ``(N, S, S, 3)`` → float ``(N, 3, S, S)`` centred on zero, in [-0.5, 0.5]."""
    return torch.from_numpy(images).permute(0, 3, 1, 2).float().div(255.0).sub(0.5)


def to_model_size(rgb: np.ndarray, size: int) -> np.ndarray:
    """An ``(H, W, 3)`` or ``(H, W)`` uint8 image as ``(size, size, 3)`` uint8 RGB."""
    if rgb.ndim == 2:
        rgb = np.repeat(rgb[..., None], 3, axis=2)
    h, w = rgb.shape[:2]
    interp = cv2.INTER_AREA if min(h, w) > size else cv2.INTER_LINEAR
    return np.ascontiguousarray(cv2.resize(rgb, (size, size), interpolation=interp), np.uint8)


def decode_image(data: bytes, size: int, max_side: int = MAX_SIDE) -> np.ndarray:
    """PNG / JPEG / ... bytes → ``(size, size, 3)`` uint8 RGB, or :class:`ImageDecodeError`.

    The header is read first and images larger than ``max_side`` on a side are refused before
    their pixels are decoded. 16-bit grey (PNG, TIFF, PGM with ``maxval`` above 255) is scaled
    to 8 bits, not clipped; floating-point images are refused.
    """
    if not data:
        raise ImageDecodeError("empty image: no bytes")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
            w, h = img.size
            if w > max_side or h > max_side:
                raise ImageDecodeError(
                    f"image too large: {w}x{h} pixels, at most {max_side} a side"
                )
            # JPEG decodes straight to a reduced size (DCT scaling by 1/2, 1/4 or 1/8) no
            # smaller than 4x the model's input: a 4096² photo costs 0.75 MB, not 48 MB
            img.draft("RGB", (4 * size, 4 * size))
            img.load()
            rgb = np.asarray(_eight_bit(img).convert("RGB"), dtype=np.uint8)
    except ImageDecodeError:
        raise
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise ImageDecodeError(f"cannot decode image: {exc}") from exc
    except (Image.DecompressionBombWarning, Image.DecompressionBombError) as exc:
        raise ImageDecodeError(f"image too large: {exc}") from exc
    if rgb.shape[0] == 0 or rgb.shape[1] == 0:
        raise ImageDecodeError("image has no pixels")
    return to_model_size(rgb, size)


# grey modes Pillow decodes 16-bit PNG, TIFF and PGM (maxval above 255, rescaled to 0..65535) to
WIDE_GREY_MODES = ("I", "I;16", "I;16B", "I;16L", "I;16N")


def _eight_bit(img: Image.Image) -> Image.Image:
    """16-bit grey scaled to 8 bits (``v / 257``, rounded: 8-bit values stored as 16 come back
    exact); Pillow's own ``convert`` clips instead, turning every value above 255 white. A
    floating-point image has no range to scale from and is refused."""
    if img.mode in WIDE_GREY_MODES:
        wide = np.clip(np.asarray(img, dtype=np.int64), 0, 65_535)
        return Image.fromarray(((wide + 128) // 257).astype(np.uint8), mode="L")
    if img.mode == "F":
        raise ImageDecodeError(
            "32-bit floating-point image: no pixel range to scale from; save it with 8 or 16 "
            "bits per channel"
        )
    return img


def png_bytes(image: np.ndarray) -> bytes:
    """One ``(S, S, 3)`` uint8 image as PNG bytes (what a client uploads)."""
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG")
    return buf.getvalue()


# ---- near-duplicates --------------------------------------------------------------------------
def fingerprint(images: np.ndarray, side: int = FINGERPRINT_SIDE) -> np.ndarray:
    """A near-duplicate fingerprint: the ``side``×``side`` colour thumbnail, mean-centred and
    L2-normalised (robust to re-encoding, a pixel of shift and brightness changes)."""
    thumbs = (
        np.stack([cv2.resize(im, (side, side), interpolation=cv2.INTER_AREA) for im in images])
        .reshape(len(images), -1)
        .astype(np.float32)
    )
    thumbs -= thumbs.mean(axis=1, keepdims=True)
    norms = np.linalg.norm(thumbs, axis=1, keepdims=True)
    return np.ascontiguousarray(thumbs / np.maximum(norms, 1e-6), dtype=np.float32)


def near_duplicate_pairs(embeddings: np.ndarray, threshold: float) -> np.ndarray:
    """Pairs ``(i, j)``, ``i < j``, whose cosine similarity is at least ``threshold`` (an exact
    range search: a duplicate group can have any size)."""
    return pairs_within(embeddings, threshold)


def dedupe_mask(n: int, pairs: np.ndarray) -> np.ndarray:
    """Keep the first image of every near-duplicate group (greedy, in index order)."""
    keep = np.ones(n, dtype=bool)
    for i, j in sorted((int(a), int(b)) for a, b in pairs):
        if keep[i]:
            keep[j] = False
    return keep
