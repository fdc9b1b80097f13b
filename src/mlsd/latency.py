"""Step 6 of the book, serving: timing on a shared machine and the latency rule.

A p99 taken once on a busy machine is noise. Every comparison of mlsd times its contenders in
*interleaved rounds* (each round times every contender once, so a burst of load hits them all
alike) and judges each by the median over rounds, with the spread of the round p99s and the
machine's load recorded beside the figures. The rule that picks what to serve is the chapter's:
the most accurate contender whose p99 meets the budget; when none does, the most accurate one,
flagged.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
import pandas as pd

from mlsd import metrics as mm

Timer = Callable[[], np.ndarray]  # one round: latency samples in ms
Block = TypeVar("Block")


def time_calls(call: Callable[[], object], n: int, warmup: int = 3) -> np.ndarray:
    """Latency in ms of ``n`` calls of ``call`` (after ``warmup`` calls that are not counted)."""
    if n < 1:
        raise ValueError(f"time_calls: n must be >= 1, got {n}")
    for _ in range(warmup):
        call()
    samples = np.empty(n)
    for j in range(n):
        t0 = time.perf_counter()
        call()
        samples[j] = (time.perf_counter() - t0) * 1e3
    return samples


def time_blocks(
    score: Callable[[Block], object], blocks: Sequence[Block], warmup: int
) -> np.ndarray:
    """Latency in ms of ``score`` on each request block, the first ``warmup`` blocks not
    counted (each block is one request: a different sample of candidates every time)."""
    if len(blocks) <= warmup:
        raise ValueError(f"time_blocks: {len(blocks)} blocks leave none after {warmup} warm-up")
    samples = np.empty(len(blocks) - warmup)
    for j, block in enumerate(blocks):
        t0 = time.perf_counter()
        score(block)
        if j >= warmup:
            samples[j - warmup] = (time.perf_counter() - t0) * 1e3
    return samples


def row_blocks(X: pd.DataFrame, k: int, n: int, draw: np.random.Generator) -> list[pd.DataFrame]:
    """``n`` requests of ``k`` candidate rows each, drawn with replacement from ``X``."""
    return [X.iloc[draw.integers(0, len(X), k)].reset_index(drop=True) for _ in range(n)]


def in_rounds(timers: Mapping[str, Timer], rounds: int) -> dict[str, dict[str, float]]:
    """Time every contender in ``rounds`` interleaved rounds and summarise each by the median
    over rounds of p50, p99 and mean, with the spread of the round p99s (``p99_min``,
    ``p99_max``): one slow round moves no decision."""
    if rounds < 1:
        raise ValueError(f"in_rounds: rounds must be >= 1, got {rounds}")
    per_round: dict[str, list[dict[str, float]]] = {name: [] for name in timers}
    for _ in range(rounds):
        for name, timer in timers.items():
            per_round[name].append(mm.latency_summary(timer()))
    out: dict[str, dict[str, float]] = {}
    for name, summaries in per_round.items():
        p99s = [r["p99"] for r in summaries]
        out[name] = {k: float(np.median([r[k] for r in summaries])) for k in ("p50", "p99", "mean")}
        out[name] |= {"p99_min": float(min(p99s)), "p99_max": float(max(p99s))}
    return out


def machine_load() -> dict[str, float]:
    """The 1-minute load average against the cores: what the latencies were measured under."""
    cores = float(os.cpu_count() or 1)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return {"load_1m": float(load), "cores": cores, "load_per_core": float(load / cores)}


@dataclass(frozen=True)
class Choice:
    """What the latency rule serves under one budget: ``chosen`` is None when nothing fits
    (``fallback`` is then the most accurate contender, which a run serves and flags)."""

    budget_ms: float
    chosen: str | None
    fallback: str
    eligible: tuple[str, ...]

    @property
    def served(self) -> str:
        return self.chosen if self.chosen is not None else self.fallback


def choose_within_budget(
    accuracy: Mapping[str, float],
    p99_ms: Mapping[str, float],
    budget_ms: float,
    *,
    higher_is_better: bool,
) -> Choice:
    """The chapter's rule: the most accurate contender whose p99 is at most ``budget_ms``.

    ``accuracy`` and ``p99_ms`` name the same contenders; ties in accuracy go to the faster one.
    """
    names = list(accuracy)
    missing = [n for n in names if n not in p99_ms]
    if not names or missing:
        raise ValueError(f"choose_within_budget: no latency for {missing or 'any contender'}")
    sign = -1.0 if higher_is_better else 1.0

    def key(name: str) -> tuple[float, float]:
        return (sign * float(accuracy[name]), float(p99_ms[name]))

    eligible = tuple(sorted((n for n in names if p99_ms[n] <= budget_ms), key=key))
    return Choice(budget_ms, eligible[0] if eligible else None, min(names, key=key), eligible)


def close_calls(p99_ms: Mapping[str, float], budget_ms: float, margin: float) -> list[str]:
    """The contenders whose p99 lies within ``margin`` (a share) of the budget."""
    return [n for n, p in p99_ms.items() if abs(p - budget_ms) <= margin * budget_ms]
