"""What ``mlsd runs`` shows: the table's rows and the ``--html`` index page (one comparison
table per system, a row per run linking its blueprint, a column per model with its headline
figure). The runs themselves are read by :mod:`mlsd.run_index`."""

from __future__ import annotations

import os
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote

from mlsd.artifacts import METRICS
from mlsd.run_index import RunSummary, by_system

# ---- what the CLI and the index page show ----------------------------------------------------
COLUMNS = ("system", "scale", "seed", "data", "chosen model", "headline", "A/B", "date", "run")


def table_rows(runs: Sequence[RunSummary], root: Path) -> list[list[str]]:
    """One row of :data:`COLUMNS` per run, as text (the run as a path relative to ``root``)."""
    rows = []
    for run in runs:
        rows.append(
            [
                run.system,
                run.scale,
                "—" if run.seed is None else str(run.seed),
                run.data,
                run.chosen_model or "—",
                _headline_text(run),
                _ab_text(run),
                run.created.replace("T", " ").split("+")[0],
                _relative(run.path, root),
            ]
        )
    return rows


def write_index_html(runs: Sequence[RunSummary], root: Path, out: Path | None = None) -> Path:
    """Write the index page (``root/index.html`` unless ``out``): one comparison table per
    system, a row per run linking its blueprint, a column per model with its headline figure.
    Written atomically; links are relative, so the folder can be moved or served as is."""
    import jinja2

    from mlsd.artifacts import write_text
    from mlsd.report import fmt

    root = Path(root)
    out = Path(out) if out is not None else root / "index.html"
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("mlsd", "templates"),
        autoescape=jinja2.select_autoescape(["html", "j2"]),
        undefined=jinja2.StrictUndefined,
    )
    systems = []
    for system, group in by_system(runs).items():
        metric = _common_metric(group)
        models = sorted({m for r in group for m in r.models})
        rows = []
        for run in group:
            values = run.headline.values if run.headline and run.headline.metric == metric else {}
            blueprint = run.path / "blueprint.html"
            rows.append(
                {
                    "href": _href(blueprint, out.parent) if blueprint.is_file() else None,
                    "metrics_href": _href(run.path / METRICS, out.parent),
                    "name": _relative(run.path, root),
                    "date": run.created.replace("T", " ").split("+")[0],
                    "scale": run.scale,
                    "seed": "—" if run.seed is None else str(run.seed),
                    "data": run.data,
                    "engine": run.engine,
                    "chosen": run.chosen_model or "—",
                    "decision": run.ab_decision or "—",
                    "lift": "—" if run.ab_lift is None else f"{run.ab_lift:+.1%}",
                    "seconds": fmt(run.total_seconds),
                    "models": [
                        {"value": fmt(values.get(m)), "chosen": m == run.chosen_model}
                        for m in models
                    ],
                }
            )
        systems.append({"name": system, "metric": metric or "—", "models": models, "rows": rows})
    page = env.get_template("runs_index.html.j2").render(
        title=f"mlsd runs under {root.name or root}",
        generated=datetime.now(UTC).isoformat(timespec="seconds"),
        count=len(runs),
        systems=systems,
    )
    write_text(out, page)
    return out


def _headline_text(run: RunSummary) -> str:
    value = run.headline_value
    if run.headline is None or value is None:
        return "—"
    return f"{run.headline.metric} {value:.4g}"


def _ab_text(run: RunSummary) -> str:
    if run.ab_decision is None:
        return "—"
    return run.ab_decision + ("" if run.ab_lift is None else f" ({run.ab_lift:+.1%})")


def _common_metric(group: Sequence[RunSummary]) -> str | None:
    names = [r.headline.metric for r in group if r.headline is not None]
    return max(set(names), key=names.count) if names else None


def _relative(path: Path, start: Path) -> str:
    return Path(os.path.relpath(path, start)).as_posix()


def _href(path: Path, start: Path) -> str:
    """A relative link to ``path`` from a page in ``start`` (each segment URL-quoted)."""
    return quote(_relative(path, start))
