"""The 45-minute interview plan: decisions backed by a run's numbers, or left out.

The fixtures under ``data/interview/`` are real tiny runs' ``metrics.json`` (floats rounded,
long lists cut) with their blueprints' section headings, so every path the plans cite is checked
against what the systems really write."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import pytest

from mlsd.interview import InterviewError, build_interview, derived, interview_for
from mlsd.interview_plan import BLOCKS, COMMON, resolve
from mlsd.interview_render import to_markdown, write_interview
from mlsd.interview_systems import SYSTEM_PLANS

DATA = Path(__file__).parent / "data" / "interview"
FIXTURES = sorted(p.stem for p in DATA.glob("*.json"))


def fixture(system: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((DATA / f"{system}.json").read_text())
    return data


def run_dir(tmp_path: Path, system: str, metrics: dict[str, Any] | None = None) -> Path:
    """A run directory holding the fixture's metrics.json and a blueprint with its headings."""
    data = fixture(system)
    run = tmp_path / system
    run.mkdir()
    (run / "metrics.json").write_text(json.dumps(metrics or data["metrics"]))
    (run / "blueprint.md").write_text(
        "# t\n\n" + "\n\n".join(f"## {h}" for h in data["blueprint_sections"]) + "\n"
    )
    return run


def test_resolve_follows_indirections_and_misses_cleanly() -> None:
    m = {"chosen_model": "dcn", "models": {"dcn": {"nce": 0.9}}, "a": {"b": "x"}}
    assert resolve(m, "models.<chosen_model>.nce") == 0.9
    assert resolve(m, "models.<a.b>.nce") is None
    assert resolve(m, "models.<missing>.nce") is None
    assert resolve(m, "models.dcn.nce.deeper") is None


def test_without_a_run_the_plan_has_every_claim_and_no_number() -> None:
    iv = build_interview("ad-click", None)
    assert [b.block.key for b in iv.blocks] == [b.key for b in BLOCKS]
    assert all(it.evidence is None for b in iv.blocks for it in b.items)
    defaults = [d for d in (*SYSTEM_PLANS["ad-click"].decisions, *COMMON) if d.default]
    assert sum(len(b.items) for b in iv.blocks) == len(defaults)
    claims = {it.claim for b in iv.blocks for it in b.items}
    assert not any(c.startswith("No model met the budget") for c in claims)  # a fallback
    md = to_markdown(iv, Path.cwd())
    assert "mlsd run ad-click" in md and "mlsd interview ad-click --run" in md
    assert not any(ch.isdigit() for ch in md.split("## Minutes 40")[1].split("**Decide:**")[1])


@pytest.mark.parametrize("system", FIXTURES)
def test_each_system_decision_is_backed_on_a_real_run(system: str) -> None:
    """Every decision of the system's own plan resolves on its real run, unless its condition
    says it does not apply (one of each pair of alternatives)."""
    metrics = fixture(system)["metrics"]
    iv = build_interview(system, metrics)
    printed = {it.claim for b in iv.blocks for it in b.items}
    full = {**metrics, "derived": derived(metrics)}
    for d in SYSTEM_PLANS[system].decisions:
        if d.holds(full):
            assert d.claim in printed, f"{system}: {d.claim!r} has no number in the run"
    assert all(it.evidence for b in iv.blocks for it in b.items)
    assert iv.measured >= len(BLOCKS)
    # the common ones every run measures: the EDA and where the time goes
    assert "Profile the data before building features, and rule out leaks" in printed
    assert "Name the step that dominates cost, and scale it out first" in printed


def test_a_decision_without_its_number_is_left_out() -> None:
    metrics = copy.deepcopy(fixture("ad-click")["metrics"])
    before = build_interview("ad-click", metrics)
    del metrics["oracle"]
    after = build_interview("ad-click", metrics)
    claims = {it.claim for b in after.blocks for it in b.items}
    assert after.dropped == before.dropped + 1 and after.measured == before.measured - 1
    assert not any(c.startswith("Start from the historical-CTR baseline") for c in claims)


def test_conditions_pick_the_decision_that_holds() -> None:
    metrics = copy.deepcopy(fixture("ad-click")["metrics"])
    chosen = metrics["chosen_model"]
    for meets in (True, False):
        metrics["models"][chosen]["meets_budget"] = meets
        claims = [it.claim for b in build_interview("ad-click", metrics).blocks for it in b.items]
        fits = any(c.startswith("Let the latency budget pick") for c in claims)
        misses = any(c.startswith("No model met the budget") for c in claims)
        assert (fits, misses) == (meets, not meets)


def test_written_files_link_the_blueprint_sections(tmp_path: Path) -> None:
    run = run_dir(tmp_path, "ad-click")
    iv = interview_for("ad-click", run)
    paths = write_interview(iv, run)
    assert [p.name for p in paths] == ["interview_timeline.png", "interview.md", "interview.html"]
    assert paths[0].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    html = (run / "interview.html").read_text()
    md = (run / "interview.md").read_text()
    assert "data:image/png;base64," in html and "figures/interview_timeline.png" in md
    serving = next(h for h in fixture("ad-click")["blueprint_sections"] if h.endswith("Serving"))
    n = serving.split(".")[0]
    assert f"blueprint.html#s{n}" in html and f"blueprint.md#{n}-serving" in md
    assert "Minutes 40–45" in html and str(iv.measured) in html
    # the run's scale as a word; ad-click's scale step writes a dict under the same key
    assert re.search(r"\((tiny|unknown) scale,", html) and "{&#39;" not in html
    # written elsewhere, the links still reach the run's blueprint
    out = tmp_path / "elsewhere" / "x"
    write_interview(iv, out)
    assert "../../ad-click/blueprint.html#s" in (out / "interview.html").read_text()


def test_bad_runs_are_refused_with_the_reason(tmp_path: Path) -> None:
    with pytest.raises(InterviewError, match=r"no metrics\.json"):
        interview_for("ad-click", tmp_path)
    (tmp_path / "metrics.json").write_text("{not json")
    with pytest.raises(InterviewError, match="not valid JSON"):
        interview_for("ad-click", tmp_path)
    (tmp_path / "metrics.json").write_text(json.dumps({"system": "video-rec"}))
    with pytest.raises(InterviewError, match="run of 'video-rec', not of 'ad-click'"):
        interview_for("ad-click", tmp_path)
