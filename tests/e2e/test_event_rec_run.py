"""End to end: `mlsd run event-rec` on the tiny world, then served; unsupported runs refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mlsd.artifacts import pickle_protocol, verify_manifest
from mlsd.cli import app
from mlsd.settings import Settings
from mlsd.systems import get_system

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("e2e")]
runner = CliRunner()
MODELS = {
    "popular_nearby",
    "logistic_regression",
    "mlp",
    "lightgbm_pointwise",
    "lightgbm_lambdarank",
}
OFFLINE = {"ndcg@10", "map@10", "mrr", "precision@5", "precision@10", "recall@5", "recall@10"}


@pytest.fixture(scope="module")
def world_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "tiny"
    result = runner.invoke(app, ["run", "event-rec", "--scale", "tiny", "--out", str(out)])
    assert result.exit_code == 0, result.output
    return out


def test_world_run_writes_the_run_directory(world_run: Path) -> None:
    for name in ("blueprint.md", "blueprint.html", "metrics.json", "artifacts/serving.json"):
        assert (world_run / name).is_file(), name
    m = json.loads((world_run / "metrics.json").read_text())
    assert m["system"] == "event-rec" and m["scale"] == "tiny"
    assert m["data"]["source"] == "world" and m["data"]["impressions"] > 5_000
    assert set(m["models"]) == MODELS
    for name, model in m["models"].items():
        assert set(model["offline"]) >= OFFLINE, name
    oracle = m["oracle"]["offline"]
    for name in MODELS:  # nobody beats the oracle by more than noise
        assert m["models"][name]["offline"]["ndcg@10"] <= oracle["ndcg@10"] + 0.05
    assert m["chosen_model"] in MODELS and m["serving"]["latency_ms"]["total"]["p99"] > 0
    sel = m["selection"]  # every choice on the validation days, none on the test days
    assert sel["chosen_on"] == "validation" and sel["chosen"] == m["chosen_model"]
    f = m["features"]
    assert max(f["train_days"]) < min(f["validation_days"]) <= max(f["validation_days"])
    assert max(f["validation_days"]) < min(f["test_days"])
    assert sel["validation_days"] == f["validation_days"]
    best_val = max(m["models"], key=lambda n: m["models"][n]["validation"]["ndcg@10"])
    assert best_val == m["chosen_model"]
    for name in ("lightgbm_pointwise", "lightgbm_lambdarank"):
        assert 0 < m["models"][name]["hyperparameters"]["n_estimators"] <= 40
    ev = m["evaluation"]
    recalls = [f["recall_of_positives"] for f in ev["filtering"]]
    assert recalls == sorted(recalls) and 0 < recalls[0] < recalls[-1] <= 1
    assert set(ev["ablation"]) == {
        "(none)",
        "location",
        "time",
        "social",
        "user",
        "event",
        "dynamic",
    }
    assert m["online"]["decision"] and m["online"]["srm"]
    assert set(m["online"]["tests"]) == {
        "registrations_per_user",
        "ctr",
        "bookmark_rate",
        "revenue_per_user",
    }
    il = m["online"]["interleaving"]
    assert il["method"] == "team-draft" and il["team_a"] == m["chosen_model"]
    for credit in ("by_clicks", "by_registrations"):
        c = il[credit]
        assert c["wins_a"] + c["wins_b"] + c["ties"] == c["impressions"] > 0
    assert m["online"]["control"]["policy"] == "popular_nearby"
    assert m["online"]["treatment"]["policy"] == m["chosen_model"]
    assert m["monitoring"]["daily"] and "retrain" in m["monitoring"]
    daily = m["continual_learning"]["daily"]
    assert [d["day"] for d in daily] == m["features"]["test_days"]


def test_the_run_is_served(world_run: Path) -> None:
    files = verify_manifest(world_run / "artifacts")
    assert not [f for f in files if pickle_protocol(world_run / "artifacts" / f) is not None]
    scorer = get_system("event-rec").load_scorer(world_run, Settings())
    rec = scorer.recommend(0, k=10)
    assert rec.model and len(rec.events) <= 10


@pytest.mark.parametrize(
    ("args", "reason"),
    [
        (["--scale", "large"], "not supported yet"),
        (["--data", "eventrec:/nowhere"], "no such directory"),
        (["--data", "movielens:/nowhere"], "unknown data format"),
    ],
)
def test_unsupported_runs_are_refused_with_one_line(
    args: list[str], reason: str, tmp_path: Path
) -> None:
    result = runner.invoke(app, ["run", "event-rec", *args, "--out", str(tmp_path / "r")])
    assert result.exit_code == 2 and reason in result.output
    assert not (tmp_path / "r").exists()
