"""Encoders under one contract; InfoNCE and its pair sampler."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from mlsd.systems.visual_search.contrastive import augment, info_nce, sample_pairs
from mlsd.systems.visual_search.model import (
    CNNEncoder,
    ColorHistogramEncoder,
    ImageEncoder,
    PixelPCAEncoder,
)
from mlsd.systems.visual_search.world import VisualSearchWorld, VisualWorldConfig
from mlsd.world import Scale


@pytest.fixture(scope="module")
def photos() -> tuple[np.ndarray, np.ndarray]:
    cfg = VisualWorldConfig.for_scale(Scale.TINY).with_(
        n_train_products=12, n_eval_products=2, photos_per_product=4
    )
    w = VisualSearchWorld(Scale.TINY, 0, cfg)
    pids, idx = w.catalog("train")
    return w.photos(pids, idx), pids


def encoders() -> list[ImageEncoder]:
    return [
        PixelPCAEncoder(n_components=8),
        ColorHistogramEncoder(bins=4, n_components=8),
        CNNEncoder(dim=8, width=4, train_steps=0),
        CNNEncoder(dim=8, width=4, train_steps=3, batch_size=8),
    ]


@pytest.mark.parametrize("enc", encoders(), ids=lambda e: type(e).__name__)
def test_encoder_contract(
    enc: ImageEncoder, photos: tuple[np.ndarray, np.ndarray], tmp_path: Path
) -> None:
    images, groups = photos
    assert enc.fit(images, groups) is enc
    emb = enc.encode(images, batch_size=7)
    assert emb.shape == (len(images), enc.dim) and emb.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
    enc.save(tmp_path / "enc.pkl")
    again = ImageEncoder.load(tmp_path / "enc.pkl")
    np.testing.assert_allclose(again.encode(images[:5]), emb[:5], atol=1e-5)
    assert enc.encode(images[:0]).shape == (0, enc.dim)


def test_encode_rejects_wrong_arrays() -> None:
    enc = PixelPCAEncoder(n_components=2)
    with pytest.raises(ValueError, match="uint8"):
        enc.encode(np.zeros((2, 8, 8, 3), np.float32))
    with pytest.raises(ValueError, match="uint8"):
        enc.encode(np.zeros((2, 8, 8), np.uint8))


def test_untrained_cnn_is_seeded() -> None:
    x = np.random.default_rng(0).integers(0, 255, size=(3, 16, 16, 3), dtype=np.uint8)
    g = np.arange(3)
    a = CNNEncoder(dim=8, width=4, train_steps=0, random_state=1).fit(x, g).encode(x)
    b = CNNEncoder(dim=8, width=4, train_steps=0, random_state=1).fit(x, g).encode(x)
    c = CNNEncoder(dim=8, width=4, train_steps=0, random_state=2).fit(x, g).encode(x)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)


def test_contrastive_training_lowers_the_loss(photos: tuple[np.ndarray, np.ndarray]) -> None:
    images, groups = photos
    enc = CNNEncoder(dim=16, width=8, train_steps=40, batch_size=12, lr=3e-3).fit(images, groups)
    h = enc.history_
    assert np.mean(h[-8:]) < np.mean(h[:8]) - 0.1


def test_info_nce_perfect_pairs_beat_random() -> None:
    z = torch.eye(4) * 10
    groups = torch.arange(4)
    good = info_nce(z, z, groups, temperature=0.1)
    bad = info_nce(z, z.roll(1, 0), groups, temperature=0.1)
    assert float(good) < 1e-3 < float(bad)


def test_info_nce_masks_same_group_negatives() -> None:
    z = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    same = info_nce(z, z, torch.tensor([0, 0, 1]), temperature=0.1)
    diff = info_nce(z, z, torch.tensor([0, 1, 2]), temperature=0.1)
    assert float(same) < 1e-3 and float(diff) > 0.4  # rows 0 and 1 collide unless masked


def test_sample_pairs_positive_shares_the_group() -> None:
    groups = np.array([0, 0, 1, 1, 1, 2])
    a, p = sample_pairs(groups, 3, np.random.default_rng(0))
    assert (groups[a] == groups[p]).all()
    assert len(set(groups[a].tolist())) == 3  # distinct groups while there are enough
    single = a[groups[a] == 2]
    assert (p[groups[a] == 2] == single).all()  # alone in its group: pairs with itself
    assert (a[groups[a] != 2] != p[groups[a] != 2]).all()


def test_augment_keeps_shape_and_range() -> None:
    x = torch.rand(5, 3, 16, 16) - 0.5
    y = augment(x, torch.Generator().manual_seed(0))
    assert y.shape == x.shape and float(y.abs().max()) <= 0.5
    assert not torch.allclose(x, y)
