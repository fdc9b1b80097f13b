"""The commands over finished runs: `mlsd track RUN` (log it to MLflow) and `mlsd runs [DIR]`
(list them, and write an index page). Registered on the app by :mod:`mlsd.cli`; they import
MLflow and the run index only when called."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    from mlsd.settings import Settings


def track_run_dir(run_dir: Path, tracking_uri: str, settings: Settings | None = None) -> None:
    """Log a finished run to MLflow (imported only here: it costs seconds). ``settings``: the
    run's, when called right after `mlsd run`."""
    from mlsd.cli import console, fail
    from mlsd.tracking import TrackingError, track_run

    engine = getattr(settings, "engine", None)
    try:
        tracked = track_run(run_dir, tracking_uri, engine=engine)
    except TrackingError as exc:
        after_run = f" (the run itself is in {run_dir}: `mlsd track {run_dir}`)" if settings else ""
        raise fail(f"{exc}{after_run}", 1) from None
    console.print(
        f"[bold green]mlflow:[/]    run {tracked.mlflow_run_id} in experiment "
        f"{tracked.experiment} ({len(tracked.metrics)} metrics, {tracked.seconds:.1f} s); "
        f"see it: mlflow ui --backend-store-uri {tracking_uri}",
        soft_wrap=True,
    )


def track_cmd(
    run: Annotated[Path, typer.Argument(help="A run directory written by `mlsd run`.")],
    tracking_uri: Annotated[
        str | None,
        typer.Option(help="MLflow store (MLSD_TRACKING_URI, default sqlite:///runs/mlflow.db)."),
    ] = None,
) -> None:
    """Log a finished run directory to MLflow (what `mlsd run --track` does after a run)."""
    from mlsd.cli import fail, setup_logging
    from mlsd.settings import Settings

    setup_logging(False)
    try:
        settings = Settings()
    except ValueError as exc:
        raise fail(f"bad settings: {exc}") from None
    track_run_dir(run, tracking_uri or settings.tracking_uri)


def runs_cmd(
    folder: Annotated[
        Path, typer.Argument(help="Folder to search for run directories (default runs).")
    ] = Path("runs"),
    html: Annotated[
        bool, typer.Option("--html", help="Also write FOLDER/index.html: one table per system.")
    ] = False,
) -> None:
    """List the runs under a folder: system, scale, seed, data, chosen model, headline metric,
    A/B decision and date; --html writes an index page linking each blueprint."""
    from mlsd.cli import console, fail, setup_logging
    from mlsd.run_index import RunIndexError, scan_runs
    from mlsd.run_index_page import COLUMNS, table_rows, write_index_html

    setup_logging(False)
    try:
        runs, problems = scan_runs(folder)
    except RunIndexError as exc:
        raise fail(str(exc)) from None
    table = Table(title=f"mlsd runs under {folder}")
    for column in COLUMNS:
        table.add_column(column, justify="right" if column == "seed" else "left")
    for row in table_rows(runs, folder):
        table.add_row(*row)
    Console().print(table)
    for problem in problems:
        console.print(f"[bold yellow]skipped:[/] {problem}", soft_wrap=True, highlight=False)
    if not runs:
        console.print(f"no runs under {folder} (a run holds .mlsd-run and metrics.json)")
    if html:
        page = write_index_html(runs, folder)
        console.print(f"[bold green]index:[/] {page}")
