"""The one hash mixer: splitmix64, checked against a scalar reference."""

from __future__ import annotations

import numpy as np

from mlsd.hashing import GOLDEN, mix64, splitmix64

MASK = (1 << 64) - 1


def _reference(x: int) -> int:
    z = (x + int(GOLDEN)) & MASK
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
    return z ^ (z >> 31)


def test_splitmix64_matches_the_reference() -> None:
    xs = np.array([0, 1, 2, 12345, 2**63, MASK], dtype=np.uint64)
    assert [int(v) for v in splitmix64(xs)] == [_reference(int(x)) for x in xs]


def test_mix64_is_a_bijection_on_a_sample() -> None:
    xs = np.arange(100_000, dtype=np.uint64)
    assert len(np.unique(mix64(xs))) == len(xs)
