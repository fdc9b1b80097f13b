"""A finished run directory, logged as an MLflow run (``mlsd run ... --track``).

What goes in, all read from the run directory (nothing from the steps' objects):

* parameters: ``system``, ``scale``, ``seed``, ``data`` (``world`` or ``FORMAT:PATH``),
  ``engine``, and the command line that reproduces the run;
* metrics: every number of ``metrics.json`` (booleans as 1 and 0), one MLflow metric each, the
  JSON path joined with dots. A model's figures carry the model's name as their prefix
  (``models.lightgbm.nce`` is logged as ``lightgbm/nce``), every other section its own name
  (``oracle/nce``, ``online/tests.ctr.p_value``, ``steps/models.seconds``, the step timings),
  so MLflow's UI groups them by model and by section. Characters MLflow refuses in a key are
  replaced (``ndcg@10`` becomes ``ndcg_at_10``); ``tracking.json`` among the artifacts maps
  every logged key back to its place in ``metrics.json``;
* artifacts: ``blueprint.md``, ``blueprint.html``, ``metrics.json`` and ``figures/`` under
  ``blueprint/``; the served model (the run's ``artifacts/`` folder) under ``served_model/``,
  files larger than ``max_file_mb`` left out and named in the ``mlsd.artifacts_left_out`` tag;
* tags: ``mlsd.chosen_model``, ``mlsd.ab_decision``, ``mlsd.headline`` and ``mlsd.run_id``,
  ``mlsd.run_dir``; the MLflow run is named after the run directory.

Each system is one MLflow experiment (``mlsd/<system>``), so the UI compares a system's runs
side by side. With a ``sqlite:///PATH`` store the artifacts go to ``mlartifacts/`` beside the
database file. MLflow takes seconds to import, so it is imported inside :func:`track_run` only:
``mlsd run`` without ``--track`` (or ``MLSD_TRACKING_URI``) never loads it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlsd.artifacts import ARTIFACTS, METRICS, read_run_marker
from mlsd.run_index import (
    RunIndexError,
    RunSummary,
    numeric_leaves,
    read_metrics,
    summarise_run,
)

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

log = logging.getLogger(__name__)

DEFAULT_TRACKING_URI = "sqlite:///runs/mlflow.db"
EXPERIMENT_PREFIX = "mlsd/"
BLUEPRINT_FILES = ("blueprint.md", "blueprint.html", METRICS)
_BATCH = 1000  # MLflow's limit of entities per log_batch call
_KEY_LIMIT = 250  # MLflow's longest metric key
_BAD_KEY_CHARS = re.compile(r"[^\w.\- ]")


class TrackingError(RuntimeError):
    """The run could not be logged (MLflow missing, the store unreachable, a bad run dir)."""


@dataclass(frozen=True)
class TrackedRun:
    """What :func:`track_run` logged, and where."""

    tracking_uri: str
    experiment: str
    mlflow_run_id: str
    params: Mapping[str, str]
    tags: Mapping[str, str]
    metrics: Mapping[str, float]  # MLflow key -> value
    keys: Mapping[str, str]  # MLflow key -> path in metrics.json
    artifacts: Sequence[str]  # paths inside the MLflow run's artifact root
    left_out: Sequence[str] = field(default=())
    seconds: float = 0.0


# ---- what is logged: pure functions over metrics.json ----------------------------------------
def metric_items(metrics: Mapping[str, Any]) -> dict[str, tuple[str, float]]:
    """Every number of ``metrics`` as ``{mlflow_key: (json_path, value)}`` (see the module
    docstring for the key layout). Keys are unique: a key that cleaning made collide with
    another gets a numeric suffix."""
    out: dict[str, tuple[str, float]] = {}
    for path, value in numeric_leaves(metrics):
        if path[0] == "models" and len(path) > 2:
            # a model named like a section (oracle, data...) keeps its models. prefix
            clash = path[1] in metrics and path[1] != "models"
            group, rest = (f"models.{path[1]}" if clash else path[1]), path[2:]
        elif len(path) > 1:
            group, rest = path[0], path[1:]
        else:
            group, rest = "", path
        key = _clean_key(group, rest)
        unique, n = key, 1
        while unique in out:
            n += 1
            unique = f"{key}_{n}"
        out[unique] = (".".join(path), float(value))
    return out


def run_params(summary: RunSummary) -> dict[str, str]:
    """The run's parameters: system, scale, seed, data, engine and the command line."""
    source = "--scale " + summary.scale if summary.data == "world" else "--data " + summary.data
    return {
        "system": summary.system,
        "scale": summary.scale,
        "seed": "" if summary.seed is None else str(summary.seed),
        "data": summary.data,
        "engine": summary.engine,
        "command": f"mlsd run {summary.system} {source} --seed {summary.seed}",
    }


