"""Open an HTML page in headless Chromium and check what a reader would see.

``check_page(html, shots_dir)`` loads a local page (``file://``), then reports every ``<img>``
with its decoded size (0 x 0: it did not decode), every internal link that does not resolve
(``#anchor`` without its element, a relative file that does not exist, or a file's
``#anchor`` missing in it), the number of tables, console errors and uncaught exceptions, one
full-page screenshot per viewport width, the load time, and by how many pixels the page is
wider than each viewport (0: no sideways scrolling of the page; wide tables scroll inside their
own wrapper).

Chromium is Debian's (``/usr/bin/chromium``, or ``MLSD_CHROMIUM``), driven by Playwright's
Python package; Playwright's own browser downloads are never used. The machine may have no
network: the flags below keep Chromium from trying (it would flood refused connections).
Tests call :func:`require_chromium` (or use the ``chromium`` fixture), which skips with the
reason when either piece is missing.
"""

from __future__ import annotations

import os
import re
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
WIDTHS = (1280, 390)


@dataclass
class PageReport:
    """What :func:`check_page` saw."""

    figures: list[tuple[str, int, int]]  # (src, shortened for data: URIs; natural w; natural h)
    broken_links: list[str]
    tables: int
    console_errors: list[str]
    screenshots: list[Path]
    load_ms: float
    overflow_px: dict[int, int] = field(default_factory=dict)  # width -> page wider by
    links: int = 0  # internal links checked

    @property
    def broken_figures(self) -> list[str]:
        return [src for src, w, h in self.figures if w <= 0 or h <= 0]


def chromium_path() -> Path | None:
    """Debian's Chromium (``MLSD_CHROMIUM`` overrides), or None."""
    candidates = [os.environ.get("MLSD_CHROMIUM"), "/usr/bin/chromium", shutil.which("chromium")]
    for candidate in candidates:
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return Path(candidate)
    return None


def chromium_missing() -> str | None:
    """Why the browser check cannot run here, or None when it can."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is not installed (pip install -e '.[dev]')"
    if chromium_path() is None:
        return (
            "no Chromium at /usr/bin/chromium (install Debian's: apt-get install chromium; "
            "`make setup` does when it can) or set MLSD_CHROMIUM"
        )
    return None


def require_chromium() -> Path:
    """Chromium's path, or skip the calling test saying why."""
    reason = chromium_missing()
    if reason is not None:
        pytest.skip(f"browser check skipped: {reason}")
    path = chromium_path()
    assert path is not None
    return path


@pytest.fixture(scope="session")
def chromium() -> Path:
    """A test that takes this fixture is skipped, with the reason, where Chromium is missing."""
    return require_chromium()


_PAGE_FACTS = """() => {
  const imgs = [...document.images].map(i => [i.getAttribute('src') || '', i.naturalWidth,
                                               i.naturalHeight]);
  const links = [...document.querySelectorAll('a[href]')].map(a => a.getAttribute('href'));
  const ids = [...document.querySelectorAll('[id]')].map(e => e.id)
      .concat([...document.querySelectorAll('a[name]')].map(e => e.getAttribute('name')));
  return {imgs, links, ids, tables: document.querySelectorAll('table').length};
}"""
_OVERFLOW = """() => Math.max(document.documentElement.scrollWidth, document.body.scrollWidth)
    - window.innerWidth"""


def check_page(html: Path, shots_dir: Path, widths: tuple[int, ...] = WIDTHS) -> PageReport:
    """Load ``html`` in headless Chromium and report what it shows (see the module docstring).
    Screenshots go to ``shots_dir/<page stem>-<width>.png``."""
    from playwright.sync_api import sync_playwright

    html = Path(html).resolve()
    if not html.is_file():
        raise FileNotFoundError(f"{html}: no such page to check")
    shots_dir.mkdir(parents=True, exist_ok=True)
    executable = require_chromium()
    errors: list[str] = []
    shots: list[Path] = []
    overflow: dict[int, int] = {}
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(executable), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": widths[0], "height": 900})
            page.on("console", lambda m: _on_console(errors, m.type, m.text))
            page.on("pageerror", lambda exc: errors.append(f"uncaught: {exc}"))
            page.on("requestfailed", lambda r: errors.append(f"request failed: {r.url[:120]}"))
            t0 = time.perf_counter()
            page.goto(html.as_uri(), wait_until="load")
            wall_ms = (time.perf_counter() - t0) * 1000
            nav = page.evaluate(
                "() => { const n = performance.getEntriesByType('navigation')[0];"
                " return n ? n.loadEventEnd - n.startTime : null; }"
            )
            load_ms = float(nav) if nav else wall_ms
            facts = page.evaluate(_PAGE_FACTS)
            for width in widths:
                page.set_viewport_size({"width": width, "height": 900})
                page.wait_for_timeout(50)  # let the layout settle
                overflow[width] = int(page.evaluate(_OVERFLOW))
                shot = shots_dir / f"{html.stem}-{width}.png"
                page.screenshot(path=str(shot), full_page=True)
                shots.append(shot)
        finally:
            browser.close()
    figures = [(_short(src), int(w), int(h)) for src, w, h in facts["imgs"]]
    internal = [h for h in facts["links"] if _is_internal(h)]
    broken = [h for h in internal if not _link_resolves(h, html, set(facts["ids"]))]
    return PageReport(
        figures=figures,
        broken_links=broken,
        tables=int(facts["tables"]),
        console_errors=errors,
        screenshots=shots,
        load_ms=load_ms,
        overflow_px=overflow,
        links=len(internal),
    )


def _on_console(errors: list[str], kind: str, text: str) -> None:
    if kind == "error":
        errors.append(f"console.error: {text}")


def _short(src: str) -> str:
    return src[:40] + "..." if src.startswith("data:") else src


def _is_internal(href: str) -> bool:
    scheme = urlsplit(href).scheme
    return scheme in ("", "file")


def _link_resolves(href: str, page: Path, ids: set[str]) -> bool:
    parts = urlsplit(href)
    if not parts.path:  # "#anchor" on this page ("#" alone is the top)
        return not parts.fragment or unquote(parts.fragment) in ids
    target = Path(unquote(parts.path))
    if not target.is_absolute():
        target = page.parent / target
    if not target.exists():
        return False
    if parts.fragment and target.suffix in (".html", ".htm"):
        text = target.read_text(encoding="utf-8", errors="replace")
        anchor = re.escape(unquote(parts.fragment))
        return re.search(rf"""(id|name)\s*=\s*["']?{anchor}["'\s>]""", text) is not None
    return True
