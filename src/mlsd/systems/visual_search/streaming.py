"""Catalogues of any size in bounded memory: image sources, batched embedding, exact search.

The chapter's indexing pipeline (book ch. 2, "Serving") embeds millions of catalogue images
offline. Holding them all as pixels is what does not scale (a million 32×32 RGB photos are
3 GB; their 64-dim embeddings 256 MB), so the catalogue is an :class:`ImageSource` that yields
images ``chunk`` at a time: an in-memory array (files) or the world's photographer (rendered on
demand). :func:`embed_catalogue` renders each chunk once and encodes it with every encoder, so
only the embeddings are kept. :func:`exact_search` is brute-force inner-product search in query
batches over the embedding matrix itself (no index copy): the ground truth the approximate index
is measured against.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import faiss
import numpy as np

from mlsd.systems.visual_search.model import ImageEncoder

if TYPE_CHECKING:
    from mlsd.systems.visual_search.world import VisualSearchWorld

log = logging.getLogger(__name__)

CHUNK = 4096
LOG_EVERY = 20  # log progress this many times per catalogue
Progress = Callable[[str, int, int], None]


class ImageSource(Protocol):
    """A sequence of uint8 ``(S, S, 3)`` images read a chunk (or a selection) at a time."""

    def __len__(self) -> int: ...

    def chunks(self, size: int = CHUNK) -> Iterator[np.ndarray]: ...

    def take(self, positions: np.ndarray) -> np.ndarray: ...


@dataclass(frozen=True)
class ArrayImages:
    """Images already in memory (real data files)."""

    images: np.ndarray

    def __len__(self) -> int:
        return len(self.images)

    def chunks(self, size: int = CHUNK) -> Iterator[np.ndarray]:
        for start in range(0, len(self.images), size):
            yield self.images[start : start + size]

    def take(self, positions: np.ndarray) -> np.ndarray:
        return np.asarray(self.images[np.asarray(positions, dtype=np.int64)])


@dataclass(frozen=True)
class WorldPhotos:
    """The world's photos ``(product_ids[i], photo_idx[i])``, rendered when read."""

    world: VisualSearchWorld
    product_ids: np.ndarray
    photo_idx: np.ndarray

    def __len__(self) -> int:
        return len(self.product_ids)

    def chunks(self, size: int = CHUNK) -> Iterator[np.ndarray]:
        return self.world.iter_photos(self.product_ids, self.photo_idx, chunk=size)

    def take(self, positions: np.ndarray) -> np.ndarray:
        pos = np.asarray(positions, dtype=np.int64)
        return self.world.photos(self.product_ids[pos], self.photo_idx[pos])


@dataclass(frozen=True)
class EmbedStats:
    """Seconds spent reading (rendering / decoding) the images and encoding them, per encoder."""

    images: int
    read_s: float
    encode_s: dict[str, float]

    @property
    def images_per_s(self) -> float:
        """End-to-end throughput: read once, encode with every encoder."""
        return self.images / max(self.read_s + sum(self.encode_s.values()), 1e-9)

    def encoder_images_per_s(self, name: str) -> float:
        return self.images / max(self.encode_s[name], 1e-9)


def embed_catalogue(
    source: ImageSource,
    encoders: Mapping[str, ImageEncoder],
    chunk: int = CHUNK,
    progress: Progress | None = None,
) -> tuple[dict[str, np.ndarray], EmbedStats]:
    """Embed every image of ``source`` with every encoder, ``chunk`` images at a time.

    Memory is the embeddings plus one chunk of pixels, whatever the catalogue size.
    """
    n = len(source)
    out = {name: np.empty((n, enc.dim), dtype=np.float32) for name, enc in encoders.items()}
    encode_s = dict.fromkeys(encoders, 0.0)
    read_s, done = 0.0, 0
    it = source.chunks(chunk)
    while True:
        t0 = time.perf_counter()
        images = next(it, None)
        read_s += time.perf_counter() - t0
        if images is None:
            break
        for name, enc in encoders.items():
            t0 = time.perf_counter()
            out[name][done : done + len(images)] = enc.encode(images)
            encode_s[name] += time.perf_counter() - t0
        done += len(images)
        if done * LOG_EVERY // n != (done - len(images)) * LOG_EVERY // n:
            log.info("embedded %d / %d images (%.0f images/s)", done, n,
                     done / max(read_s + sum(encode_s.values()), 1e-9))  # fmt: skip
        if progress is not None:
            progress("embedding the catalogue", done, n)
    if done != n:
        raise RuntimeError(f"image source yielded {done} images, expected {n}")
    stats = EmbedStats(n, read_s, encode_s)
    log.info("embedded %d images with %d encoders: %.0f images/s end to end", n, len(encoders),
             stats.images_per_s)  # fmt: skip
    return out, stats


def exact_search(
    base: np.ndarray, queries: np.ndarray, k: int, batch: int = 256
) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-``k`` by inner product, ``batch`` queries at a time: ``(scores, positions)``.

    Brute force over ``base`` itself (no index is built, nothing is copied), so it fits wherever
    the embeddings do.
    """
    xb = np.ascontiguousarray(base, dtype=np.float32)
    xq = np.ascontiguousarray(queries, dtype=np.float32)
    k = min(k, len(xb))
    scores = np.empty((len(xq), k), dtype=np.float32)
    pos = np.empty((len(xq), k), dtype=np.int64)
    for start in range(0, len(xq), batch):
        d, i = faiss.knn(xq[start : start + batch], xb, k, metric=faiss.METRIC_INNER_PRODUCT)
        scores[start : start + batch], pos[start : start + batch] = d, i
    return scores, pos


def exact_search_ms(base: np.ndarray, queries: np.ndarray, k: int, n: int = 100) -> float:
    """Mean ms of one exact query at a time (as a server sends them), over ``n`` queries."""
    q = queries[:n]
    if len(q) == 0:
        return float("nan")
    exact_search(base, q[:1], k)  # warm-up
    t0 = time.perf_counter()
    for i in range(len(q)):
        exact_search(base, q[i : i + 1], k)
    return (time.perf_counter() - t0) * 1000.0 / len(q)
