"""The interview plan written out: ``interview.md``, ``interview.html`` and the timeline figure.

The HTML is self-contained (the timeline embedded as base64, as in the blueprint) and rendered
from ``templates/interview.html.j2``; links point at the blueprint's sections
(``blueprint.html#sN`` / ``blueprint.md#n-title``) relative to where the files are written.
"""

from __future__ import annotations

import base64
import html
import io
import os
import re
import textwrap
from pathlib import Path

from mlsd.artifacts import write_bytes, write_text
from mlsd.interview import Interview, Item

TIMELINE = "interview_timeline"
_COLOURS = ("#4c72b0", "#55a868", "#c44e52", "#8172b2", "#ccb974")


def timeline_png(interview: Interview) -> bytes:
    """The 45 minutes as a horizontal timeline: one bar per block, with its decisions counted."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9.0, 2.6))
    for i, planned in enumerate(interview.blocks):
        b = planned.block
        span = b.end_min - b.start_min
        ax.broken_barh([(b.start_min, span)], (0, 1), color=_COLOURS[i % 5])
        n = len(planned.items)
        measured = sum(1 for it in planned.items if it.evidence is not None)
        count = f"{n} decision{'' if n == 1 else 's'}" + (
            f", {measured} measured" if interview.run_dir is not None else ""
        )
        inside = span >= 10
        title = textwrap.fill(b.title, width=max(12, int(span * 1.9)))
        ax.text(
            (b.start_min + b.end_min) / 2,
            0.5 if inside else 1.08,
            f"{title}\n{count}",
            ha="center",
            va="center" if inside else "bottom",
            fontsize=7,
            color="white" if inside else "black",
        )
    ax.set_xlim(0, 45)
    ax.set_ylim(0, 1.9)
    ax.set_yticks([])
    ax.set_xticks([b.block.start_min for b in interview.blocks] + [45])
    ax.set_xlabel("minutes")
    ax.set_title(f"The 45-minute interview: {interview.system}", fontsize=10)
    for side in ("top", "right", "left"):
        ax.spines[side].set_visible(False)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def _md_slug(title: str) -> str:
    """GitHub's heading anchor of ``## N. Title``."""
    return re.sub(r"[^\w\- ]", "", title.lower()).replace(" ", "-")


def _blueprint_link(interview: Interview, out_dir: Path, name: str) -> str | None:
    if interview.run_dir is None:
        return None
    rel = os.path.relpath(interview.run_dir.resolve() / name, out_dir.resolve())
    return rel.replace(os.sep, "/")


def _how_to_get_numbers(interview: Interview) -> str:
    return (
        f"No run given: these are the decisions without their numbers. Run "
        f"`mlsd run {interview.system} --out runs/{interview.system}` and then "
        f"`mlsd interview {interview.system} --run runs/{interview.system}` to back each one "
        "with the numbers measured in that run."
    )


def to_markdown(interview: Interview, out_dir: Path, *, figure: bool = True) -> str:
    """The plan as markdown; ``figure=False`` leaves out the timeline (printed, no file)."""
    bp_md = _blueprint_link(interview, out_dir, "blueprint.md")
    out = [f"# The 45-minute interview: {interview.system}", ""]
    if interview.run_dir is None:
        out += [_how_to_get_numbers(interview), ""]
    else:
        out += [
            f"Numbers from run `{interview.run_id}` ({interview.scale or 'unknown'} scale, "
            f"[blueprint]({bp_md})); {interview.measured} decisions backed by measurements, "
            f"{interview.dropped} left out because the run has no number for them.",
            "",
        ]
    if figure:
        out += [f"![The 45-minute timeline](figures/{TIMELINE}.png)", ""]
    for planned in interview.blocks:
        b = planned.block
        out += [f"## Minutes {b.start_min}–{b.end_min}: {b.title}", "", "**Ask:**", ""]
        out += [f"- {q}" for q in planned.questions]
        out += ["", "**Decide:**", ""]
        if not planned.items:
            out.append("- (nothing this run measured backs a decision here)")
        for it in planned.items:
            out.append(f"- **{it.claim}**" + _md_evidence(it, bp_md))
        out.append("")
    return "\n".join(out)


def _md_evidence(it: Item, bp_md: str | None) -> str:
    if it.evidence is None:
        return "."
    link = ""
    if bp_md and it.section_anchor and it.section_title:
        n = it.section_anchor[1:]
        link = f" ([blueprint §{n}]({bp_md}#{_md_slug(f'{n}. {it.section_title}')}))"
    return f": {it.evidence}{link}."


def _inline(text: str) -> str:
    out = html.escape(text)
    out = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", out)
    return re.sub(r"`(.+?)`", r"<code>\1</code>", out)


def to_html(interview: Interview, out_dir: Path, png: bytes) -> str:
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("mlsd", "templates"),
        autoescape=jinja2.select_autoescape(["html", "j2"]),
        undefined=jinja2.StrictUndefined,
    )
    env.filters["inline"] = lambda s: jinja2.utils.markupsafe.Markup(_inline(s))
    bp_html = _blueprint_link(interview, out_dir, "blueprint.html")
    return env.get_template("interview.html.j2").render(
        iv=interview,
        bp_html=bp_html,
        no_run=_how_to_get_numbers(interview) if interview.run_dir is None else None,
        timeline=base64.b64encode(png).decode("ascii"),
    )


def write_interview(interview: Interview, out_dir: Path) -> list[Path]:
    """Write ``interview.md``, ``interview.html`` and the timeline PNG into ``out_dir``
    (each file atomically)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    png = timeline_png(interview)
    return [
        write_bytes(out_dir / "figures" / f"{TIMELINE}.png", png),
        write_text(out_dir / "interview.md", to_markdown(interview, out_dir)),
        write_text(out_dir / "interview.html", to_html(interview, out_dir, png)),
    ]
