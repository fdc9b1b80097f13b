"""Benchmarks of mlsd's hot paths: serving latency and training throughput.

Run them with ``make bench`` (``python -m benchmarks.run``). Each module ``bench_<name>.py``
exposes ``run(quick: bool) -> BenchResult``; the runner writes every result, with a description
of the machine, to ``benchmarks/results/<name>.json`` and logs a short table. Benchmarks measure
and report; they never assert (timings on a shared 2-core machine are not pass/fail material).
"""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class BenchResult:
    """What one benchmark measured: table rows (one dict per line) and headline numbers."""

    name: str
    description: str
    rows: list[dict[str, Any]] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)


def latency_stats_ms(seconds: list[float] | np.ndarray) -> dict[str, float]:
    """p50 / p90 / p99 / mean of a list of durations in seconds, reported in milliseconds."""
    ms = np.asarray(seconds, dtype=np.float64) * 1000.0
    if ms.size == 0:
        raise ValueError("no timings to summarise")
    return {
        "p50_ms": float(np.percentile(ms, 50)),
        "p90_ms": float(np.percentile(ms, 90)),
        "p99_ms": float(np.percentile(ms, 99)),
        "mean_ms": float(ms.mean()),
        "n": int(ms.size),
    }


def machine_info() -> dict[str, Any]:
    """Where the numbers were taken: they mean little without it."""
    import torch

    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "numpy": np.__version__,
    }
