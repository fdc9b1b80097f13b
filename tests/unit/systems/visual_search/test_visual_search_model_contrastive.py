"""The contrastive CNN: seeded initialisation, InfoNCE, its pair sampler and augmentation."""

from __future__ import annotations

import numpy as np
import torch

from mlsd.systems.visual_search.model_contrastive import (
    augment,
    empty_convnet,
    info_nce,
    new_convnet,
    sample_pairs,
    train_info_nce,
)


def test_new_convnet_is_seeded_by_its_generator_only() -> None:
    torch.manual_seed(0)
    state = torch.random.get_rng_state()
    a = new_convnet(4, 8, torch.Generator().manual_seed(1))
    b = new_convnet(4, 8, torch.Generator().manual_seed(1))
    c = new_convnet(4, 8, torch.Generator().manual_seed(2))
    assert torch.equal(torch.random.get_rng_state(), state)  # the global generator is untouched
    for (name, pa), pb in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        assert torch.equal(pa, pb), name
    assert not torch.equal(a.head.weight, c.head.weight)
    x = torch.rand(2, 3, 16, 16) - 0.5
    assert a.eval()(x).shape == (2, 8)
    # PyTorch's default scale: Kaiming-uniform with a = sqrt(5) is U(±1/sqrt(fan_in))
    assert float(a.head.weight.detach().abs().max()) <= 1 / np.sqrt(a.head.in_features) + 1e-6
    empty = empty_convnet(4, 8)
    empty.load_state_dict(a.state_dict())
    torch.testing.assert_close(empty.eval()(x), a(x))


def test_train_info_nce_records_every_step_and_is_deterministic() -> None:
    x = np.random.default_rng(0).integers(0, 255, size=(12, 16, 16, 3), dtype=np.uint8)
    groups = np.arange(12) // 2
    runs = []
    for _ in range(2):
        net = new_convnet(4, 8, torch.Generator().manual_seed(0))
        history = train_info_nce(
            net, x, groups, steps=5, batch_size=6, lr=1e-2, temperature=0.1, seed=3
        )
        runs.append((history.step_loss, net.state_dict()))
    assert len(runs[0][0]) == 5 and runs[0][0] == runs[1][0]
    weights = zip(runs[0][1].values(), runs[1][1].values(), strict=True)
    assert all(torch.equal(a, b) for a, b in weights)


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
