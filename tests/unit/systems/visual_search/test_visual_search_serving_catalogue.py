"""Bounded-memory catalogues: embedding in chunks equals embedding everything at once."""

from __future__ import annotations

import numpy as np

from mlsd.systems.visual_search.datasets_split import ArrayImages
from mlsd.systems.visual_search.model import ColorHistogramEncoder, PixelPCAEncoder
from mlsd.systems.visual_search.serving_catalogue import embed_catalogue


def test_embed_catalogue_in_chunks_equals_encoding_everything() -> None:
    images = np.random.default_rng(0).integers(0, 256, size=(23, 8, 8, 3), dtype=np.uint8)
    groups = np.arange(23) % 5
    encoders = {
        "pix": PixelPCAEncoder(n_components=6).fit(images, groups),
        "hist": ColorHistogramEncoder(bins=4, n_components=5).fit(images, groups),
    }
    seen: list[float] = []
    emb, stats = embed_catalogue(
        ArrayImages(images), encoders, chunk=5, progress=lambda _d, done, _t: seen.append(done)
    )
    assert seen == [5, 10, 15, 20, 23]
    for name, enc in encoders.items():
        np.testing.assert_allclose(emb[name], enc.encode(images), atol=1e-6)
    assert stats.images == 23 and set(stats.encode_s) == {"pix", "hist"}
    assert stats.images_per_s > 0
    d = stats.to_dict()
    assert d["images"] == 23 and d["encoders"] == ["pix", "hist"]
