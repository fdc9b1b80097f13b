"""One router module per system that runs, named after its package.

Each module exposes ``make_served_system(run_dir, settings, load=True) -> ServedSystem``: the
system's routes under ``/v1/<system>/...`` around a :class:`~mlsd.api.deps.ModelSlot` holding
what ``mlsd.systems.<package>.serving.load_scorer`` loaded.
"""

from __future__ import annotations

import importlib
from pathlib import Path

from mlsd.api.deps import ServedSystem
from mlsd.settings import Settings
from mlsd.systems import System


def served_system(
    system: System, run_dir: Path, settings: Settings, load: bool = True
) -> ServedSystem:
    """The router of ``system`` serving ``run_dir`` (loaded now unless ``load`` is false)."""
    module = importlib.import_module(f"mlsd.api.routes.{system.runnable_package()}")
    served: ServedSystem = module.make_served_system(Path(run_dir), settings, load=load)
    return served
