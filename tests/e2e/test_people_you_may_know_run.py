"""End to end: `mlsd run people-you-may-know` on the tiny world, and on edge-list files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mlsd.cli import app
from mlsd.settings import Settings
from mlsd.systems import get_system

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("e2e_pymk")]
runner = CliRunner()
MODELS = (
    "common_neighbours",
    "jaccard",
    "adamic_adar",
    "preferential_attachment",
    "logistic_regression",
    "lightgbm",
    "graphsage",
    "node2vec_lightgbm",
)


@pytest.fixture(scope="module")
def world_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "tiny"
    result = runner.invoke(
        app, ["run", "people-you-may-know", "--scale", "tiny", "--seed", "0", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    return out


def test_world_run_measures_every_step(world_run: Path) -> None:
    for name in (
        "blueprint.md",
        "blueprint.html",
        "metrics.json",
        "artifacts/recommendations.parquet",
        "artifacts/graph_users.parquet",
        "artifacts/graph_edges.parquet",
        "artifacts/model/model.json",
        "artifacts/serving.json",
        "artifacts/manifest.json",
    ):
        assert (world_run / name).is_file(), name
    m = json.loads((world_run / "metrics.json").read_text())
    assert m["system"] == "people-you-may-know" and m["skipped"] == []
    assert list(m["steps"]) == [
        "requirements",
        "data",
        "features",
        "eda",
        "models",
        "evaluation",
        "serving",
        "efficiency",
        "tradeoffs",
        "online",
        "canary",
        "monitoring",
        "scale",
        "summary",
    ]
    assert 0 < m["candidates"]["recall"] <= 1 and m["candidates"]["pairs_per_user"] > 0
    for name in MODELS:
        for key in ("recall@10", "recall@50", "precision@10", "map@10", "ndcg@10", "roc_auc"):
            assert 0 <= m["models"][name][key] <= 1, (name, key)
        assert "new_users_recall@10" in m["models"][name]
    oracle = m["oracle"]
    assert oracle["roc_auc"] >= max(m["models"][n]["roc_auc"] for n in MODELS) - 0.02
    assert m["chosen_model"] in MODELS and m["chosen_model"] != "node2vec_lightgbm"
    ev = m["evaluation"]
    assert ev["chosen_on"] == "validation recall@10"
    assert m["chosen_model"] == max(ev["validation"], key=lambda n: ev["validation"][n])
    for name in ("logistic_regression", "lightgbm", "graphsage", "node2vec_lightgbm"):
        vs = ev["versus_adamic_adar"][name]["recall@10"]
        assert vs["ci_low"] <= vs["diff"] <= vs["ci_high"] and vs["test"] == "paired t-test"
    for key in ("precision@50", "map@50", "pr_auc"):
        assert 0 <= m["models"]["lightgbm"][key] <= 1, key
    assert m["online"]["primary_metric"] == "accepted_per_user_day"
    assert (
        m["online"]["decision"] in ("ship", "don't ship", "inconclusive", "invalid (SRM)")
        or m["online"]["decision"]
    )
    assert m["serving"]["batch"]["lookup_ms"]["p99"] > 0
    assert m["serving"]["online"]["new_user_latency_ms"]["p99"] > 0
    assert "retrain" in m["monitoring"]
    sweep = m["tradeoffs"]["budget_sweep"]
    assert sweep["metric"] == "recall@10" and "precomputed_list" in sweep["validation"]
    for count in sweep["candidate_counts"]:
        assert set(sweep["chosen"][str(count)]) == {f"{b:g}" for b in sweep["budgets_ms"]}


def test_the_run_serves_its_lists(world_run: Path) -> None:
    lists = get_system("people-you-may-know").load_scorer(world_run, Settings())
    people = lists.recommend(0, 10)
    assert lists.known(0) and not lists.known(10**9) and len(people) == 10
    new = lists.recommend_new({"school": 1, "employer": 2, "city": 0, "age": 30}, [0], 10)
    assert new and 0 not in {p.user_id for p in new}


@pytest.mark.parametrize("timestamps", [True, False])
def test_edge_list_run_reports_every_model(tmp_path: Path, timestamps: bool) -> None:
    from mlsd.systems.people_you_may_know.world import PymkConfig, PymkWorld
    from mlsd.world import Scale

    world = PymkWorld(Scale.TINY, 5, PymkConfig.for_scale(Scale.TINY).with_(n_initial=200))
    e = world.edges
    lines = ["# a test graph", "3 3 1" if timestamps else "3 3"]
    for u, v, d in zip(e["u"], e["v"], e["day"], strict=True):
        lines.append(
            f"{u + 1000} {v + 1000}" + (f" {1_600_000_000 + 86_400 * d}" if timestamps else "")
        )
    path = tmp_path / "graph.txt"
    path.write_text("\n".join(lines) + "\n")
    out = tmp_path / "run"
    result = runner.invoke(
        app, ["run", "people-you-may-know", "--data", f"edgelist:{path}", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    m = json.loads((out / "metrics.json").read_text())
    skipped = {"online", "oracle", "canary"} | (set() if timestamps else {"monitoring"})
    assert {s["step"] for s in m["skipped"]} == skipped
    assert m["oracle"] is None and m["data"]["timestamps"] is timestamps
    assert m["features"]["protocol"] == ("time" if timestamps else "holdout")
    for name in MODELS:
        for key in ("roc_auc", "recall@10", "hit@10", "ndcg@10"):
            assert 0 <= m["models"][name][key] <= 1, (name, key)
    if not timestamps:  # the ranked view ranks every non-neighbour: nothing is missed
        assert m["candidates"]["recall"] == 1.0
    lists = get_system("people-you-may-know").load_scorer(out, Settings())
    assert lists.known(1000) and not lists.known(0)  # the file's own ids


def test_a_real_social_graph_runs_every_model(tmp_path: Path) -> None:
    """Zachary's karate club (1977; shipped with networkx, which torch depends on): a real
    friendship network of 34 people, run without timestamps by the standard protocol."""
    import networkx as nx

    g = nx.karate_club_graph()
    path = tmp_path / "karate.txt"
    path.write_text("# Zachary's karate club\n" + "".join(f"{u} {v}\n" for u, v in g.edges()))
    out = tmp_path / "run"
    result = runner.invoke(
        app, ["run", "people-you-may-know", "--data", f"edgelist:{path}", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    m = json.loads((out / "metrics.json").read_text())
    assert m["data"]["users"] == 34 and m["data"]["friendships"] == 78
    assert m["features"]["auc_pairs"] == 2 * (78 // 2)  # removed edges + as many non-edges
    for name in MODELS:
        assert 0 <= m["models"][name]["roc_auc"] <= 1, name
        assert 0 <= m["models"][name]["recall@10"] <= 1, name
    assert m["evaluation"]["chosen_on"] == "validation roc_auc"
