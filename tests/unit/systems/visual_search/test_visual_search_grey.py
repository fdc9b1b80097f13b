"""Real-set readiness on small grey images: the written garment set, the grey augmentation
policy, the validation choice of embedding size, and the learned encoder against raw pixels."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import numpy as np
import pytest
import torch

from mlsd.systems.visual_search.datasets import read_dataset
from mlsd.systems.visual_search.datasets_grey import GREY_CLASSES, grey_garments, write_idx
from mlsd.systems.visual_search.features import to_tensor
from mlsd.systems.visual_search.model import CNNEncoder, PixelPCAEncoder
from mlsd.systems.visual_search.model_contrastive import GREY, PHOTO, augment, policy_for
from mlsd.systems.visual_search.model_selection import (
    Candidate,
    choose_on_validation,
    validation_map,
    validation_split,
)
from mlsd.systems.visual_search.model_training import file_train_steps


@pytest.fixture(scope="module")
def garments(tmp_path_factory: pytest.TempPathFactory) -> tuple[np.ndarray, np.ndarray]:
    """30 written garments a class, through the IDX writer and reader (28x28 grey -> 32x32)."""
    images, labels, _ = grey_garments(30, seed=0)
    root = write_idx(tmp_path_factory.mktemp("grey"), images, labels)
    data = read_dataset(f"idx:{root}", image_size=32)
    return data.images, data.labels


def test_grey_garments_are_seeded_varied_and_round_trip_through_idx(
    garments: tuple[np.ndarray, np.ndarray],
) -> None:
    a, la, names = grey_garments(3, seed=1)
    b, lb, _ = grey_garments(3, seed=1)
    assert names == GREY_CLASSES and a.shape == (30, 28, 28) and a.dtype == np.uint8
    assert np.array_equal(a, b) and np.array_equal(la, lb)
    assert not np.array_equal(a, grey_garments(3, seed=2)[0])
    assert not np.array_equal(a[0], a[10])  # two images of one class differ
    images, labels = garments
    assert images.shape == (300, 32, 32, 3) and np.bincount(labels).tolist() == [30] * 10
    assert policy_for(images) == "grey"


def test_write_idx_refuses_mismatched_labels(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="N labels"):
        write_idx(tmp_path, np.zeros((3, 4, 4), np.uint8), np.zeros(2, np.uint8))


def test_grey_policy_keeps_grey_images_grey_and_never_flips() -> None:
    x = torch.rand(6, 1, 16, 16).repeat(1, 3, 1, 1) - 0.5
    grey = augment(x, torch.Generator().manual_seed(0), GREY)
    photo = augment(x, torch.Generator().manual_seed(0), PHOTO)
    assert torch.allclose(grey[:, 0], grey[:, 1]) and torch.allclose(grey[:, 0], grey[:, 2])
    assert not torch.allclose(photo[:, 0], photo[:, 1])  # the photo policy casts colour
    assert not GREY.flip and GREY.colour == 0.0
    assert policy_for(np.zeros((2, 4, 4, 3), np.uint8) + np.array([0, 0, 1], np.uint8)) == "photo"


def test_cnn_refuses_an_unknown_augmentation(garments: tuple[np.ndarray, np.ndarray]) -> None:
    images, labels = garments
    with pytest.raises(ValueError, match="augmentation"):
        CNNEncoder(train_steps=1, augmentation="sepia").fit(images[:8], labels[:8])
    enc = CNNEncoder(dim=8, width=4, train_steps=1, batch_size=8).fit(images[:16], labels[:16])
    assert enc.augmentation_ == "grey"


def test_validation_split_holds_out_images_of_classes_and_whole_products() -> None:
    classes = np.repeat(np.arange(10), 20)
    fit, val = validation_split(classes, seed=0, hold_out="images")
    assert len(np.intersect1d(fit, val)) == 0 and len(fit) + len(val) == 200
    assert len(np.unique(classes[val])) > 5  # images of many classes held out
    products = np.repeat(np.arange(200), 3)
    fit, val = validation_split(products, seed=0, hold_out="groups")
    assert not set(products[fit]) & set(products[val])  # a held-out product is never trained on
    assert len(np.unique(products[val])) == 40
    with pytest.raises(ValueError, match="hold_out"):
        validation_split(products, seed=0, hold_out="rows")  # type: ignore[arg-type]


def test_choose_on_validation_keeps_the_best_and_records_every_candidate(
    garments: tuple[np.ndarray, np.ndarray],
) -> None:
    images, labels = garments
    cands = [
        Candidate(f"pca/{d}", {"dim": d}, partial(PixelPCAEncoder, n_components=d)) for d in (1, 16)
    ]
    choice = choose_on_validation(cands, images, labels, seed=0)
    scores = {r["candidate"]: r["validation_map"] for r in choice.rows}
    assert list(scores) == ["pca/1", "pca/16"]
    assert choice.chosen == max(scores, key=lambda k: scores[k]) == "pca/16"
    assert choice.fit_images + choice.validation_images == len(labels)
    assert choice.metrics()["chosen"] == "pca/16"


def test_file_training_is_longer_on_real_sets_within_the_cap() -> None:
    assert file_train_steps(100, 64, 100, "tiny") == 100  # the scale's count is the floor
    assert file_train_steps(3_000, 128, 300, "small") == 938  # 40 passes over the images
    assert file_train_steps(60_000, 128, 300, "small") == 1_500  # the cap


def test_learned_encoder_beats_raw_pixels_on_grey_garments(
    garments: tuple[np.ndarray, np.ndarray],
) -> None:
    """A tiny version of the benchmark row: half the images train, the other half are scored
    (half queries, half index); 40 contrastive steps already clear raw pixels."""
    images, labels = garments
    train = np.arange(len(labels)) % 2 == 0
    pixels = PixelPCAEncoder(n_components=32).fit(images[train], labels[train])
    cnn = CNNEncoder(dim=32, train_steps=40, batch_size=64).fit(images[train], labels[train])
    map_pixels = validation_map(pixels, images[~train], labels[~train], seed=0)
    map_cnn = validation_map(cnn, images[~train], labels[~train], seed=0)
    assert map_cnn > map_pixels + 0.08, (map_cnn, map_pixels)
    assert to_tensor(images[:1]).shape == (1, 3, 32, 32)
