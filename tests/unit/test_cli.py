"""The command line: the systems list, clear errors, exit codes."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from mlsd.cli import app

runner = CliRunner()


def test_systems_lists_all_ten() -> None:
    result = runner.invoke(app, ["systems"])
    assert result.exit_code == 0
    from mlsd.systems import SYSTEMS

    names = (
        "visual-search",
        "street-view-blur",
        "video-search",
        "harmful-content",
        "video-rec",
        "event-rec",
        "ad-click",
        "similar-listings",
        "news-feed",
        "people-you-may-know",
    )
    assert tuple(SYSTEMS) == names  # the book's ten, in chapter order
    assert [s.chapter for s in SYSTEMS.values()] == list(range(2, 12))
    for name in names:
        assert name in result.output
    assert "runs" in result.output


def test_unknown_system_lists_the_known_ones(tmp_path: Path) -> None:
    result = runner.invoke(app, ["run", "add-click", "--out", str(tmp_path / "r")])
    assert result.exit_code == 2
    assert "unknown system 'add-click'" in result.output
    assert "ad-click" in result.output and "news-feed" in result.output


def test_planned_system_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from mlsd.systems import SYSTEMS, System

    planned = System("chapter-12", 12, "A Later Chapter", "a system not built yet", None)
    monkeypatch.setitem(SYSTEMS, planned.name, planned)
    result = runner.invoke(app, ["run", planned.name, "--out", str(tmp_path / "r")])
    assert result.exit_code == 2
    assert "does not run yet" in result.output
    listing = runner.invoke(app, ["systems"])
    assert "planned" in listing.output and "chapter-12" in listing.output


def test_test_data_needs_data(tmp_path: Path) -> None:
    result = runner.invoke(app, ["run", "ad-click", "--test-data", "criteo:x.txt"])
    assert result.exit_code == 2
    assert "--test-data needs --data" in result.output


def test_serve_refuses_an_unfinished_run(tmp_path: Path) -> None:
    result = runner.invoke(app, ["serve", "ad-click", "--run", str(tmp_path)])
    assert result.exit_code == 2
    assert "not a finished run directory" in result.output


def test_video_rec_large_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    out = tmp_path / "r"
    result = runner.invoke(app, ["run", "video-rec", "--scale", "large", "--out", str(out)])
    assert result.exit_code == 2
    assert "not supported here" in " ".join(result.output.split())
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_run_refuses_an_out_that_is_not_a_run_and_leaves_it_alone(tmp_path: Path) -> None:
    out = tmp_path / "mine"
    out.mkdir()
    (out / "thesis.tex").write_text("years of work")
    # video-rec large is refused when its steps are listed, so nothing can run here either way
    result = runner.invoke(app, ["run", "video-rec", "--scale", "large", "--out", str(out)])
    assert result.exit_code == 2
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "is not an mlsd run" in errors[0] and "--force" in errors[0]
    assert (out / "thesis.tex").read_text() == "years of work"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine"]


def test_force_never_empties_the_home_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / ".profile").write_text("x")
    monkeypatch.setenv("HOME", str(home))
    result = runner.invoke(app, ["run", "video-rec", "--scale", "large", "--out", "~", "--force"])
    assert result.exit_code == 2
    assert "home directory" in result.output and "even with --force" in result.output
    assert (home / ".profile").exists()


def test_a_failed_forced_run_keeps_what_was_there(tmp_path: Path) -> None:
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("x")
    args = ["run", "video-rec", "--scale", "large", "--out", str(out), "--force"]
    result = runner.invoke(app, args)
    assert result.exit_code == 2 and "not supported here" in " ".join(result.output.split())
    assert [p.name for p in out.iterdir()] == ["notes.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine"]