def run_tags(summary: RunSummary) -> dict[str, str]:
    """The tags: the chosen model, the A/B decision, the headline, the run's id and place."""
    headline = "—"
    if summary.headline is not None and summary.headline_value is not None:
        headline = f"{summary.headline.metric}={summary.headline_value:.6g}"
    return {
        "mlsd.system": summary.system,
        "mlsd.chosen_model": summary.chosen_model or "—",
        "mlsd.ab_decision": summary.ab_decision or "—",
        "mlsd.headline": headline,
        "mlsd.run_id": summary.run_id or "—",
        "mlsd.run_dir": str(summary.path.resolve()),
        "mlsd.created": summary.created,
    }


def experiment_name(system: str) -> str:
    return f"{EXPERIMENT_PREFIX}{system}"


def artifact_root_for(tracking_uri: str) -> str | None:
    """Where a new experiment keeps its artifacts: ``mlartifacts/`` beside a SQLite database
    (so the store and its files travel together); None lets MLflow choose."""
    if not tracking_uri.startswith("sqlite:///"):
        return None
    db = Path(tracking_uri.removeprefix("sqlite:///"))
    return (db.resolve().parent / "mlartifacts").as_uri()


# ---- logging a run ---------------------------------------------------------------------------
def track_run(
    run_dir: Path,
    tracking_uri: str = DEFAULT_TRACKING_URI,
    *,
    engine: str | None = None,
    max_file_mb: float = 512.0,
) -> TrackedRun:
    """Log the finished run in ``run_dir`` to the MLflow store at ``tracking_uri`` and return
    what was logged. ``engine`` names where the heavy steps ran when ``metrics.json`` does not
    say (the CLI passes its settings' engine). The MLflow run is marked FINISHED only when
    everything is in; on an error it is marked FAILED and :class:`TrackingError` says why."""
    started = time.perf_counter()
    run_dir = Path(run_dir).resolve()
    if read_run_marker(run_dir) is None:
        raise TrackingError(f"{run_dir} is not a run directory (no .mlsd-run marker)")
    try:
        metrics = read_metrics(run_dir)
        summary = summarise_run(run_dir)
    except RunIndexError as exc:
        raise TrackingError(str(exc)) from None
    params, tags = run_params(summary), run_tags(summary)
    if engine is not None and "engine" not in metrics:
        params["engine"] = engine
    items = metric_items(metrics)
    try:
        from mlflow.entities import Metric, Param, RunTag
        from mlflow.tracking import MlflowClient
    except ImportError:
        raise TrackingError(
            "MLflow is not installed: pip install 'mlsd[track]' (or leave out --track)"
        ) from None
    _prepare_sqlite_dir(tracking_uri)
    experiment = experiment_name(params["system"])
    try:
        client = MlflowClient(tracking_uri=tracking_uri)
        experiment_id = _experiment_id(client, experiment, artifact_root_for(tracking_uri))
        run_id = client.create_run(experiment_id, run_name=run_dir.name, tags=tags).info.run_id
    except Exception as exc:  # MLflow's own errors, SQLAlchemy's, a server's HTTP errors
        raise TrackingError(f"cannot log to {tracking_uri}: {exc}") from exc
    try:
        now = int(time.time() * 1000)
        entities: list[Any] = [Param(k, v) for k, v in params.items()]
        entities += [Metric(k, v, now, 0) for k, (_, v) in items.items()]
        for chunk in _chunks(entities, _BATCH):
            client.log_batch(
                run_id,
                metrics=[e for e in chunk if isinstance(e, Metric)],
                params=[e for e in chunk if isinstance(e, Param)],
            )
        logged, left_out = _log_files(client, run_id, run_dir, items, max_file_mb)
        if left_out:
            left = ", ".join(left_out)
            client.log_batch(run_id, tags=[RunTag("mlsd.artifacts_left_out", left[:7900])])
        client.set_terminated(run_id, "FINISHED")
    except BaseException as exc:
        client.set_terminated(run_id, "FAILED")
        if isinstance(exc, Exception):
            raise TrackingError(f"logging run {run_id} to {tracking_uri}: {exc}") from exc
        raise
    seconds = time.perf_counter() - started
    log.info(
        "tracked %s as MLflow run %s (experiment %s, %d metrics) in %.1f s",
        run_dir.name,
        run_id,
        experiment,
        len(items),
        seconds,
    )
    return TrackedRun(
        tracking_uri=tracking_uri,
        experiment=experiment,
        mlflow_run_id=run_id,
        params=params,
        tags=tags,
        metrics={k: v for k, (_, v) in items.items()},
        keys={k: p for k, (p, _) in items.items()},
        artifacts=logged,
        left_out=left_out,
        seconds=seconds,
    )


