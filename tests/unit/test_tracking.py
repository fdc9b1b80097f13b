"""MLflow tracking: what a run directory becomes in the store, and that ``mlsd run`` without
``--track`` never loads MLflow."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("mlflow", reason="MLflow is not installed (the track extra)")

from mlsd.tracking import TrackingError, artifact_root_for, metric_items, track_run

METRICS: dict[str, Any] = {
    "system": "ad-click",
    "run_id": "feedbeef",
    "scale": "tiny",
    "seed": 7,
    "framing": {"offline_metrics": ["nce"]},
    "data": {"source": "world", "rows": 1234, "ctr_by_position": {"0": 0.03, "1": 0.02}},
    "models": {
        "lightgbm": {"nce": 0.91, "latency_ms": {"p50": 1.5, "p99": 3.25}, "meets_budget": True},
        "dcn_v2": {"nce": 0.89, "ndcg@10": 0.5, "class": "DCN"},
        "oracle": {"nce": 0.5},  # a model named like a section
    },
    "oracle": {"nce": 0.8},
    "chosen_model": "dcn_v2",
    "online": {
        "primary_metric": "ctr",
        "tests": {"ctr": {"relative_lift": 0.1, "p_value": 0.01}},
        "decision": "ship",
    },
    "monitoring": {"psi": [0.01, 0.2]},
    "steps": {"data": {"seconds": 0.5}, "models": {"seconds": 2.0}},
    "skipped": [],
    "total_seconds": 3.0,
}


def numbers(obj: Any, path: tuple[str, ...] = ()) -> dict[str, float]:
    """Every number of a JSON document by its dotted path (written independently of mlsd)."""
    out: dict[str, float] = {}
    if isinstance(obj, dict):
        for k, v in obj.items():
            out.update(numbers(v, (*path, k)))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            out.update(numbers(v, (*path, str(i))))
    elif isinstance(obj, bool | int | float):
        out[".".join(path)] = float(obj)
    return out


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> str:
    """One SQLite store for the module (creating its tables takes seconds)."""
    return f"sqlite:///{tmp_path_factory.mktemp('store')}/mlflow.db"


def make_run(root: Path, metrics: dict[str, Any] = METRICS) -> Path:
    run = root / f"{metrics['system']}-tiny"
    (run / "figures").mkdir(parents=True)
    (run / "artifacts" / "model").mkdir(parents=True)
    marker = {"system": metrics["system"], "run_id": "feedbeef", "created": "2026-12-01T00:00:00"}
    (run / ".mlsd-run").write_text(json.dumps(marker))
    (run / "metrics.json").write_text(json.dumps(metrics))
    (run / "blueprint.md").write_text("# bp\n")
    (run / "blueprint.html").write_text("<h1>bp</h1>")
    (run / "figures" / "drift.png").write_bytes(b"\x89PNG fake")
    (run / "artifacts" / "serving.json").write_text('{"model": "dcn_v2"}')
    (run / "artifacts" / "model" / "weights.pt").write_bytes(b"w" * 4096)
    return run


def test_metric_keys_prefix_models_and_cover_every_number() -> None:
    items = metric_items(METRICS)
    assert {path for path, _ in items.values()} == set(numbers(METRICS))
    assert len(items) == len(numbers(METRICS))
    assert items["lightgbm/nce"] == ("models.lightgbm.nce", 0.91)
    assert items["lightgbm/latency_ms.p99"] == ("models.lightgbm.latency_ms.p99", 3.25)
    assert items["lightgbm/meets_budget"] == ("models.lightgbm.meets_budget", 1.0)
    assert items["dcn_v2/ndcg_at_10"] == ("models.dcn_v2.ndcg@10", 0.5)
    assert items["oracle/nce"] == ("oracle.nce", 0.8)
    assert items["models.oracle/nce"] == ("models.oracle.nce", 0.5)  # no clash with oracle/
    assert items["steps/models.seconds"] == ("steps.models.seconds", 2.0)
    assert items["monitoring/psi.1"] == ("monitoring.psi.1", 0.2)
    assert items["seed"] == ("seed", 7.0)


def test_metric_keys_are_valid_and_unique_even_when_cleaning_collides() -> None:
    from mlflow.utils.validation import _validate_metric_name

    long = "x" * 300
    items = metric_items({"models": {"m": {"a@1": 1, "a_at_1": 2, long: 3, "b/c": 4, "": 5}}})
    assert len(items) == 5
    for key in items:
        _validate_metric_name(key)  # raises on a key MLflow refuses
        assert len(key) <= 250
    assert {items["m/a_at_1"][1], items["m/a_at_1_2"][1]} == {1.0, 2.0}


def test_track_run_logs_params_metrics_tags_and_artifacts(tmp_path: Path, store: str) -> None:
    from mlflow.tracking import MlflowClient

    run_dir = make_run(tmp_path)
    uri = store
    tracked = track_run(run_dir, uri)
    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("mlsd/ad-click")
    assert experiment is not None
    db = Path(store.removeprefix("sqlite:///"))
    assert experiment.artifact_location == (db.parent / "mlartifacts").as_uri()
    [run] = client.search_runs([experiment.experiment_id])
    assert run.info.run_id == tracked.mlflow_run_id and run.info.status == "FINISHED"
    assert run.info.run_name == "ad-click-tiny"
    params = run.data.params
    assert params["system"] == "ad-click" and params["scale"] == "tiny"
    assert params["seed"] == "7" and params["data"] == "world" and params["engine"] == "local"
    logged = run.data.metrics
    assert len(logged) == len(numbers(METRICS))
    expected = numbers(METRICS)
    for key, path in tracked.keys.items():
        assert logged[key] == expected[path], key
    assert logged["dcn_v2/nce"] == 0.89 and logged["steps/data.seconds"] == 0.5
    tags = run.data.tags
    assert tags["mlsd.chosen_model"] == "dcn_v2" and tags["mlsd.ab_decision"] == "ship"
    assert tags["mlsd.run_id"] == "feedbeef" and tags["mlsd.headline"] == "nce=0.89"

    def listed(path: str) -> set[str]:
        return {a.path for a in client.list_artifacts(run.info.run_id, path)}

    assert listed("blueprint") >= {
        "blueprint/blueprint.md",
        "blueprint/blueprint.html",
        "blueprint/metrics.json",
        "blueprint/tracking.json",
        "blueprint/figures",
    }
    assert listed("blueprint/figures") == {"blueprint/figures/drift.png"}
    assert listed("served_model") == {"served_model/serving.json", "served_model/model"}
    got = Path(client.download_artifacts(run.info.run_id, "blueprint/metrics.json", str(tmp_path)))
    assert json.loads(got.read_text()) == METRICS
    # a second run of the same system joins the same experiment
    again = track_run(run_dir, uri, engine="ray")
    assert again.experiment == tracked.experiment and again.params["engine"] == "ray"
    assert len(client.search_runs([experiment.experiment_id])) == 2


def test_files_over_the_limit_are_left_out_and_named(tmp_path: Path, store: str) -> None:
    from mlflow.tracking import MlflowClient

    run_dir = make_run(tmp_path, {**METRICS, "system": "video-rec"})
    uri = store
    tracked = track_run(run_dir, uri, max_file_mb=1 / 1024)  # 1 KiB: the weights are 4 KiB
    assert tracked.left_out == ["artifacts/model/weights.pt"]
    run = MlflowClient(tracking_uri=uri).get_run(tracked.mlflow_run_id)
    assert run.data.tags["mlsd.artifacts_left_out"] == "artifacts/model/weights.pt"
    assert "served_model/model/weights.pt" not in tracked.artifacts


def test_track_run_refuses_what_is_not_a_run(tmp_path: Path) -> None:
    (tmp_path / "metrics.json").write_text("{}")
    with pytest.raises(TrackingError, match=r"no \.mlsd-run marker"):
        track_run(tmp_path, f"sqlite:///{tmp_path}/mlflow.db")
    run = make_run(tmp_path / "x")
    (run / "metrics.json").write_text("{not json")
    with pytest.raises(TrackingError, match=r"metrics\.json:1: not JSON"):
        track_run(run, f"sqlite:///{tmp_path}/mlflow.db")


def test_without_mlflow_the_error_says_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = make_run(tmp_path)
    for name in ("mlflow", "mlflow.entities", "mlflow.tracking"):
        monkeypatch.setitem(sys.modules, name, None)  # import mlflow now raises ImportError
    with pytest.raises(TrackingError, match=r"pip install 'mlsd\[track\]'"):
        track_run(run, f"sqlite:///{tmp_path}/mlflow.db")
    assert not (tmp_path / "mlflow.db").exists()


def test_artifacts_sit_beside_a_sqlite_store() -> None:
    assert artifact_root_for("sqlite:////data/runs/mlflow.db") == "file:///data/runs/mlartifacts"
    assert artifact_root_for("http://mlflow:5000") is None


# the CLI path of `mlsd run`, with a one-step pipeline in place of a system's: does it load
# MLflow? (without --track it must not: importing MLflow costs seconds)
_RUN_CLI = """
import sys
from mlsd import cli
from mlsd.runner import Pipeline, Step

