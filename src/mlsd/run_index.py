"""The runs of a folder, side by side: what ``mlsd runs [DIR]`` lists and ``--html`` publishes.

A run directory is recognised by the ``.mlsd-run`` marker the runner writes, next to a
``metrics.json``; hidden folders (a run still being written, ``.name.tmp-PID``) and a run's own
sub-folders are not searched. Each run is read into a :class:`RunSummary`: the system, scale,
seed, data source, the chosen model, the headline metric, the online A/B decision and the date.

The headline metric of a system is the first of its framing's offline metrics
(``metrics.json``'s ``framing.offline_metrics``) found among the chosen model's figures, on the
test split (a path through ``validation``, ``slices`` or ``segments`` is used only when nothing
else matches). ``@k`` in a framing's name matches any cut-off (``recall@k`` finds ``recall@10``).

Nothing here imports MLflow: the index reads the run directories themselves.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mlsd.artifacts import METRICS, RUN_MARKER, read_run_marker

log = logging.getLogger(__name__)

#: Path segments that mark a figure other than the chosen model's headline on the test split.
_SECONDARY = re.compile(r"^(validation.*|slices?|segments?|train.*|per_.*|by_.*|days?|history)$")


class RunIndexError(ValueError):
    """A run directory whose ``metrics.json`` cannot be read (the message names the file)."""


@dataclass(frozen=True)
class Headline:
    """One figure that stands for a run: ``metric`` is the path inside a model's metrics
    (``offline.ndcg@10``), ``values`` that figure for every model that has it."""

    metric: str
    values: Mapping[str, float]


@dataclass(frozen=True)
class RunSummary:
    """One run directory, as the index shows it."""

    path: Path
    system: str
    scale: str
    seed: int | None
    data: str
    engine: str
    run_id: str | None
    created: str  # ISO 8601, UTC
    chosen_model: str | None
    headline: Headline | None
    ab_decision: str | None
    ab_lift: float | None  # the primary online metric's relative lift, when an A/B test ran
    total_seconds: float | None
    models: tuple[str, ...] = field(default=())

    @property
    def headline_value(self) -> float | None:
        if self.headline is None or self.chosen_model is None:
            return None
        return self.headline.values.get(self.chosen_model)


# ---- reading one run -------------------------------------------------------------------------
def read_metrics(run_dir: Path) -> dict[str, Any]:
    """``run_dir/metrics.json`` as a dict, or :class:`RunIndexError` naming the file."""
    path = Path(run_dir) / METRICS
    try:
        metrics = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise RunIndexError(f"{path}: cannot read ({exc.strerror or exc})") from None
    except json.JSONDecodeError as exc:
        raise RunIndexError(f"{path}:{exc.lineno}: not JSON ({exc.msg})") from None
    if not isinstance(metrics, dict):
        raise RunIndexError(f"{path}: expected a JSON object, got {type(metrics).__name__}")
    return metrics


def data_label(metrics: Mapping[str, Any]) -> str:
    """``world`` for a simulated world, else ``FORMAT:PATH`` (or what the data step recorded)."""
    data = metrics.get("data")
    if not isinstance(data, Mapping):
        return "world"
    source = str(data.get("source", "world"))
    if source.startswith("world"):  # "world", "world (tiny, seed 0)"
        return "world"
    fmt, path = data.get("format"), data.get("path")
    if fmt and path:
        return f"{fmt}:{path}"
    return str(path or fmt or source)


def engine_label(metrics: Mapping[str, Any]) -> str:
    """Where the heavy steps ran: ``metrics.json``'s ``engine`` (a name, or a mapping with a
    ``name``), ``local`` (in-process) when the run does not say."""
    engine = metrics.get("engine")
    if isinstance(engine, Mapping):
        engine = engine.get("name")
    return str(engine) if engine else "local"


def ab_result(metrics: Mapping[str, Any]) -> tuple[str | None, float | None]:
    """The online experiment's decision and its primary metric's relative lift (either None
    when the run has no A/B test); ``skipped`` when the run recorded the online step as
    skipped."""
    online = metrics.get("online")
    for node in _mappings(online):
        decision = node.get("decision")
        if isinstance(decision, str):
            tests = node.get("tests")
            primary = node.get("primary_metric")
            lift = None
            if isinstance(tests, Mapping) and isinstance(tests.get(primary), Mapping):
                value = tests[primary].get("relative_lift")
                lift = float(value) if _is_number(value) else None
            return decision, lift
    skipped = metrics.get("skipped")
    if isinstance(skipped, list) and any(
        isinstance(s, Mapping) and "online" in str(s.get("step", "")) for s in skipped
    ):
        return "skipped", None
    return None, None


def headline_of(metrics: Mapping[str, Any]) -> Headline | None:
    """The system's headline figure for every model (see the module docstring), or None."""
    models = metrics.get("models")
    if not isinstance(models, Mapping) or not models:
        return None
    framing = metrics.get("framing")
    wanted = framing.get("offline_metrics") if isinstance(framing, Mapping) else None
    if not isinstance(wanted, list):
        return None
    chosen = metrics.get("chosen_model")
    reference = models.get(chosen) if isinstance(chosen, str) else None
    if not isinstance(reference, Mapping):
        reference = next((m for m in models.values() if isinstance(m, Mapping)), None)
    if reference is None:
        return None
    leaves = list(numeric_leaves(reference))
    for name in wanted:
        path = _best_path(str(name), leaves)
        if path is None:
            continue
        values = {}
        for model, figures in models.items():
            value = _lookup(figures, path)
            if value is not None:
                values[str(model)] = value
        shown = path[1:] if path[0] == "offline" and len(path) > 1 else path
        return Headline(".".join(shown), values)
    return None


