"""Every system's engine work gives the same result on Ray as on the local engine (issue #15).

For each running system, a tiny run of its own pipeline is recorded up to the first step that
uses its engine (:func:`mlsd.engine_record.capture`: world generation by day, batch scoring,
embedding, blurring, classification, candidate generation); every recorded call is then
replayed on a 2-CPU Ray instance (started once for the module) and its results compared with
the local ones: exactly for data (logs, frames, ids, counts), and within 1e-5 relative for
floating-point scores (Ray's workers run PyTorch and BLAS on one thread, the driver on more, so
sums may be added in another order). A Scale section is then built from the Ray run's measured
jobs. Slow (each capture is a tiny run of the system's steps before its engine step).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from mlsd.engine import Engine
from mlsd.engine_record import capture
from mlsd.systems import SYSTEMS

pytest.importorskip("ray")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.xdist_group("ray"),
    pytest.mark.filterwarnings("ignore::DeprecationWarning:ray.*"),
]

#: Systems whose first engine step generates the world: compared bit for bit.
EXACT = {"ad-click", "video-search"}
RTOL = 1e-5
#: The parts of a shard's result that are data: a shard that also reports its own timings
#: (visual-search's chunks: count, embeddings, seconds per encoder) is compared without them.
DATA_PART: dict[str, Callable[[Any], Any]] = {"visual-search": lambda r: r[:2]}


def assert_same(a: Any, b: Any, exact: bool, where: str = "result") -> None:
    """``a`` equals ``b`` all the way down (floats within :data:`RTOL` unless ``exact``)."""
    rtol = 0.0 if exact else RTOL
    if isinstance(a, pd.DataFrame):
        assert isinstance(b, pd.DataFrame), where
        pd.testing.assert_frame_equal(a, b, check_exact=exact, rtol=max(rtol, 1e-12))
    elif isinstance(a, pd.Series):
        pd.testing.assert_series_equal(a, b, check_exact=exact, rtol=max(rtol, 1e-12))
    elif isinstance(a, np.ndarray):
        assert isinstance(b, np.ndarray) and a.shape == b.shape and a.dtype == b.dtype, where
        if a.dtype.kind == "f" and not exact:
            np.testing.assert_allclose(a, b, rtol=rtol, atol=1e-6, err_msg=where)
        else:
            np.testing.assert_array_equal(a, b, err_msg=where)
    elif isinstance(a, dict):
        assert isinstance(b, dict) and list(a) == list(b), where
        for k in a:
            assert_same(a[k], b[k], exact, f"{where}[{k!r}]")
    elif isinstance(a, list | tuple):
        assert type(a) is type(b) and len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_same(x, y, exact, f"{where}[{i}]")
    elif dataclasses.is_dataclass(a) and not isinstance(a, type):
        assert type(a) is type(b), where
        for f in dataclasses.fields(a):
            assert_same(getattr(a, f.name), getattr(b, f.name), exact, f"{where}.{f.name}")
    elif isinstance(a, float) and not exact:
        assert b == pytest.approx(a, rel=rtol, abs=1e-9), where
    else:
        assert a == b, where


@pytest.mark.parametrize("system", sorted(SYSTEMS))
def test_the_engine_work_of_each_system_is_the_same_on_ray(
    system: str, ray_engine: Engine, tmp_path: Path
) -> None:
    calls = capture(system, tmp_path)
    assert any(c.items for c in calls), f"{system}: the engine step ran no shard"
    before = len(ray_engine.jobs)
    part = DATA_PART.get(system, lambda r: r)
    for call in calls:
        on_ray = [part(r) for r in call.replay(ray_engine)]
        local = [part(r) for r in call.results]
        assert_same(local, on_ray, system in EXACT, f"{system}: {call.name}")
    ran = ray_engine.jobs[before:]
    assert [j.name for j in ran] == [c.name for c in calls]
    assert all(j.core_seconds > 0 for j in ran if j.shards)


def test_mlsd_run_on_ray_completes_and_records_its_engine(
    ray_engine: Engine, tmp_path: Path
) -> None:
    """``mlsd run ... --engine ray`` end to end (the module's Ray instance is used as it is):
    the run's metrics name the engine, its tasks and the Scale section's Ray figures."""
    import json
    import re

    from typer.testing import CliRunner

    from mlsd.cli import app

    ray_engine.start()
    out = tmp_path / "run"
    args = ["run", "people-you-may-know", "--engine", "ray", "--scale", "tiny", "--out", str(out)]
    result = CliRunner().invoke(app, [*args, "--skip", "eda,efficiency,tradeoffs,canary"])
    assert result.exit_code == 0, result.output
    m = json.loads((out / "metrics.json").read_text())
    assert m["engine"]["name"] == "ray" and sum(m["engine"]["tasks_by_node"].values()) > 0
    (step,) = m["scale_out"]["steps"].values()
    assert m["scale_out"]["engine"] == "ray" and step["per_core_per_s"] > 0
    assert re.search(r"^## \d+\. Scale$", (out / "blueprint.md").read_text(), re.M)
