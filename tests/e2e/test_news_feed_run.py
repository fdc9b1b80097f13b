"""End to end: `mlsd run news-feed` on the tiny world, then served; unsupported runs refused."""

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
MODELS = {"multi_task", "per_head_lightgbm", "any_engagement"}
HEADS = {"click", "like", "comment", "share", "hide", "block"}


@pytest.fixture(scope="module")
def world_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "tiny"
    result = runner.invoke(app, ["run", "news-feed", "--scale", "tiny", "--out", str(out)])
    assert result.exit_code == 0, result.output
    return out


def test_world_run_writes_the_run_directory(world_run: Path) -> None:
    for name in ("blueprint.md", "blueprint.html", "metrics.json", "artifacts/serving.json"):
        assert (world_run / name).is_file(), name
    m = json.loads((world_run / "metrics.json").read_text())
    assert m["system"] == "news-feed" and m["scale"] == "tiny"
    assert m["data"]["source"] == "world" and m["data"]["impressions"] > 5_000
    assert set(m["models"]) == MODELS
    oracle = m["oracle"]["offline"]
    for name in MODELS:
        off = m["models"][name]["offline"]
        assert set(off["heads"]) >= HEADS
        assert off["ndcg@10"] <= oracle["ndcg@10"] + 0.05  # nobody beats the oracle beyond noise
        assert off["ndcg@10_expected"] <= 1.0
    assert oracle["ndcg@10_expected"] == pytest.approx(1.0)
    assert "dwell" in m["models"]["multi_task"]["offline"]["heads"]
    assert m["chosen_model"] in MODELS and m["serving"]["latency_ms"]["total"]["p99"] > 0
    assert m["serving"]["new_post_retrievable_without_restart"] is True
    assert m["online"]["control"]["policy"] == "any_engagement"
    assert m["online"]["treatment"]["policy"] == "multi_task"
    assert m["online"]["primary_metric"] == "time_spent_s_per_user"
    assert {"time_spent_s_per_user", "ctr", "hides_per_user"} <= set(m["online"]["tests"])
    assert {"default", "clicks only"} <= set(m["weights_experiment"])
    assert m["monitoring"]["daily"] and "retrain" in m["monitoring"]
    assert "engagement_vs_satisfaction" in m["evaluation"]


def test_the_run_is_served(world_run: Path) -> None:
    files = verify_manifest(world_run / "artifacts")
    assert not [f for f in files if pickle_protocol(world_run / "artifacts" / f) is not None]
    scorer = get_system("news-feed").load_scorer(world_run, Settings())
    feed = scorer.feed(1, k=10)
    assert feed.model and len(feed.posts) <= 10


@pytest.mark.parametrize(
    ("args", "reason"),
    [
        (["--scale", "medium"], "not supported yet"),
        (["--data", "mind:/nowhere"], "no such directory"),
        (["--data", "movielens:/nowhere"], "unknown data format"),
    ],
)
def test_unsupported_runs_are_refused_with_one_line(
    args: list[str], reason: str, tmp_path: Path
) -> None:
    result = runner.invoke(app, ["run", "news-feed", *args, "--out", str(tmp_path / "r")])
    assert result.exit_code == 2 and reason in result.output
    assert not (tmp_path / "r").exists()
