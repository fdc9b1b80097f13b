"""``--data mind:DIR``: the benchmark's layout read, featurised, ranked; bad files refused."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from bad_file_cases import Case, Specs
from mind_files import write_mind
from typer.testing import CliRunner

from mlsd.cli import app
from mlsd.systems.news_feed.datasets import read_mind
from mlsd.systems.news_feed.evaluation_mind import compute_mind, impression_metrics, mind_features

RefusedRun = Callable[..., str]


def test_the_files_are_read_and_split_by_time(tmp_path: Path) -> None:
    files = read_mind(f"mind:{write_mind(tmp_path / 'm')}")
    beh = files.behaviors
    assert len(beh) == 300 and len(files.news) == 60
    assert (
        beh.loc[beh["split"] == "train", "ts"].max() < beh.loc[beh["split"] == "test", "ts"].min()
    )
    assert set(files.impressions["label"]) == {0, 1}


def test_a_dev_folder_is_the_test_set(tmp_path: Path) -> None:
    train, dev = write_mind(tmp_path / "train"), write_mind(tmp_path / "dev", seed=1, n_imps=50)
    files = read_mind(f"mind:{train}", f"mind:{dev}")
    assert (files.behaviors["split"] == "test").sum() == 50


def test_popularity_counts_only_earlier_impressions(tmp_path: Path) -> None:
    files = read_mind(f"mind:{write_mind(tmp_path / 'm')}")
    X, keys = mind_features(files)
    first = keys["impression"].to_numpy() == 0
    assert (X.loc[first, "d_news_impressions"] == 0).all()  # nothing before the first impression


def test_the_click_head_beats_popularity_on_taste_driven_clicks(tmp_path: Path) -> None:
    result = compute_mind(read_mind(f"mind:{write_mind(tmp_path / 'm', n_imps=500)}"), 0, 60)
    s = result.scores
    assert s["lightgbm"]["impressions"] > 20
    assert s["lightgbm"]["auc"] > s["popularity"]["auc"] + 0.05
    for name in s:
        assert 0 <= s[name]["mrr"] <= 1 and 0 <= s[name]["ndcg@10"] <= 1


def test_impression_metrics_of_a_perfect_ranking() -> None:
    m = impression_metrics(
        np.array([0, 0, 0, 1, 1]), np.array([1, 0, 0, 0, 1]), np.array([3.0, 2, 1, 0, 1])
    )
    assert m["auc"] == 1.0 and m["mrr"] == 1.0 and m["ndcg@5"] == 1.0 and m["impressions"] == 2


@pytest.mark.slow
def test_mlsd_run_on_the_files(tmp_path: Path) -> None:
    data = write_mind(tmp_path / "m")
    out = tmp_path / "run"
    result = CliRunner().invoke(
        app, ["run", "news-feed", "--data", f"mind:{data}", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    m = json.loads((out / "metrics.json").read_text())
    assert m["data"]["source"].startswith("mind:") and "lightgbm" in m["models"]
    assert {s["step"] for s in m["skipped"]} >= {"online", "serving"}


def _files(behaviors: str, news: str | None = None) -> Callable[[Path], Specs]:
    good_news = "N0\tsports\tsoccer\tgoal\ta\nN1\tnews\tcity\tvote\tb\n"

    def build(d: Path) -> Specs:
        d.mkdir(parents=True)
        (d / "behaviors.tsv").write_text(behaviors)
        if news != "":
            (d / "news.tsv").write_text(good_news if news is None else news)
        return f"mind:{d}", None

    return build


GOOD = "1\tU1\t11/11/2019 9:05:58 AM\tN0\tN0-1 N1-0\n"
CASES = [
    Case("no news file", _files(GOOD, ""), "no such file", "/news.tsv"),
    Case(
        "bad time",
        _files(GOOD + "2\tU2\tyesterday\tN0\tN1-1\n"),
        "not a time",
        "/behaviors.tsv:2: field 'time'",
    ),
    Case(
        "bad label",
        _files("1\tU1\t11/11/2019 9:05:58 AM\tN0\tN0-2\n"),
        "newsid-0",
        "/behaviors.tsv:1: field 'impressions'",
    ),
    Case(
        "unknown history",
        _files("1\tU1\t11/11/2019 9:05:58 AM\tN9\tN0-1\n"),
        "unknown news id",
        "/behaviors.tsv:1: field 'history'",
    ),
    Case(
        "unknown shown",
        _files("1\tU1\t11/11/2019 9:05:58 AM\tN0\tN7-1\n"),
        "unknown news id",
        "/behaviors.tsv:1: field 'impressions'",
    ),
    Case(
        "short line",
        _files(GOOD + "2\tU2\t11/11/2019 9:05:58 AM\n"),
        "missing field",
        "/behaviors.tsv:2: field 'history'",
    ),
    Case(
        "short news line",
        _files(GOOD, "N0\tsports\n"),
        "missing field",
        "/news.tsv:1: field 'subcategory'",
    ),
    Case("no rows", _files("\n"), "no rows", "/behaviors.tsv"),
    Case("one moment only", _files(GOOD), "no test impressions", "/behaviors.tsv"),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_bad_files_are_refused_with_one_line(case: Case, refused_run: RefusedRun) -> None:
    refused_run("news-feed", case.build, case.reason, case.where)
