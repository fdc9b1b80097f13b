"""The blueprint: a system's chapter, written with the numbers measured in this run.

A :class:`Blueprint` is built section by section in the book's order (paragraphs, tables,
figures), then rendered twice: ``blueprint.md`` (figures as PNG files next to it) and
``blueprint.html`` (self-contained: figures embedded as base64, no external assets).
"""

from __future__ import annotations

import base64
import html
import io
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from matplotlib.figure import Figure


@dataclass
class _Paragraph:
    text: str


@dataclass
class _Table:
    headers: list[str]
    rows: list[list[str]]
    caption: str


@dataclass
class _Figure:
    name: str
    png: bytes
    caption: str


@dataclass
class Section:
    title: str
    blocks: list[_Paragraph | _Table | _Figure] = field(default_factory=list)


def fmt(value: Any, digits: int = 4) -> str:
    """Format a number for a table: floats to ``digits`` significant digits, NaN as an em dash."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if value != value:  # NaN
            return "—"
        if value != 0 and (abs(value) >= 1e5 or abs(value) < 1e-3):
            return f"{value:.{digits - 1}e}"
        return f"{value:.{digits}g}"
    return str(value)


class Blueprint:
    """A chapter under construction: sections of paragraphs, tables and figures."""

    def __init__(self, title: str, subtitle: str = "") -> None:
        self.title = title
        self.subtitle = subtitle
        self.sections: list[Section] = []

    def section(self, title: str) -> Section:
        sec = Section(title)
        self.sections.append(sec)
        return sec

    def _current(self) -> Section:
        if not self.sections:
            return self.section("Overview")
        return self.sections[-1]

    def text(self, text: str) -> None:
        """Add a paragraph (a little markdown: **bold**, `code`, and '- ' bullet lines)."""
        self._current().blocks.append(_Paragraph(text.strip()))

    def table(
        self, headers: Sequence[str], rows: Sequence[Sequence[Any]], caption: str = ""
    ) -> None:
        cells = [[fmt(v) for v in row] for row in rows]
        self._current().blocks.append(_Table(list(headers), cells, caption))

    def figure(self, fig: Figure, name: str, caption: str) -> None:
        """Add a matplotlib figure; it is rendered to PNG now and closed."""
        import matplotlib.pyplot as plt

        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
        plt.close(fig)
        self._current().blocks.append(_Figure(name, buf.getvalue(), caption))

    # -- rendering -------------------------------------------------------------------------
    def write(self, out_dir: Path) -> None:
        """Write ``blueprint.md``, ``figures/*.png`` and ``blueprint.html`` into ``out_dir``."""
        fig_dir = out_dir / "figures"
        fig_dir.mkdir(parents=True, exist_ok=True)
        for sec in self.sections:
            for block in sec.blocks:
                if isinstance(block, _Figure):
                    (fig_dir / f"{block.name}.png").write_bytes(block.png)
        (out_dir / "blueprint.md").write_text(self.to_markdown(), encoding="utf-8")
        (out_dir / "blueprint.html").write_text(self.to_html(), encoding="utf-8")

    def to_markdown(self) -> str:
        out = [f"# {self.title}", ""]
        if self.subtitle:
            out += [f"_{self.subtitle}_", ""]
        for i, sec in enumerate(self.sections, 1):
            out += [f"## {i}. {sec.title}", ""]
            for block in sec.blocks:
                if isinstance(block, _Paragraph):
                    out += [block.text, ""]
                elif isinstance(block, _Table):
                    out.append("| " + " | ".join(block.headers) + " |")
                    out.append("|" + "---|" * len(block.headers))
                    out += ["| " + " | ".join(r) + " |" for r in block.rows]
                    out += ([f"_{block.caption}_"] if block.caption else []) + [""]
                else:
                    out += [
                        f"![{block.caption}](figures/{block.name}.png)",
                        f"_{block.caption}_",
                        "",
                    ]
        return "\n".join(out)

    def to_html(self) -> str:
        body: list[str] = [f"<h1>{html.escape(self.title)}</h1>"]
        if self.subtitle:
            body.append(f"<p class='sub'>{html.escape(self.subtitle)}</p>")
        toc = "".join(
            f"<li><a href='#s{i}'>{html.escape(s.title)}</a></li>"
            for i, s in enumerate(self.sections, 1)
        )
        body.append(f"<nav><ol>{toc}</ol></nav>")
        for i, sec in enumerate(self.sections, 1):
            body.append(f"<h2 id='s{i}'>{i}. {html.escape(sec.title)}</h2>")
            for block in sec.blocks:
                if isinstance(block, _Paragraph):
                    body.append(_paragraph_html(block.text))
                elif isinstance(block, _Table):
                    body.append(_table_html(block))
                else:
                    data = base64.b64encode(block.png).decode("ascii")
                    body.append(
                        f"<figure><img alt='{html.escape(block.caption)}' "
                        f"src='data:image/png;base64,{data}'/>"
                        f"<figcaption>{_inline(block.caption)}</figcaption></figure>"
                    )
        return _HTML_PAGE.format(title=html.escape(self.title), body="\n".join(body))


def _inline(text: str) -> str:
    """Escape, then render **bold** and `code`."""
    out = html.escape(text)
    out = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", out)
    return re.sub(r"`(.+?)`", r"<code>\1</code>", out)


# a table cell that reads as a number (text columns are left-aligned, numbers right-aligned):
# 0.912, 1,234, -3.2e-05, +26.7%, 12 ms, 1.5×, $0.19, [0.025, 0.075]
_NUMBER = r"[+\-−±~≈<>]?\s?[$€£]?\d[\d,]*(?:\.\d+)?(?:e[+\-]?\d+)?(?:\s?(?:%|×|x|[a-zA-Zµ]{1,3}))?"
_NUMERIC_CELL = re.compile(rf"[\[(]?{_NUMBER}(?:\s?(?:,|–|-|to)\s?{_NUMBER})?[\])]?")


def _table_html(block: _Table) -> str:
    """A table in a sideways-scrolling wrapper; a column whose every cell (dashes aside) reads
    as a number gets ``class='num'`` (right-aligned), the others stay left-aligned."""
    numeric = [
        any(c not in ("—", "") for c in col)
        and all(c in ("—", "") or _NUMERIC_CELL.fullmatch(c.strip()) for c in col)
        for col in zip(*block.rows, strict=False)
    ] or [False] * len(block.headers)
    numeric += [False] * (len(block.headers) - len(numeric))

    def cls(j: int, text: str = "") -> str:
        if j < len(numeric) and numeric[j]:
            return " class='num'"
        return " class='long'" if len(text) > 40 else ""  # wraps, but not to a sliver

    head = "".join(f"<th{cls(j)}>{_inline(h)}</th>" for j, h in enumerate(block.headers))
    rows = "".join(
        "<tr>" + "".join(f"<td{cls(j, c)}>{_inline(c)}</td>" for j, c in enumerate(r)) + "</tr>"
        for r in block.rows
    )
    cap = f"<caption>{_inline(block.caption)}</caption>" if block.caption else ""
    table = f"<table>{cap}<thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"
    return f"<div class='table-wrap'>{table}</div>"


def _paragraph_html(text: str) -> str:
    lines = text.splitlines()
    if lines and all(line.startswith("- ") for line in lines):
        return "<ul>" + "".join(f"<li>{_inline(line[2:])}</li>" for line in lines) + "</ul>"
    return f"<p>{_inline(' '.join(lines))}</p>"


_HTML_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1"><title>{title}</title>
<style>
*, *::before, *::after {{ box-sizing: border-box; }}
body {{ font: 15px/1.5 system-ui, sans-serif; max-width: 980px; margin: 2em auto; padding: 0 1em;
       color: #222; overflow-wrap: break-word; }}
h1 {{ border-bottom: 2px solid #444; }} h2 {{ margin-top: 2em; border-bottom: 1px solid #ccc; }}
.table-wrap {{ max-width: 100%; overflow-x: auto; margin: 1em 0; }}
table {{ border-collapse: collapse; }} caption {{ text-align: left; color: #555; }}
th, td {{ border: 1px solid #ccc; padding: 3px 8px; text-align: left; vertical-align: top; }}
th {{ background: #f2f2f2; }} td:not(.num) {{ min-width: 6em; }} td.long {{ min-width: 16em; }}
.num {{ text-align: right; white-space: nowrap; font-variant-numeric: tabular-nums; }}
figure {{ margin: 1em 0; }} figure img {{ max-width: 100%; height: auto; }}
figcaption, .sub {{ color: #555; font-style: italic; }}
code {{ background: #f4f4f4; padding: 0 3px; overflow-wrap: anywhere; }}
nav {{ background: #fafafa; padding: .2em 1em; }}
@media (max-width: 600px) {{ body {{ margin: 1em auto; font-size: 14px; }} }}
</style></head><body>
{body}
</body></html>
"""
