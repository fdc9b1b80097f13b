"""Named RNG streams: reproducible by (seed, purpose), independent across purposes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mlsd.rng import rng, seed_of, torch_generator


def test_same_seed_and_purpose_give_the_same_draws() -> None:
    np.testing.assert_array_equal(rng(3, "ab-test").random(8), rng(3, "ab-test").random(8))


def test_purposes_and_seeds_give_different_streams() -> None:
    a = rng(3, "ab-test").random(8)
    assert not np.allclose(a, rng(3, "world/users").random(8))
    assert not np.allclose(a, rng(4, "ab-test").random(8))


def test_streams_do_not_collide_like_offsets_do() -> None:
    # seed + 1 for purpose "x" equals seed for the next run; named streams do not collide
    assert not np.allclose(rng(0, "x").random(4), rng(1, "y").random(4))
    assert seed_of(0, "x") != seed_of(1, "x")


def test_int_seeds_fit_every_library() -> None:
    s = seed_of(123, "lightgbm")
    assert 0 <= s < 2**31 and s == seed_of(123, "lightgbm")


def test_torch_generator_is_seeded_and_leaves_global_state_alone() -> None:
    before = torch.random.get_rng_state()
    a = torch.randn(4, generator=torch_generator(1, "init"))
    b = torch.randn(4, generator=torch_generator(1, "init"))
    assert torch.equal(a, b)
    assert torch.equal(before, torch.random.get_rng_state())


def test_bad_arguments_are_named() -> None:
    with pytest.raises(ValueError, match="purpose"):
        rng(0, "")
    with pytest.raises(ValueError, match="non-negative"):
        rng(-1, "x")