class Result:
    def metrics(self):
        return {"chosen_model": "m", "models": {"m": {"nce": 0.5}}}

def step(ctx, state):
    ctx.blueprint.section("One"); ctx.blueprint.text("hello")
    return Result()

class Info:
    def pipeline(self):
        steps = [Step("one", "1. One", step)]
        return Pipeline("T", new_state=lambda o: None, steps=lambda o: steps)

cli.runnable_system = lambda name: Info()
try:
    cli.app(["run", "ad-click", "--scale", "tiny", *sys.argv[1:]], standalone_mode=False)
finally:
    print("MLFLOW:" + ",".join(sorted(m for m in sys.modules if m.split(".")[0] == "mlflow")))
"""


def _run_cli(args: list[str], env: dict[str, str]) -> str:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MLSD_TRACK")}
    proc = subprocess.run(
        [sys.executable, "-c", _RUN_CLI, *args],
        capture_output=True,
        text=True,
        timeout=300,
        env={**clean, **env},
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout.split("MLFLOW:")[-1].strip()


def test_mlsd_run_loads_mlflow_only_with_track(tmp_path: Path) -> None:
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    env = {"MLSD_TRACKING_URI": uri}  # naming a store turns tracking on; --no-track turns it off
    assert _run_cli(["--out", str(tmp_path / "a"), "--no-track"], env) == ""
    assert _run_cli(["--out", str(tmp_path / "c")], {}) == ""  # no store named: no MLflow
    assert not (tmp_path / "mlflow.db").exists()
    # the positive control: the same command with --track loads MLflow and logs the run
    assert "mlflow" in _run_cli(["--out", str(tmp_path / "b"), "--track"], env).split(",")
    exp = MlflowClient(tracking_uri=uri).get_experiment_by_name("mlsd/ad-click")
    assert exp is not None
    [run] = MlflowClient(tracking_uri=uri).search_runs([exp.experiment_id])
    assert run.data.metrics["m/nce"] == 0.5 and run.data.tags["mlsd.chosen_model"] == "m"


def test_cli_track_names_what_is_wrong(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from mlsd.cli import app

    result = CliRunner().invoke(
        app, ["track", str(tmp_path), "--tracking-uri", f"sqlite:///{tmp_path}/m.db"]
    )
    assert result.exit_code == 1
    assert "not a run directory (no .mlsd-run marker)" in result.output


def test_a_tracking_store_named_in_the_environment_turns_tracking_on(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from mlsd.settings import Settings

    monkeypatch.delenv("MLSD_TRACK", raising=False)
    monkeypatch.delenv("MLSD_TRACKING_URI", raising=False)
    assert not Settings().tracking_on  # the default store alone does not
    monkeypatch.setenv("MLSD_TRACKING_URI", "sqlite:////tmp/elsewhere.db")
    assert Settings().tracking_on
    monkeypatch.delenv("MLSD_TRACKING_URI")
    monkeypatch.setenv("MLSD_TRACK", "1")
    assert Settings().tracking_on
