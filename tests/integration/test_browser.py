"""A tiny ad-click run, tracked and opened in a real browser.

One ``mlsd run ad-click --scale tiny --track`` (the command a reader types) feeds three checks:
MLflow lists the run with metrics.json's numbers and the run's files; headless Chromium opens
its ``blueprint.html`` and the ``mlsd runs --html`` index (every figure decodes, every internal
link resolves, tables are there, no console errors, no sideways scrolling of the page on a
phone: wide tables scroll inside their wrapper). Screenshots at 1280 and 390 px are kept in
``<run>/screenshots/`` for whoever reviews a change. Without Chromium the browser checks are
skipped with the reason; the tracking check still runs.
"""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from browser_check import check_page, require_chromium
from mlsd.cli import app

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("browser")]
runner = CliRunner()


@pytest.fixture(scope="module")
def tracked(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    root = tmp_path_factory.mktemp("runs")
    out, uri = root / "ad-click-tiny", f"sqlite:///{root}/mlflow.db"
    track = ["--track"] if importlib.util.find_spec("mlflow") else []  # else: that test skips
    result = runner.invoke(
        app,
        ["run", "ad-click", "--scale", "tiny", "--seed", "3", "--out", str(out), *track],
        env={"MLSD_TRACKING_URI": uri, "MLSD_TRACK": None},
    )
    assert result.exit_code == 0, result.output
    return out, uri


def _numbers(obj: Any, path: str = "") -> dict[str, float]:
    if isinstance(obj, dict):
        return {k: v for key, val in obj.items() for k, v in _numbers(val, f"{path}.{key}").items()}
    if isinstance(obj, list):
        return {k: v for i, val in enumerate(obj) for k, v in _numbers(val, f"{path}.{i}").items()}
    return {path[1:]: float(obj)} if isinstance(obj, bool | int | float) else {}


def test_the_tracked_run_is_in_the_mlflow_store(tracked: tuple[Path, str]) -> None:
    pytest.importorskip("mlflow", reason="MLflow is not installed (the track extra)")
    from mlflow.tracking import MlflowClient

    run_dir, uri = tracked
    m = json.loads((run_dir / "metrics.json").read_text())
    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("mlsd/ad-click")
    assert experiment is not None
    [run] = client.search_runs([experiment.experiment_id])
    assert run.info.status == "FINISHED"
    p = run.data.params
    assert (p["system"], p["scale"], p["seed"], p["data"]) == ("ad-click", "tiny", "3", "world")
    assert p["engine"]
    logged = run.data.metrics
    assert len(logged) == len(_numbers(m)) > 100
    for name, figures in m["models"].items():
        assert logged[f"{name}/nce"] == figures["nce"], name
        assert logged[f"{name}/latency_ms.p99"] == figures["latency_ms"]["p99"], name
    for step, timing in m["steps"].items():
        assert logged[f"steps/{step}.seconds"] == timing["seconds"], step
    assert logged["online/tests.ctr.p_value"] == m["online"]["tests"]["ctr"]["p_value"]
    assert run.data.tags["mlsd.chosen_model"] == m["chosen_model"]
    assert run.data.tags["mlsd.ab_decision"] == m["online"]["decision"]
    files = {a.path for a in client.list_artifacts(run.info.run_id, "blueprint")}
    assert {"blueprint/blueprint.html", "blueprint/blueprint.md", "blueprint/metrics.json"} <= files
    served = {a.path for a in client.list_artifacts(run.info.run_id, "served_model")}
    assert {"served_model/manifest.json", "served_model/serving.json"} <= served


def test_the_blueprint_in_a_browser(tracked: tuple[Path, str]) -> None:
    require_chromium()
    run_dir, _ = tracked
    report = check_page(run_dir / "blueprint.html", run_dir / "screenshots")
    assert len(report.figures) >= 3
    assert all(w > 100 and h > 100 for _, w, h in report.figures), report.figures
    assert report.links >= 5 and report.broken_links == []
    assert report.tables >= 5
    assert report.console_errors == []
    assert report.overflow_px == {1280: 0, 390: 0}  # wide tables scroll in their wrapper
    for shot in report.screenshots:
        assert shot.parent == run_dir / "screenshots"
        assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [s.name for s in report.screenshots] == ["blueprint-1280.png", "blueprint-390.png"]


def test_blueprint_tables_align_text_left_and_numbers_right(tracked: tuple[Path, str]) -> None:
    page = (tracked[0] / "blueprint.html").read_text()
    assert 'name="viewport"' in page
    assert page.count("<div class='table-wrap'><table>") == page.count("<table>")
    numeric = re.findall(r"<td class='num'>([^<]*)</td>", page)
    text = re.findall(r"<td>([^<]*)</td>", page)
    assert numeric and text
    assert all(re.search(r"\d|—", cell) for cell in numeric)
    assert "dcn_v2" in text and "dcn_v2" not in numeric  # model names are text


def test_the_runs_index_in_a_browser(tracked: tuple[Path, str]) -> None:
    run_dir, _ = tracked
    result = runner.invoke(app, ["runs", str(run_dir.parent), "--html"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "ad-click" in result.output and "tiny" in result.output
    require_chromium()
    report = check_page(run_dir.parent / "index.html", run_dir / "screenshots")
    assert report.tables == 1 and report.broken_links == [] and report.links >= 3
    assert report.console_errors == []
    assert report.overflow_px == {1280: 0, 390: 0}
    assert all(s.is_file() for s in report.screenshots)


def test_the_checker_catches_what_a_reader_would_see_broken(tmp_path: Path) -> None:
    """The checks can fail: a page with every fault the checker looks for."""
    require_chromium()
    (tmp_path / "other.html").write_text("<p id='here'>x</p>")
    page = tmp_path / "broken.html"
    page.write_text(
        "<!doctype html><html><head><meta name='viewport' content='width=device-width'></head>"
        "<body><h1 id='top'>t</h1><img src='missing.png'><img src='data:image/png;base64,AAAA'>"
        "<a href='#top'>ok</a><a href='#nowhere'>bad anchor</a><a href='other.html#here'>ok</a>"
        "<a href='other.html#gone'>bad</a><a href='nofile.html'>bad file</a>"
        "<a href='https://example.org/'>external, not checked</a>"
        "<div style='width:2000px'>too wide</div><script>console.error('boom')</script>"
        "</body></html>"
    )
    report = check_page(page, tmp_path / "shots", widths=(390,))
    assert report.tables == 0 and report.links == 5
    assert sorted(report.broken_links) == ["#nowhere", "nofile.html", "other.html#gone"]
    assert len(report.broken_figures) == 2
    assert any("boom" in e for e in report.console_errors)
    assert report.overflow_px[390] > 1000


def test_without_chromium_the_check_is_skipped_with_the_reason(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import browser_check

    monkeypatch.setattr(browser_check, "chromium_path", lambda: None)
    with pytest.raises(pytest.skip.Exception, match="no Chromium at /usr/bin/chromium"):
        browser_check.require_chromium()
