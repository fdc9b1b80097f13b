"""Named random streams: one seed per run, one independent stream per purpose.

Every random draw in mlsd comes from a generator made here, never from global seeding and never
from ad-hoc ``seed + 1`` offsets (which collide: two purposes that both add 1 draw the same
numbers). A purpose is a name (``"ab-test"``, ``"world/users"``); the stream is the run's seed
and the name hashed into a :class:`numpy.random.SeedSequence`, so

* the same seed and name always give the same numbers (runs are reproducible);
* different names give statistically independent streams, whatever order they are made in;
* adding a new purpose never changes the draws of an existing one.

Libraries that take an integer seed (LightGBM, FAISS, PyTorch) get :func:`seed_of`.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch

__all__ = ["rng", "seed_of", "seed_sequence", "torch_generator"]


def _name_words(purpose: str) -> list[int]:
    """The purpose as four 32-bit words (blake2b: stable across processes and platforms)."""
    if not purpose:
        raise ValueError("an RNG stream needs a purpose name, e.g. rng(seed, 'ab-test')")
    digest = hashlib.blake2b(purpose.encode("utf-8"), digest_size=16).digest()
    return [int.from_bytes(digest[i : i + 4], "little") for i in range(0, 16, 4)]


def seed_sequence(seed: int, purpose: str) -> np.random.SeedSequence:
    """The seed sequence of stream ``purpose`` of run ``seed``."""
    if seed < 0:
        raise ValueError(f"seeds are non-negative integers, got {seed}")
    return np.random.SeedSequence([int(seed), *_name_words(purpose)])


def rng(seed: int, purpose: str) -> np.random.Generator:
    """A numpy generator for ``purpose``, independent of every other purpose's."""
    return np.random.default_rng(seed_sequence(seed, purpose))


def seed_of(seed: int, purpose: str) -> int:
    """An integer seed in ``[0, 2**31)`` for ``purpose`` (LightGBM, FAISS and torch take ints)."""
    return int(seed_sequence(seed, purpose).generate_state(1, np.uint32)[0] >> 1)


def torch_generator(seed: int, purpose: str) -> torch.Generator:
    """A seeded ``torch.Generator`` for ``purpose`` (torch imported only when asked for)."""
    import torch

    return torch.Generator().manual_seed(seed_of(seed, purpose))
