"""The one hash mixer of mlsd: splitmix64's finaliser, vectorised over uint64 arrays.

Feature hashing (:func:`mlsd.features.hash_values`), field-aware re-hashing of ids in the hashed
models, and experiment assignment (:func:`mlsd.experiments.hash_unit`) all mix with it, so a
stable id hashes the same way in every process and on every machine (never Python's ``hash()``,
which is salted per process).
"""

from __future__ import annotations

import numpy as np

GOLDEN = np.uint64(0x9E3779B97F4A7C15)  # 2**64 / golden ratio: splitmix64's increment
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)


def mix64(x: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser: a bijection on uint64 with good avalanche (wrapping arithmetic)."""
    x = x ^ (x >> np.uint64(30))
    x = x * _M1
    x = x ^ (x >> np.uint64(27))
    x = x * _M2
    return x ^ (x >> np.uint64(31))


def splitmix64(x: np.ndarray) -> np.ndarray:
    """One splitmix64 step: add the golden increment, then mix."""
    return mix64(x + GOLDEN)
