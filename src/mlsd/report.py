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
                    head = "".join(f"<th>{_inline(h)}</th>" for h in block.headers)
                    rows = "".join(
                        "<tr>" + "".join(f"<td>{_inline(c)}</td>" for c in r) + "</tr>"
                        for r in block.rows
                    )
                    cap = f"<caption>{_inline(block.caption)}</caption>" if block.caption else ""
                    body.append(f"<table>{cap}<tr>{head}</tr>{rows}</table>")
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


def _paragraph_html(text: str) -> str:
    lines = text.splitlines()
    if lines and all(line.startswith("- ") for line in lines):
        return "<ul>" + "".join(f"<li>{_inline(line[2:])}</li>" for line in lines) + "</ul>"
    return f"<p>{_inline(' '.join(lines))}</p>"


_HTML_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>
body {{ font: 15px/1.5 system-ui, sans-serif; max-width: 980px; margin: 2em auto; color: #222; }}
h1 {{ border-bottom: 2px solid #444; }} h2 {{ margin-top: 2em; border-bottom: 1px solid #ccc; }}
table {{ border-collapse: collapse; margin: 1em 0; }} caption {{ text-align: left; color: #555; }}
th, td {{ border: 1px solid #ccc; padding: 3px 8px; text-align: right; }}
th {{ background: #f2f2f2; }} td:first-child, th:first-child {{ text-align: left; }}
figure img {{ max-width: 100%; }} figcaption, .sub {{ color: #555; font-style: italic; }}
code {{ background: #f4f4f4; padding: 0 3px; }} nav {{ background: #fafafa; padding: .2em 1em; }}
</style></head><body>
{body}
</body></html>
"""
