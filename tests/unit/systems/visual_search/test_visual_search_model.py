"""Encoders: the contract cases they register, seeding, training; the step-4 line-up.

The encoder contract itself (fit returns self, shape, L2-normalised float32, clone, seeded
determinism, save / load) runs in ``tests/contract`` over :func:`model.contract_cases`.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mlsd.contracts import ModelCase
from mlsd.report import Blueprint
from mlsd.systems.visual_search.model import (
    CONTRASTIVE,
    CNNEncoder,
    ImageEncoder,
    PixelPCAEncoder,
    candidate_encoders,
    contract_cases,
    contract_images,
)
from mlsd.systems.visual_search.model_training import compute_models, report_models


@pytest.fixture(scope="module")
def photos() -> tuple[np.ndarray, np.ndarray]:
    return contract_images()


def test_every_encoder_is_under_the_contract() -> None:
    cases = contract_cases()
    assert {c.name for c in cases} == {
        "raw_pixels_pca",
        "color_histogram_pca",
        "untrained_cnn",
        CONTRASTIVE,
    }
    assert all(c.kind == "encoder" for c in cases)
    assert {type(c.make(0)) for c in cases} == {
        type(e) for e in candidate_encoders(0, 1, 8, 1).values()
    }


@pytest.mark.parametrize("case", contract_cases(), ids=lambda c: c.name)
def test_encoders_encode_no_images_to_an_empty_matrix(
    case: ModelCase, photos: tuple[np.ndarray, np.ndarray]
) -> None:
    images, groups = photos
    enc: ImageEncoder = case.make(0).fit(images, groups)
    assert enc.encode(images[:0]).shape == (0, enc.dim)
    np.testing.assert_allclose(enc.encode(images, batch_size=5), enc.encode(images), atol=1e-5)


def test_encode_rejects_wrong_arrays() -> None:
    enc = PixelPCAEncoder(n_components=2)
    with pytest.raises(ValueError, match="uint8"):
        enc.encode(np.zeros((2, 8, 8, 3), np.float32))
    with pytest.raises(ValueError, match="uint8"):
        enc.encode(np.zeros((2, 8, 8), np.uint8))


def test_untrained_cnn_is_seeded_and_leaves_the_global_rng_alone() -> None:
    x = np.random.default_rng(0).integers(0, 255, size=(3, 16, 16, 3), dtype=np.uint8)
    g = np.arange(3)
    torch.manual_seed(123)
    before = torch.random.get_rng_state()
    a = CNNEncoder(dim=8, width=4, train_steps=0, random_state=1).fit(x, g).encode(x)
    b = CNNEncoder(dim=8, width=4, train_steps=0, random_state=1).fit(x, g).encode(x)
    c = CNNEncoder(dim=8, width=4, train_steps=0, random_state=2).fit(x, g).encode(x)
    assert torch.equal(torch.random.get_rng_state(), before)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)


def test_contrastive_training_lowers_the_loss(photos: tuple[np.ndarray, np.ndarray]) -> None:
    images, groups = photos
    enc = CNNEncoder(dim=16, width=8, train_steps=40, batch_size=12, lr=3e-3).fit(images, groups)
    h = enc.history_
    assert len(h) == 40
    assert np.mean(h[-8:]) < np.mean(h[:8]) - 0.1


def test_compute_models_trains_the_line_up(photos: tuple[np.ndarray, np.ndarray]) -> None:
    images, groups = photos
    seen: list[str] = []
    result = compute_models(
        images,
        groups,
        seed=0,
        train_steps=4,
        batch_size=8,
        threads=1,
        progress=lambda desc, done, total: seen.append(desc),
    )
    assert list(result.encoders) == [
        "raw_pixels_pca",
        "color_histogram_pca",
        "untrained_cnn",
        CONTRASTIVE,
    ]
    assert seen == [f"training {n}" for n in result.encoders]
    assert len(result.loss_per_step) == 4
    m = result.metrics()
    assert set(m["models"]) == set(result.encoders)
    assert m["models"][CONTRASTIVE]["class"] == "CNNEncoder"
    assert m["contrastive_training"]["steps"] == 4
    assert m["contrastive_training"]["loss_chance"] == pytest.approx(np.log(8))
    # the untrained CNN is where the trained one started: same seed, same architecture
    untrained, trained = result.encoders["untrained_cnn"], result.encoders[CONTRASTIVE]
    assert untrained.get_params() == {**trained.get_params(), "train_steps": 0, "batch_size": 128}


def test_compute_models_chooses_each_size_on_validation(
    photos: tuple[np.ndarray, np.ndarray],
) -> None:
    images, groups = photos
    result = compute_models(
        images,
        groups,
        seed=0,
        train_steps=3,
        batch_size=8,
        threads=1,
        choose_dims_among=(4, 8),
        hold_out="groups",
    )
    assert set(result.choices) == {"raw_pixels_pca", "color_histogram_pca", CONTRASTIVE}
    for name, choice in result.choices.items():
        assert [r["dim"] for r in choice.rows] == [4, 8]
        chosen = next(r["dim"] for r in choice.rows if r["candidate"] == choice.chosen)
        assert result.encoders[name].dim == chosen
        # whole products held out: 2 of the 12 products, 4 photos each
        assert (choice.fit_images, choice.validation_images) == (40, 8)
    assert result.encoders["untrained_cnn"].dim == result.encoders[CONTRASTIVE].dim
    m = result.metrics()
    assert m["validation_choice"][CONTRASTIVE]["chosen"] == result.choices[CONTRASTIVE].chosen
    assert m["contrastive_training"]["augmentation"] == "photo"
    bp = Blueprint("t")
    report_models(bp, result)
    assert "chosen on a validation split" in bp.to_markdown()
