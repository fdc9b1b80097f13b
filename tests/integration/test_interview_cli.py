"""`mlsd interview SYSTEM [--run DIR] [--out DIR]`: the files, the plan without a run, errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from typer.testing import CliRunner

from mlsd.cli import app

runner = CliRunner()
FIXTURE = Path(__file__).parents[1] / "unit" / "data" / "interview" / "ad-click.json"


def _run(tmp_path: Path) -> Path:
    data = json.loads(FIXTURE.read_text())
    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.json").write_text(json.dumps(data["metrics"]))
    (run / "blueprint.md").write_text("\n".join(f"## {h}" for h in data["blueprint_sections"]))
    return run


def test_interview_writes_the_plan_beside_the_blueprint(tmp_path: Path) -> None:
    run = _run(tmp_path)
    result = runner.invoke(app, ["interview", "ad-click", "--run", str(run)])
    assert result.exit_code == 0, result.output
    for name in ("interview.md", "interview.html", "figures/interview_timeline.png"):
        assert (run / name).is_file(), name
    md = (run / "interview.md").read_text()
    assert md.count("## Minutes ") == 5 and "(blueprint.md#" in md
    assert "decisions backed by this run's numbers" in result.output
    # --out writes elsewhere and leaves the run as it was
    out = tmp_path / "out"
    result = runner.invoke(app, ["interview", "ad-click", "--run", str(run), "--out", str(out)])
    assert result.exit_code == 0 and (out / "interview.html").is_file()


def test_interview_without_a_run_prints_the_plan_and_how_to_get_numbers() -> None:
    result = runner.invoke(app, ["interview", "ad-click"])
    assert result.exit_code == 0, result.output
    assert "## Minutes 0–5" in result.output and "mlsd run ad-click" in result.output


def test_interview_errors_exit_2_with_the_reason(tmp_path: Path) -> None:
    result = runner.invoke(app, ["interview", "ad-click", "--run", str(tmp_path)])
    assert result.exit_code == 2 and "no metrics.json" in result.output
    result = runner.invoke(app, ["interview", "no-such-system"])
    assert result.exit_code == 2 and "unknown system" in result.output
    run = _run(tmp_path)
    result = runner.invoke(app, ["interview", "video-rec", "--run", str(run)])
    assert result.exit_code == 2 and "not of 'video-rec'" in result.output
    assert not (run / "interview.md").exists()
    shutil.rmtree(run)


def test_interview_html_renders_in_a_browser(tmp_path: Path) -> None:
    """Headless Chromium opens interview.html: the timeline decodes, every link to the
    blueprint's sections resolves, no console errors, no sideways scrolling on a phone."""
    from browser_check import check_page, require_chromium

    require_chromium()  # skips, with the reason, where Chromium or Playwright is missing
    run = _run(tmp_path)
    heads = json.loads(FIXTURE.read_text())["blueprint_sections"]
    (run / "blueprint.html").write_text(
        "<!doctype html><html><body>"
        + "".join(f"<h2 id='s{h.split('.')[0]}'>{h}</h2>" for h in heads)
        + "</body></html>"
    )
    result = runner.invoke(app, ["interview", "ad-click", "--run", str(run)])
    assert result.exit_code == 0, result.output
    report = check_page(run / "interview.html", tmp_path / "shots")
    assert len(report.figures) == 1 and not report.broken_figures
    assert report.links >= 5 and report.broken_links == []
    assert report.console_errors == []
    assert all(px == 0 for px in report.overflow_px.values()), report.overflow_px
    assert all(p.is_file() for p in report.screenshots)