def _log_files(
    client: MlflowClient,
    run_id: str,
    run_dir: Path,
    items: Mapping[str, tuple[str, float]],
    max_file_mb: float,
) -> tuple[list[str], list[str]]:
    logged: list[str] = []
    for name in BLUEPRINT_FILES:
        if (run_dir / name).is_file():
            client.log_artifact(run_id, str(run_dir / name), "blueprint")
            logged.append(f"blueprint/{name}")
    figures = run_dir / "figures"
    if figures.is_dir() and any(figures.iterdir()):
        client.log_artifacts(run_id, str(figures), "blueprint/figures")
        logged += [f"blueprint/figures/{p.name}" for p in sorted(figures.iterdir())]
    with tempfile.TemporaryDirectory() as tmp:
        mapping = Path(tmp) / "tracking.json"
        mapping.write_text(
            json.dumps({k: p for k, (p, _) in items.items()}, indent=1), encoding="utf-8"
        )
        client.log_artifact(run_id, str(mapping), "blueprint")
        logged.append("blueprint/tracking.json")
    left_out: list[str] = []
    served = run_dir / ARTIFACTS
    limit = max_file_mb * 1024 * 1024
    for path in _files(served):
        rel = path.relative_to(served)
        if path.stat().st_size > limit:
            left_out.append(f"{ARTIFACTS}/{rel.as_posix()}")
            continue
        parent = rel.parent.as_posix()
        target = "served_model" if parent == "." else f"served_model/{parent}"
        client.log_artifact(run_id, str(path), target)
        logged.append(f"{target}/{rel.name}")
    if left_out:
        log.warning("left out of MLflow (over %s MB): %s", max_file_mb, ", ".join(left_out))
    return logged, left_out


def _files(root: Path) -> Iterator[Path]:
    if root.is_dir():
        yield from sorted(p for p in root.rglob("*") if p.is_file() and not p.is_symlink())


def _experiment_id(client: MlflowClient, name: str, artifact_root: str | None) -> str:
    found = client.get_experiment_by_name(name)
    if found is not None:
        if found.lifecycle_stage == "deleted":
            client.restore_experiment(found.experiment_id)
        return str(found.experiment_id)
    try:
        return str(client.create_experiment(name, artifact_location=artifact_root))
    except Exception:  # another process created it meanwhile
        found = client.get_experiment_by_name(name)
        if found is None:
            raise
        return str(found.experiment_id)


def _prepare_sqlite_dir(tracking_uri: str) -> None:
    if tracking_uri.startswith("sqlite:///"):
        Path(tracking_uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)


def _clean_key(group: str, rest: Sequence[str]) -> str:
    """``group/rest.joined`` with the characters MLflow refuses replaced, within its length."""
    parts = [_clean_part(p) for p in rest]
    key = ".".join(parts) if not group else f"{_clean_part(group)}/{'.'.join(parts)}"
    if len(key) > _KEY_LIMIT:
        digest = hashlib.sha256(key.encode()).hexdigest()[:8]
        key = f"{key[: _KEY_LIMIT - 9]}_{digest}"
    return key


def _clean_part(part: str) -> str:
    part = _BAD_KEY_CHARS.sub("_", part.replace("@", "_at_")).strip(" ")
    if part in ("", ".", ".."):
        return "_" if part == "" else part.replace(".", "_")
    return part


def _chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]