def summarise_run(run_dir: Path) -> RunSummary:
    """Read one run directory (marker and ``metrics.json``) into a :class:`RunSummary`."""
    run_dir = Path(run_dir)
    metrics = read_metrics(run_dir)
    marker = read_run_marker(run_dir) or {}
    created = marker.get("created")
    if not isinstance(created, str):
        mtime = (run_dir / METRICS).stat().st_mtime
        created = datetime.fromtimestamp(mtime, UTC).isoformat(timespec="seconds")
    seed = metrics.get("seed")
    chosen = metrics.get("chosen_model")
    decision, lift = ab_result(metrics)
    total = metrics.get("total_seconds")
    models = metrics.get("models")
    return RunSummary(
        path=run_dir,
        system=str(metrics.get("system") or marker.get("system") or "?"),
        scale=str(metrics.get("scale", "?")),
        seed=int(seed) if isinstance(seed, int) and not isinstance(seed, bool) else None,
        data=data_label(metrics),
        engine=engine_label(metrics),
        run_id=str(metrics.get("run_id") or marker.get("run_id") or "") or None,
        created=created,
        chosen_model=str(chosen) if chosen else None,
        headline=headline_of(metrics),
        ab_decision=decision,
        ab_lift=lift,
        total_seconds=float(total) if isinstance(total, int | float) else None,
        models=tuple(str(m) for m in models) if isinstance(models, Mapping) else (),
    )


# ---- a folder of runs ------------------------------------------------------------------------
def find_runs(root: Path) -> list[Path]:
    """Every run directory under ``root`` (``root`` itself included), sorted by path: a folder
    with the ``.mlsd-run`` marker and a ``metrics.json``. Hidden folders are not searched, nor
    the inside of a run."""
    root = Path(root)
    if not root.is_dir():
        raise RunIndexError(f"{root}: not a directory")
    found: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root):
        if RUN_MARKER in filenames and METRICS in filenames:
            found.append(Path(dirpath))
            dirnames.clear()  # a run's own folders hold no runs
            continue
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
    return sorted(found)


def scan_runs(root: Path) -> tuple[list[RunSummary], list[str]]:
    """The summaries of the runs under ``root`` (newest first within a system, systems by
    name) and one message per run directory that could not be read."""
    runs: list[RunSummary] = []
    problems: list[str] = []
    for path in find_runs(root):
        try:
            runs.append(summarise_run(path))
        except RunIndexError as exc:
            log.warning("%s", exc)
            problems.append(str(exc))
    runs.sort(key=lambda r: r.created, reverse=True)
    runs.sort(key=lambda r: r.system)
    return runs, problems


def by_system(runs: Sequence[RunSummary]) -> dict[str, list[RunSummary]]:
    grouped: dict[str, list[RunSummary]] = {}
    for run in runs:
        grouped.setdefault(run.system, []).append(run)
    return grouped


# ---- helpers ---------------------------------------------------------------------------------
def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def numeric_leaves(obj: Any, prefix: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    """Every number inside nested mappings and lists, with its path (list items by index);
    booleans count as numbers (1 and 0), strings and nulls do not."""
    if isinstance(obj, Mapping):
        for key, value in obj.items():
            yield from numeric_leaves(value, (*prefix, str(key)))
    elif isinstance(obj, list | tuple):
        for i, value in enumerate(obj):
            yield from numeric_leaves(value, (*prefix, str(i)))
    elif isinstance(obj, bool | int | float):
        yield prefix, obj


def _mappings(obj: Any) -> Iterator[Mapping[str, Any]]:
    """``obj`` and the mappings nested in it, breadth first."""
    queue = [obj]
    while queue:
        node = queue.pop(0)
        if isinstance(node, Mapping):
            yield node
            queue.extend(v for v in node.values() if isinstance(v, Mapping))


#: Standard spellings of a framing's metric name and the key that holds it (COCO's mAP@.5).
_ALIASES = {"map@.5": "map50", "map@[.5:.95]": "map"}


def _best_path(name: str, leaves: list[tuple[tuple[str, ...], Any]]) -> tuple[str, ...] | None:
    base = name.split()[0].lower() if name.split() else ""
    base = _ALIASES.get(base, base)
    if not base:
        return None
    if "@k" in base:
        pattern = re.compile(re.escape(base).replace("@k", r"@\d+") + "$")
    else:
        pattern = re.compile(rf"(mean_)?{re.escape(base)}$")
    matches = [
        path
        for path, value in leaves
        if path and not isinstance(value, bool) and pattern.fullmatch(path[-1].lower())
    ]
    if not matches:
        return None
    return min(matches, key=lambda p: (any(_SECONDARY.match(s) for s in p[:-1]), len(p)))


def _lookup(obj: Any, path: tuple[str, ...]) -> float | None:
    for key in path:
        if not isinstance(obj, Mapping) or key not in obj:
            return None
        obj = obj[key]
    if not _is_number(obj) or (isinstance(obj, float) and not math.isfinite(obj)):
        return None
    return float(obj)
