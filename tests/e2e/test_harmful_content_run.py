"""End to end: `mlsd run harmful-content` on the tiny world, and on a labelled text CSV."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mlsd.cli import app
from mlsd.settings import Settings
from mlsd.systems import get_system

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("e2e_harmful")]
runner = CliRunner()
MODELS = (
    "keyword_rule",
    "tfidf_lr",
    "tfidf_char_lr",
    "text_mlp",
    "image_cnn",
    "author_lr",
    "late_fusion",
    "early_single_task",
    "early_multi_task",
    "early_multi_task_bce",
    "early_multi_task_focal",
)


@pytest.fixture(scope="module")
def world_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "tiny"
    result = runner.invoke(
        app, ["run", "harmful-content", "--scale", "tiny", "--seed", "0", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    return out


def test_world_run_measures_every_step(world_run: Path) -> None:
    for name in (
        "blueprint.md",
        "blueprint.html",
        "metrics.json",
        "artifacts/serving.json",
        "artifacts/manifest.json",
        "artifacts/models/image_cnn/model.json",
    ):
        assert (world_run / name).is_file(), name
    m = json.loads((world_run / "metrics.json").read_text())
    assert m["system"] == "harmful-content" and m["skipped"] == []
    assert list(m["steps"]) == [
        "requirements",
        "data",
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
    for name in MODELS:
        assert 0 <= m["models"][name]["mean_pr_auc"] <= 1, name
    assert m["oracle"]["mean_pr_auc"] >= max(m["models"][n]["mean_pr_auc"] for n in MODELS) - 0.05
    assert m["chosen_model"] in (
        "late_fusion",
        "early_single_task",
        "early_multi_task",
        "early_multi_task_bce",
        "early_multi_task_focal",
    )
    assert set(m["thresholds"]) == {"hate", "violence", "sexual", "spam", "self_harm"}
    assert m["online"]["primary_metric"] == "prevalence"
    assert 0 <= m["online"]["control"]["prevalence"] <= 1
    assert m["serving"]["max_abs_diff_vs_offline"] < 1e-3
    assert "retrain" in m["monitoring"] and m["label_sources"]["rows"]
    power = m["online"]["power"]
    assert power["days"] >= 2 and power["mde_relative"] > 0
    assert m["monitoring"]["thresholds"]["count_alpha"] > 0
    assert all("unseen_word_posts" in row for row in m["monitoring"]["daily"])


def test_the_run_serves_posts(world_run: Path) -> None:
    from mlsd.systems.harmful_content.serving import Post

    scorer = get_system("harmful-content").load_scorer(world_run, Settings())
    res = scorer.classify(Post("click here free money", None, 3))
    assert set(res.probabilities) == {"hate", "violence", "sexual", "spam", "self_harm"}


def test_csv_run_reports_per_class_pr_auc_and_macro_f1(tmp_path: Path) -> None:
    rows = ["text,label"]
    for i in range(120):
        kind = ("benign", "spam", "hate")[i % 3]
        word = {"benign": "lovely picnic", "spam": "free money", "hate": "vermin"}[kind]
        rows.append(f'"post {i} about {word}\nsecond line",{kind}')
    rows.append('"&amp; an empty one follows",benign')
    rows.append(",benign")
    path = tmp_path / "posts.csv"
    path.write_text("\n".join(rows) + "\n")
    out = tmp_path / "run"
    result = runner.invoke(
        app,
        ["run", "harmful-content", "--scale", "tiny", "--data", f"csv:{path}", "--out", str(out)],
    )
    assert result.exit_code == 0, result.output
    m = json.loads((out / "metrics.json").read_text())
    assert {s["step"] for s in m["skipped"]} == {
        "online",
        "efficiency",
        "tradeoffs",
        "canary",
        "monitoring",
        "scale",
        "oracle",
        "image and author models",
    }
    for name in ("keyword_rule", "tfidf_lr", "tfidf_char_lr", "text_mlp"):
        s = m["models"][name]
        assert 0 <= s["macro_f1"] <= 1 and 0 <= s["weighted_f1"] <= 1
        assert set(s["per_class"]) == {"benign", "spam", "hate"}
        assert 0 <= s["any_harm_pr_auc"] <= 1
    assert m["models"]["tfidf_lr"]["macro_f1"] > 0.9  # the words give the class away
    scorer = get_system("harmful-content").load_scorer(out, Settings())
    from mlsd.systems.harmful_content.serving import Post

    assert scorer.classify(Post("free money now")).probabilities["spam"] > 0.5


def test_csv_run_with_column_options_is_multi_label(tmp_path: Path) -> None:
    rows = ["id,body,toxic,spam"]
    for i in range(90):
        toxic, spam = int(i % 3 == 1), int(i % 3 == 2 or i % 9 == 1)
        words = " ".join(w for w, on in (("vermin", toxic), ("free money", spam)) if on)
        rows.append(f'{i},"post {i} {words or "lovely picnic"}",{toxic},{spam}')
    path = tmp_path / "posts.csv"
    path.write_text("\n".join(rows) + "\n")
    out = tmp_path / "run"
    args = ["run", "harmful-content", "--scale", "tiny", "--data", f"csv:{path}"]
    columns = ["--text-column", "body", "--label-column", "toxic", "--label-column", "spam"]
    result = runner.invoke(app, [*args, *columns, "--out", str(out)])
    assert result.exit_code == 0, result.output
    m = json.loads((out / "metrics.json").read_text())
    s = m["models"]["tfidf_lr"]
    assert set(s["per_class"]) == {"toxic", "spam"}
    assert s["per_class"]["toxic"]["pr_auc"] > 0.9 and s["macro_f1"] > 0.8
    assert 0.5 < s["any_harm_roc_auc"] <= 1
