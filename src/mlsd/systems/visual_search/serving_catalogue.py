"""The indexing pipeline's batch embedding: a catalogue of any size in bounded memory (book ch. 2).

The chapter's indexing pipeline (book ch. 2, "Serving") embeds millions of catalogue images
offline. :func:`embed_catalogue` reads an :class:`~mlsd.systems.visual_search.datasets_split.
ImageSource` one chunk at a time (rendering or decoding it once) and encodes each chunk with
every encoder, so only the embeddings are kept: memory is the embeddings plus one chunk of
pixels, whatever the catalogue size. :class:`EmbedStats` says where the time went.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import numpy as np

from mlsd.engine import Engine, LocalEngine
from mlsd.runner import ProgressFn
from mlsd.systems.visual_search.datasets_split import CHUNK, ImageSource
from mlsd.systems.visual_search.model import ImageEncoder

log = logging.getLogger(__name__)

LOG_EVERY = 20  # log progress this many times per catalogue


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

    def to_dict(self) -> dict[str, object]:
        return {
            "images": self.images,
            "encoders": list(self.encode_s),
            "read_seconds": self.read_s,
            "encode_seconds": dict(self.encode_s),
            "images_per_s": self.images_per_s,
        }


def encode_chunk(
    encoders: Mapping[str, ImageEncoder], images: np.ndarray
) -> tuple[int, dict[str, np.ndarray], dict[str, float]]:
    """One shard of the catalogue: ``images`` embedded by every encoder, and the seconds each
    took (module-level and pure, so an engine can run it anywhere)."""
    out, seconds = {}, {}
    for name, enc in encoders.items():
        t0 = time.perf_counter()
        out[name] = enc.encode(images)
        seconds[name] = time.perf_counter() - t0
    return len(images), out, seconds


def embed_catalogue(
    source: ImageSource,
    encoders: Mapping[str, ImageEncoder],
    chunk: int = CHUNK,
    progress: ProgressFn | None = None,
    engine: Engine | None = None,
) -> tuple[dict[str, np.ndarray], EmbedStats]:
    """Embed every image of ``source`` with every encoder, ``chunk`` images at a time (on
    ``engine``: the chunks in parallel, the embeddings in the catalogue's order)."""
    n = len(source)
    out = {name: np.empty((n, enc.dim), dtype=np.float32) for name, enc in encoders.items()}
    encode_s = dict.fromkeys(encoders, 0.0)
    read_s, done = 0.0, 0

    def chunks() -> Iterator[np.ndarray]:
        nonlocal read_s
        it = source.chunks(chunk)
        while True:
            t0 = time.perf_counter()
            images = next(it, None)
            read_s += time.perf_counter() - t0
            if images is None:
                return
            yield images

    shards = (engine or LocalEngine()).imap(encode_chunk, chunks(), shared=dict(encoders))
    for rows, embedded, seconds in shards:
        for name in encoders:
            out[name][done : done + rows] = embedded[name]
            encode_s[name] += seconds[name]
        done += rows
        if done * LOG_EVERY // n != (done - rows) * LOG_EVERY // n:
            rate = done / max(read_s + sum(encode_s.values()), 1e-9)
            log.info("embedded %d / %d images (%.0f images/s)", done, n, rate)
        if progress is not None:
            progress("embedding the catalogue", done, n)
    if done != n:
        raise RuntimeError(f"image source yielded {done} images, expected {n}")
    stats = EmbedStats(n, read_s, encode_s)
    log.info(
        "embedded %d images with %d encoders: %.0f images/s end to end",
        n,
        len(encoders),
        stats.images_per_s,
    )
    return out, stats
