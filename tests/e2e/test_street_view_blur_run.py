"""End to end: `mlsd run street-view-blur` on the tiny world and on COCO files, then
`mlsd blur` over a folder, interrupted and resumed."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import pytest
from typer.testing import CliRunner

from mlsd.cli import app
from mlsd.settings import Settings
from mlsd.systems import get_system
from mlsd.systems.street_view_blur.datasets import MIN_SPLIT, write_boxes, write_coco
from mlsd.systems.street_view_blur.world import StreetConfig, StreetWorld
from mlsd.world import Scale

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("e2e_svb")]
runner = CliRunner()
MODELS = ("haar_cascades", "centernet", "centernet_half")
STEPS = [
    "requirements",
    "data",
    "eda",
    "features",
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


@pytest.fixture(scope="module")
def world_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "tiny"
    result = runner.invoke(
        app, ["run", "street-view-blur", "--scale", "tiny", "--seed", "0", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    return out


def test_world_run_measures_every_step(world_run: Path) -> None:
    for name in (
        "blueprint.md",
        "blueprint.html",
        "metrics.json",
        "artifacts/serving.json",
        "artifacts/detector/model.json",
        "artifacts/manifest.json",
    ):
        assert (world_run / name).is_file(), name
    m = json.loads((world_run / "metrics.json").read_text())
    assert m["system"] == "street-view-blur" and m["skipped"] == [] and list(m["steps"]) == STEPS
    for name in MODELS:
        s = m["models"][name]
        for key in ("map50", "map", "recall_face", "area_share_plate", "over_blur"):
            assert s[key] is None or 0 <= s[key] <= 1, (name, key)
        assert "slices" in s and "val_map50" in s
    assert m["oracle"]["map50"] == 1.0 and m["oracle"]["area_share_face"] == 1.0
    assert m["chosen_model"] in ("centernet", "centernet_half")
    assert m["serving"]["batch"]["images_per_second"] > 0
    assert m["serving"]["resume_rerun"]["processed"] == 0
    assert m["online"]["primary_metric"] == "reports_per_image"
    assert m["online"]["control"]["policy"] == "haar_cascades"
    assert "retrain" in m["monitoring"] and len(m["monitoring"]["daily"]) == 2
    assert (
        get_system("street-view-blur").load_scorer(world_run, Settings()).name
        == (m["chosen_model"])
    )


def test_blur_command_blurs_a_folder_and_resumes(world_run: Path, tmp_path: Path) -> None:
    images = StreetWorld(Scale.TINY, 5).labelled("test").images[:5]
    for i, img in enumerate(images):
        cv2.imwrite(str(tmp_path / f"{i}.png"), img)
    out = tmp_path.parent / f"{tmp_path.name}-out"
    args = ["blur", str(tmp_path), "--run", str(world_run), "--out", str(out)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert len(list((out / "images").glob("*.png"))) == 5
    summary = json.loads((out / "summary.json").read_text())
    assert summary["processed"] == 5 and summary["images_per_second"] > 0
    again = runner.invoke(app, args)
    assert again.exit_code == 0 and "5 already done" in again.output
    bad = runner.invoke(app, ["blur", str(tmp_path), "--run", str(tmp_path), "--out", str(out)])
    assert bad.exit_code == 2 and "cannot load street-view-blur" in bad.output


def test_coco_files_run_splits_and_skips_the_world_steps(tmp_path: Path) -> None:
    cfg = StreetConfig.for_scale(Scale.TINY).with_(n_train=MIN_SPLIT)
    ann = write_coco(StreetWorld(Scale.TINY, 2, cfg).labelled("train"), tmp_path / "coco")
    out = tmp_path / "run"
    result = runner.invoke(
        app,
        ["run", "street-view-blur", "--scale", "tiny", "--data", f"coco:{ann}", "--out", str(out)],
    )
    assert result.exit_code == 0, result.output
    m = json.loads((out / "metrics.json").read_text())
    assert m["data"]["mode"] == "split" and m["data"]["test"]["images"] == MIN_SPLIT // 5
    assert sorted(s["step"] for s in m["skipped"]) == ["canary", "monitoring", "online"]
    for name in MODELS:
        assert "recall_plate" in m["models"][name] and "area_share_plate" in m["models"][name]


def test_few_plate_files_are_tested_on_a_world_trained_detector(tmp_path: Path) -> None:
    cfg = StreetConfig.for_scale(Scale.TINY).with_(n_train=6, width=256, height=192)
    folder = write_boxes(StreetWorld(Scale.TINY, 4, cfg).labelled("train"), tmp_path / "plates")
    out = tmp_path / "run"
    result = runner.invoke(
        app,
        [
            "run",
            "street-view-blur",
            "--scale",
            "tiny",
            "--data",
            f"boxes:{folder}",
            "--out",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    m = json.loads((out / "metrics.json").read_text())
    assert m["data"]["mode"] == "world-trained" and m["data"]["test"]["images"] == 6
    assert m["data"]["width"] == 128  # resized to the scale's input size
    for name in MODELS:
        s = m["models"][name]
        assert {"recall_face", "recall_plate", "area_share_face", "area_share_plate"} <= set(s)
