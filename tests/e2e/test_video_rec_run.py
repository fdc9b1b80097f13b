"""End to end: `mlsd run video-rec` on the tiny world, and on a MovieLens ml-100k directory."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from mlsd.cli import app

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("e2e_video_rec")]
runner = CliRunner()


@pytest.fixture(scope="module")
def world_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "tiny"
    result = runner.invoke(
        app, ["run", "video-rec", "--scale", "tiny", "--seed", "0", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    return out


def test_world_run_measures_every_stage(world_run: Path) -> None:
    for name in (
        "blueprint.md",
        "blueprint.html",
        "metrics.json",
        "artifacts/recommender/model.json",
        "artifacts/recommender/arrays.npz",
        "artifacts/manifest.json",
        "artifacts/ann_index/index.faiss",
        "artifacts/serving.json",
        "artifacts/data/impressions.parquet",
    ):
        assert (world_run / name).is_file(), name
    m = json.loads((world_run / "metrics.json").read_text())
    assert m["system"] == "video-rec" and m["skipped"] == []
    assert set(m["steps"]) == {
        "requirements",
        "data",
        "eda",
        "models",
        "evaluation",
        "sources",
        "serving",
        "efficiency",
        "tradeoffs",
        "online",
        "canary",
        "batch",
        "batch_vs_online",
        "monitoring",
        "scale",
        "summary",
    }
    models = m["models"]
    assert models["title_encoder"]["name"] == "all-MiniLM-L6-v2"
    for source in ("two_tower", "popular", "cowatch"):  # retrieval recall per source
        assert 0 <= models[source]["recall@100"] <= models[source]["recall@500"] <= 1, source
    assert {"candidates", "recall@all"} <= set(models["merged"])
    for source in ("ease", "als", "mult_vae", "lightgcn"):  # the collaborative learners
        assert 0 <= models[source]["recall@100"] <= models[source]["recall@500"] <= 1, source
        assert models[source]["params"] and models[source]["tuning_seconds"] > 0
    assert "ranked + all learned" in m["candidate_sources"]["stacks"]
    for stage in ("popular", "cowatch", "two_tower", "ranked", "full"):  # ranking per stage
        assert {"ndcg@10", "precision@10", "map@10", "true_minutes@10"} <= set(models[stage])
    assert {"recall@100", "recall@500", "ndcg@10", "click_nce"} <= set(m["oracle"])
    assert m["chosen_model"] == "full"
    assert 0.5 < models["ranking"]["click_auc"] <= 1
    assert m["oracle"]["click_nce"] < models["ranking"]["click_nce"]
    off = m["offline"]
    assert off["cold_start"]["users"] and "two_tower" in off["cold_start"]["new_video_recall@100"]
    ann = m["serving"]["ann"]
    assert ann["exact"]["recall_vs_exact"] == 1.0 and 0 < ann["hnsw"]["recall_vs_exact"] <= 1.0
    assert ann["hnsw"]["params"]["ef_search"] == 64 and ann["ivf"]["params"]["nprobe"] == 16
    assert m["serving"]["large_catalogue"]["latency_ms"]["total"]["p99"] > 0
    on = m["online"]
    assert on["ab"]["decision"] and "users_needed" in on
    assert on["ab"]["primary_metric"] == "watch_minutes_per_user"
    assert {"ctr", "watch_minutes_per_user"} == set(on["ab"]["tests"])
    assert on["ab"]["control"]["policy"] == on["control"] == "two_tower"
    assert on["ab"]["treatment"]["policy"] == on["treatment"] == "full"
    # like for like: interleaving sees as many feeds per user as the A/B test, same alpha
    assert on["interleaving"]["sessions_per_user"] == on["sessions_per_user"]
    assert on["interleaving"]["a"] == "full" and on["interleaving"]["impressions"] == on["users"]
    assert on["alpha"] == 0.05 and 0 <= on["interleaving"]["paired_minutes"]["p_value"] <= 1
    assert {"ab_watch_time", "interleaving", "interleaving_minutes"} == set(on["users_needed"])
    assert len(m["batch"]["staleness"]) == 3
    sweep = m["tradeoffs"]["budget_sweep"]
    assert sweep["metric"] == "nDCG@10" and "full" in sweep["validation"]
    for count in sweep["candidate_counts"]:
        assert set(sweep["chosen"][str(count)]) == {f"{b:g}" for b in sweep["budgets_ms"]}
    assert "batch_vs_online" in m["tradeoffs"]
    assert m["summary"]["ndcg@10_full"] == models["full"]["ndcg@10"]
    mon = m["monitoring"]  # step 7: the three days after the staleness days
    assert [d["day"] for d in mon["days"]] == [9, 10, 11]
    for day in mon["days"]:
        assert {"psi_d_user_ctr", "psi_user_embedding", "prediction_psi"} <= set(day)
        assert 0 < day["oracle_share"] <= 1 and day["psi_video_embedding"] >= 0
    assert isinstance(mon["retrain"], bool) and mon["retrain_reason"]
    assert mon["retrain"] == bool(mon["alerts"]) or "only" in mon["retrain_reason"]
    assert ". Monitoring\n" in (world_run / "blueprint.md").read_text()


def test_world_run_numbers_are_sane(world_run: Path) -> None:
    m = json.loads((world_run / "metrics.json").read_text())
    st, oracle = m["models"], m["oracle"]
    for name in ("popular", "cowatch", "two_tower", "ranked", "full"):
        s = st[name]  # nothing beats the oracle by more than noise: leakage check
        assert s["true_minutes@10"] <= oracle["true_minutes@10"], name
        assert 0 <= s["ndcg@10"] <= 1 and 0 <= s["coverage"] <= 1
    assert 0 <= oracle["ndcg@10"] <= 1 and 0 <= oracle["coverage"] <= 1
    assert st["full"]["ndcg@10"] > st["cowatch"]["ndcg@10"]
    assert st["full"]["true_minutes@10"] > st["popular"]["true_minutes@10"]


def test_served_run_loads_through_the_registry(world_run: Path) -> None:
    from mlsd.settings import Settings
    from mlsd.systems import get_system

    rec = get_system("video-rec").load_scorer(world_run, Settings())
    assert len(rec.recommend_users(np.arange(3), 5).ids) == 3


def test_movielens_run_follows_the_protocol(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    d = tmp_path / "ml-100k"
    d.mkdir()
    lines = [
        f"{u}\t{i}\t{rng.integers(1, 6)}\t{880_000_000 + j}"
        for j, (u, i) in enumerate(
            (u, i) for u in range(1, 41) for i in rng.choice(np.arange(1, 80), 15, replace=False)
        )
    ]
    (d / "u.data").write_text("\n".join(lines) + "\n")
    out = tmp_path / "run"
    result = runner.invoke(app, ["run", "video-rec", "--data", f"movielens:{d}", "--out", str(out)])
    assert result.exit_code == 0, result.output
    m = json.loads((out / "metrics.json").read_text())
    split = m["movielens"]["split"]
    assert split["train"] + split["test"] == len(lines) == m["data"]["rows"]
    for model in ("popular", "co_watch", "ease", "als", "bpr", "mult_vae", "lightgcn", "two_tower"):
        assert set(m["models"][model]) >= {
            "map",
            "ndcg@10",
            "precision@10",
            "recall@10",
            "train_seconds",
        }
    assert {s["step"] for s in m["skipped"]} == {"ranking", "online", "serving", "monitoring"}
    assert "monitoring" not in m


def test_bad_movielens_file_exits_2_without_a_run_dir(tmp_path: Path) -> None:
    (tmp_path / "u.data").write_text("1\t2\t3\t4\nx\t2\t3\t4\n")
    out = tmp_path / "run"
    result = runner.invoke(
        app, ["run", "video-rec", "--data", f"movielens:{tmp_path / 'u.data'}", "--out", str(out)]
    )
    assert result.exit_code == 2 and "u.data:2" in result.output
    assert not out.exists()
