"""``mlsd runs``: finding run directories, what a run's summary says, the index page."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from mlsd.cli import app
from mlsd.run_index import (
    Headline,
    find_runs,
    headline_of,
    scan_runs,
    summarise_run,
)
from mlsd.run_index_page import table_rows, write_index_html

runner = CliRunner()


def write_run(
    path: Path,
    system: str = "ad-click",
    *,
    created: str = "2026-12-01T10:00:00+00:00",
    **metrics: Any,
) -> Path:
    """A finished run directory as the runner leaves it: marker, metrics.json, blueprint."""
    path.mkdir(parents=True)
    marker = {"system": system, "run_id": "abc123", "created": created, "host": "h"}
    (path / ".mlsd-run").write_text(json.dumps(marker))
    body = {
        "system": system,
        "run_id": "abc123",
        "scale": "tiny",
        "seed": 3,
        "framing": {"offline_metrics": ["nce", "logloss"]},
        "data": {"source": "world", "rows": 100},
        "models": {"base": {"nce": 1.0, "logloss": 0.1}, "gbdt": {"nce": 0.9, "logloss": 0.09}},
        "chosen_model": "gbdt",
        "online": {
            "primary_metric": "ctr",
            "tests": {"ctr": {"relative_lift": 0.125}},
            "decision": "ship",
        },
        "steps": {"data": {"seconds": 1.5}},
        "total_seconds": 12.0,
        **metrics,
    }
    (path / "metrics.json").write_text(json.dumps(body))
    (path / "blueprint.html").write_text("<html><body><h1>bp</h1></body></html>")
    return path


def test_find_runs_needs_the_marker_and_skips_hidden_and_inner_folders(tmp_path: Path) -> None:
    a = write_run(tmp_path / "a")
    b = write_run(tmp_path / "deep" / "er" / "b")
    write_run(tmp_path / ".b.tmp-123")  # a run still being written
    write_run(a / "artifacts" / "nested")  # the inside of a run is not searched
    (tmp_path / "legacy").mkdir()
    (tmp_path / "legacy" / "metrics.json").write_text("{}")  # no marker: not a run
    assert find_runs(tmp_path) == [a, b]
    assert find_runs(a) == [a]


def test_summary_reads_the_run(tmp_path: Path) -> None:
    s = summarise_run(write_run(tmp_path / "r"))
    assert (s.system, s.scale, s.seed, s.data, s.engine) == (
        "ad-click",
        "tiny",
        3,
        "world",
        "local",
    )
    assert s.chosen_model == "gbdt" and s.headline is not None
    assert s.headline.metric == "nce" and s.headline.values == {"base": 1.0, "gbdt": 0.9}
    assert s.headline_value == 0.9
    assert (s.ab_decision, s.ab_lift) == ("ship", 0.125)
    assert s.created == "2026-12-01T10:00:00+00:00" and s.total_seconds == 12.0


def test_summary_of_a_file_run_without_online_test(tmp_path: Path) -> None:
    run = write_run(
        tmp_path / "r",
        data={"source": "file", "format": "criteo", "path": "/d/train.txt"},
        online=None,
        skipped=[{"step": "online", "reason": "a static file has no users to test on"}],
        engine="ray",
    )
    s = summarise_run(run)
    assert s.data == "criteo:/d/train.txt" and s.engine == "ray"
    assert (s.ab_decision, s.ab_lift) == ("skipped", None)


def test_headline_matches_at_k_on_the_test_split_first() -> None:
    metrics = {
        "framing": {"offline_metrics": ["recall@k", "ndcg@k"]},
        "chosen_model": "two_tower",
        "models": {
            "two_tower": {
                "validation": {"recall@10": 0.5},
                "slices": {"cold": {"recall@10": 0.1}},
                "offline": {"recall@10": 0.4, "ndcg@10": 0.3},
            },
            "popular": {"offline": {"recall@10": 0.2}},
        },
    }
    h = headline_of(metrics)
    assert h is not None and h.metric == "recall@10"
    assert h.values == {"two_tower": 0.4, "popular": 0.2}
    # "roc_auc per head" finds roc_auc; mean_pr_auc stands for pr_auc
    h2 = headline_of(
        {
            "framing": {"offline_metrics": ["pr_auc", "roc_auc"]},
            "chosen_model": "m",
            "models": {"m": {"mean_pr_auc": 0.7, "flagged": True}},
        }
    )
    assert h2 is not None and (h2.metric, h2.values["m"]) == ("mean_pr_auc", 0.7)
    assert headline_of({"framing": {"offline_metrics": ["mrr"]}, "models": {"m": {}}}) is None
    coco = {"framing": {"offline_metrics": ["mAP@.5"]}, "models": {"m": {"map": 0.3, "map50": 0.6}}}
    assert headline_of(coco) == Headline("map50", {"m": 0.6})


def test_a_broken_run_is_reported_not_fatal(tmp_path: Path) -> None:
    write_run(tmp_path / "good")
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / ".mlsd-run").write_text("{}")
    (bad / "metrics.json").write_text('{\n  "system": "ad-click",\n  oops\n}')
    runs, problems = scan_runs(tmp_path)
    assert [r.path.name for r in runs] == ["good"]
    assert len(problems) == 1 and f"{bad / 'metrics.json'}:3" in problems[0]


def test_table_rows_and_order(tmp_path: Path) -> None:
    write_run(tmp_path / "old", created="2026-01-01T00:00:00+00:00")
    write_run(tmp_path / "new", created="2026-02-01T00:00:00+00:00")
    write_run(tmp_path / "pymk", system="people-you-may-know")
    runs, _ = scan_runs(tmp_path)
    rows = table_rows(runs, tmp_path)
    assert [r[-1] for r in rows] == ["new", "old", "pymk"]  # by system, newest first
    assert rows[0][:7] == ["ad-click", "tiny", "3", "world", "gbdt", "nce 0.9", "ship (+12.5%)"]


def test_index_page_has_one_table_per_system_and_relative_links(tmp_path: Path) -> None:
    write_run(tmp_path / "a b")  # a space: the link is URL-quoted
    write_run(tmp_path / "c", models={"<m>": {"nce": 0.5}}, chosen_model="<m>")
    write_run(tmp_path / "sub" / "p", system="video-rec")
    runs, _ = scan_runs(tmp_path)
    page = write_index_html(runs, tmp_path)
    text = page.read_text()
    assert page == tmp_path / "index.html"
    assert text.count("<table") == 2 and "video-rec" in text
    assert "&lt;m&gt;" in text and "<m>" not in text  # escaped
    hrefs = re.findall(r'href="([^"#]+)"', text)
    assert "a%20b/blueprint.html" in hrefs and "sub/p/blueprint.html" in hrefs
    for href in hrefs:
        assert (tmp_path / href.replace("%20", " ")).is_file(), href
    ids = set(re.findall(r'id="([^"]+)"', text))
    assert set(re.findall(r'href="#([^"]+)"', text)) == ids


def test_cli_runs_lists_and_writes_the_index(tmp_path: Path) -> None:
    write_run(tmp_path / "r1")
    result = runner.invoke(app, ["runs", str(tmp_path), "--html"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "ad-click" in result.output and "gbdt" in result.output and "ship" in result.output
    assert (tmp_path / "index.html").is_file()


def test_cli_runs_on_a_missing_folder_fails_clearly(tmp_path: Path) -> None:
    result = runner.invoke(app, ["runs", str(tmp_path / "nope")])
    assert result.exit_code == 2
    assert "not a directory" in result.output
