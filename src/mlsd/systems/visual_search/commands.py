"""Visual search's extra CLI command, ``mlsd index-images`` (registered through
``System.commands``). Only light imports at the top: the CLI imports this module at start-up."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def index_images(
    folder: Annotated[
        Path, typer.Argument(help="Folder of images (recursive: png, jpg, jpeg, bmp, gif, webp).")
    ],
    run: Annotated[Path, typer.Option(help="A visual-search run directory written by `mlsd run`.")],
    batch_size: Annotated[int, typer.Option(min=1, help="Images embedded per batch.")] = 256,
    replace: Annotated[
        bool, typer.Option("--replace", help="Start a fresh exact index instead of adding.")
    ] = False,
    skip_bad: Annotated[
        bool, typer.Option("--skip-bad", help="Skip undecodable files instead of failing.")
    ] = False,
) -> None:
    """Embed a folder of images in batches and add them to a visual-search run's index.

    Files already indexed (the same bytes) are not stored again; a folder with no decodable
    image is refused and nothing is written."""
    from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from mlsd.cli import console, fail, setup_logging
    from mlsd.data import DataError
    from mlsd.serving import ServingArtifactError
    from mlsd.systems.visual_search.serving_ingest import index_folder

    setup_logging(False)
    with Progress(
        SpinnerColumn(),
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        console=console,
    ) as progress:
        task = progress.add_task("embedding images", total=None)
        try:
            res = index_folder(
                folder,
                run,
                batch_size,
                lambda done, total: progress.update(task, completed=done, total=total),
                replace=replace,
                skip_bad=skip_bad,
            )
        except DataError as exc:
            raise fail(str(exc)) from None
        except ServingArtifactError as exc:
            raise fail(f"cannot load visual-search from {run}: {exc}") from None
    console.print(
        f"indexed {res.indexed:,} images ({len(res.skipped)} skipped) in {res.seconds:.1f} s; "
        f"{res.already_indexed:,} already indexed (same bytes), not stored again; "
        f"the index holds {res.index_size:,}."
        + (
            " A running server picks them up after POST /v1/visual-search/reload"
            if res.indexed
            else " Nothing changed."
        )
    )
