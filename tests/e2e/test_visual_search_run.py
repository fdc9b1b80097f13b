"""End to end: `mlsd run visual-search` on the tiny world, on an IDX folder and on bad files."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import load_digits
from typer.testing import CliRunner

from mlsd.cli import app

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("e2e_visual_search")]
runner = CliRunner()
MODELS = {"raw_pixels_pca", "color_histogram_pca", "untrained_cnn", "contrastive_cnn"}
METRICS = {
    "map",
    "mrr",
    "recall",
    "precision",
    "ndcg",
    "hit1",
    "dim",
    "encode_ms",
    "search_ms_per_query",
    "train_seconds",
}


@pytest.fixture(scope="module")
def world_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "tiny"
    result = runner.invoke(
        app, ["run", "visual-search", "--scale", "tiny", "--seed", "0", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    return out


def test_world_run_writes_the_run_directory(world_run: Path) -> None:
    for name in (
        "blueprint.md",
        "blueprint.html",
        "metrics.json",
        "artifacts/serving.json",
        "artifacts/encoder/model.json",
        "artifacts/manifest.json",
        "artifacts/index/index.faiss",
    ):
        assert (world_run / name).is_file(), name
    m = json.loads((world_run / "metrics.json").read_text())
    assert m["system"] == "visual-search" and m["skipped"] == []
    assert set(m["steps"]) == {
        "requirements",
        "data",
        "eda",
        "models",
        "evaluation",
        "index",
        "serving",
        "efficiency",
        "tradeoffs",
        "online",
        "canary",
        "monitoring",
        "scale",
        "summary",
    }
    assert set(m["models"]) == MODELS
    for name, model in m["models"].items():
        assert set(model) >= METRICS, name
    kinds = {r["kind"] for r in m["index"]["compared"]}
    assert kinds == {"flat", "ivf", "hnsw"}
    assert set(m["serving"]["latency_ms"]) == {"decode_embed", "search", "total"}
    assert m["online"]["decision"] and m["online"]["srm"]
    sweep = m["tradeoffs"]["budget_sweep"]
    assert set(sweep["validation"]) <= MODELS and sweep["candidate_counts"] == [10, 100, 1000]
    for by_budget in sweep["chosen"].values():
        assert set(by_budget) == {f"{b:g}" for b in sweep["budgets_ms"]}
    text = (world_run / "blueprint.md").read_text()
    for heading in ("Offline evaluation", "exact vs approximate", "A/B test", "Serving"):
        assert heading in text
    assert ". Monitoring\n" in text


def test_world_run_monitors_the_days_after_training(world_run: Path) -> None:
    mon = json.loads((world_run / "metrics.json").read_text())["monitoring"]
    days = mon["days"]
    assert [d["day"] for d in days] == [1, 2, 3, 4] and mon["model"] == "contrastive_cnn"
    assert days[0]["low_light_share"] == 0 and days[-1]["low_light_share"] == 1
    # no new camera yet on day 1: no drift; all uploads from it on day 4: inputs drift
    assert days[0]["psi_brightness"] < 0.25 < days[-1]["psi_brightness"]
    assert days[-1]["map"] < mon["baseline"]["map"] and mon["retrain"]
    assert {a["kind"] for a in mon["alerts"]} >= {"feature_drift"}
    assert not [a for a in mon["alerts"] if a["day"] == 1]


def test_contrastive_encoder_beats_the_baselines(world_run: Path) -> None:
    metrics = json.loads((world_run / "metrics.json").read_text())
    m = metrics["models"]
    assert metrics["chosen_model"] == "contrastive_cnn"
    # the oracle (ranking by the true product) bounds every encoder
    assert metrics["oracle"]["map"] == 1.0
    assert all(model["precision"] <= metrics["oracle"]["precision"] for model in m.values())
    best_baseline = max(m[n]["map"] for n in MODELS - {"contrastive_cnn"})
    assert m["contrastive_cnn"]["map"] > 2 * best_baseline
    for model in m.values():  # a sane range: nothing perfect, nothing below chance
        assert 0.0 < model["map"] < 0.95


def test_world_run_online_and_index_numbers_are_sane(world_run: Path) -> None:
    m = json.loads((world_run / "metrics.json").read_text())
    on = m["online"]
    assert on["treatment"]["ctr"] > on["control"]["ctr"]
    assert on["treatment"]["model"] == m["chosen_model"]
    assert on["control"]["model"] == m["best_baseline"]
    ctr = on["tests"]["result_ctr"]
    assert ctr["ci_low"] <= ctr["diff"] <= ctr["ci_high"]
    assert on["primary_metric"] == "result_ctr" and on["decision"] == "ship"
    exact = m["index"]["compared"][0]
    assert exact["recall_vs_exact"] == 1.0
    assert all(0.0 < r["recall_vs_exact"] <= 1.0 for r in m["index"]["compared"])
    assert all(r["query_p99_ms"] >= 0.0 for r in m["index"]["compared"])
    served = [r for r in m["index"]["compared"] if r["index"] == m["index"]["served"]]
    assert served and m["serving"]["index"] == m["index"]["served"]
    nd = m["index"]["near_duplicates"]["fingerprint"]
    assert nd["recall"] > 0.5 and nd["precision"] > 0.5


def write_digits_idx(root: Path) -> Path:
    digits = load_digits()
    imgs = (digits.images[:400] * 16).clip(0, 255).astype(np.uint8)  # 8x8, values 0-16
    labels = digits.target[:400].astype(np.uint8)
    root.mkdir(parents=True)
    head = b"\x00\x00\x08\x03" + b"".join(v.to_bytes(4, "big") for v in (len(imgs), 8, 8))
    (root / "digits-images-idx3-ubyte.gz").write_bytes(gzip.compress(head + imgs.tobytes()))
    lab_head = b"\x00\x00\x08\x01" + len(labels).to_bytes(4, "big")
    (root / "digits-labels-idx1-ubyte.gz").write_bytes(gzip.compress(lab_head + labels.tobytes()))
    return root


def test_idx_run_on_real_digits(tmp_path: Path) -> None:
    data = write_digits_idx(tmp_path / "digits")
    out = tmp_path / "run"
    result = runner.invoke(
        app, ["run", "visual-search", "--scale", "tiny", "--data", f"idx:{data}", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    m = json.loads((out / "metrics.json").read_text())
    d = m["data"]
    assert d["source"] == "file" and d["images"] == 400 and d["classes"] == 10
    assert d["train_images"] + d["index_images"] + d["query_images"] == 400
    assert {s["step"] for s in m["skipped"]} >= {"online", "monitoring"}
    assert "online" not in m and "monitoring" not in m
    # digits are easy: learned features must beat chance (≈ 0.1 precision) by far
    assert m["models"]["contrastive_cnn"]["precision"] > 0.3


def test_bad_data_exits_2_and_leaves_no_run(tmp_path: Path) -> None:
    bad = tmp_path / "bad"
    (bad / "a").mkdir(parents=True)
    (bad / "a" / "x.png").write_bytes(b"not a png")
    out = tmp_path / "run"
    result = runner.invoke(
        app,
        [
            "run",
            "visual-search",
            "--scale",
            "tiny",
            "--data",
            f"imagefolder:{bad}",
            "--out",
            str(out),
        ],
    )
    assert result.exit_code == 2
    assert "x.png" in result.output and not out.exists()


def test_index_images_cli_adds_a_folder_and_rejects_bad_files(
    world_run: Path, tmp_path: Path
) -> None:
    from PIL import Image

    folder = tmp_path / "new"
    (folder / "sub").mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(5):
        pixels = rng.integers(0, 255, size=(40, 40, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / ("sub" if i % 2 else ".") / f"img{i}.png")
    run_copy = tmp_path / "run"
    import shutil

    shutil.copytree(world_run, run_copy)
    result = runner.invoke(
        app, ["index-images", str(folder), "--run", str(run_copy), "--batch-size", "2"]
    )
    assert result.exit_code == 0, result.output
    assert "indexed 5 images (0 skipped)" in " ".join(result.output.split())

    (folder / "broken.png").write_bytes(b"not an image")
    result = runner.invoke(app, ["index-images", str(folder), "--run", str(run_copy)])
    assert result.exit_code == 2
    assert "broken.png" in " ".join(result.output.split())
