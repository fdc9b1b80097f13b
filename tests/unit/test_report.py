"""The blueprint renders the same content to markdown and to self-contained HTML."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from mlsd.report import Blueprint, fmt


def _blueprint() -> Blueprint:
    bp = Blueprint("Ad Click", "mlsd run ad-click")
    bp.section("Data")
    bp.text("We logged **100** impressions with `p_true`.")
    bp.table(["model", "nce"], [["lgbm", 0.81234567], ["baseline", float("nan")]], caption="c")
    fig, ax = plt.subplots()
    ax.plot([0, 1], [0, 1])
    bp.figure(fig, "line", "A line <b>.")
    bp.section("Bullets")
    bp.text("- one\n- two")
    return bp


def test_markdown_has_sections_tables_and_figure_links() -> None:
    md = _blueprint().to_markdown()
    assert md.startswith("# Ad Click")
    assert "## 1. Data" in md and "## 2. Bullets" in md
    assert "| lgbm | 0.8123 |" in md
    assert "| baseline | — |" in md
    assert "![A line <b>.](figures/line.png)" in md


def test_html_is_self_contained_and_escaped() -> None:
    page = _blueprint().to_html()
    assert "data:image/png;base64," in page
    assert "A line &lt;b&gt;." in page  # captions are escaped
    assert "<strong>100</strong>" in page and "<code>p_true</code>" in page
    assert "<ul><li>one</li><li>two</li></ul>" in page
    assert "src='http" not in page and 'src="http' not in page


def test_write_creates_all_files(tmp_path: Path) -> None:
    _blueprint().write(tmp_path)
    assert (tmp_path / "blueprint.md").is_file()
    assert (tmp_path / "blueprint.html").is_file()
    assert (tmp_path / "figures" / "line.png").read_bytes()[:4] == b"\x89PNG"


def test_fmt() -> None:
    assert fmt(1234567) == "1,234,567"
    assert fmt(0.000012345) == "1.234e-05"
    assert fmt(True) == "yes"
    assert fmt(None) == "—"
