"""The simulated world: why every system ships one, and the protocol they share.

No dataset can be downloaded at run time, and a static log cannot answer the online half of the
book (A/B tests, feedback loops, drift). A world has entities with latent structure, a behaviour
model with the effects the chapter discusses, a logging policy, and ground truth, so every offline
metric can be shown next to the best achievable value. Worlds are deterministic by seed.
"""

from __future__ import annotations

from collections.abc import Iterator
from enum import StrEnum
from typing import Protocol, runtime_checkable

import pandas as pd


class Scale(StrEnum):
    """How big a world to build: tests use TINY, the demo SMALL."""

    TINY = "tiny"
    SMALL = "small"
    MEDIUM = "medium"
    LARGE = "large"


@runtime_checkable
class World(Protocol):
    """What the runner and the online experiments need of any world."""

    seed: int
    scale: Scale

    def iter_log(self) -> Iterator[pd.DataFrame]:
        """The logged events under the logging policy, in time order, one chunk (day) at a time."""
        ...
