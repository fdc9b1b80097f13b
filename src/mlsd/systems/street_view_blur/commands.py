"""Street-view blurring's extra CLI command, ``mlsd blur`` (registered through
``System.commands``). Only light imports at the top: the CLI imports this module at start-up."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def blur(
    folder: Annotated[Path, typer.Argument(help="Folder of PNG / JPEG images (recursive).")],
    run: Annotated[
        Path, typer.Option(help="A street-view-blur run directory written by `mlsd run`.")
    ],
    out: Annotated[
        Path, typer.Option(help="Where the blurred images, boxes.jsonl and summary.json go.")
    ],
    batch_size: Annotated[int, typer.Option(min=1, help="Images read per batch.")] = 32,
    threads: Annotated[
        int,
        typer.Option(
            min=1, help="Torch threads for detection (1: on a busy machine, 2 collapsed 20x)."
        ),
    ] = 1,
) -> None:
    """Detect and blur faces and licence plates in a folder of images, in batches.

    Resumable: run it again after an interruption and finished images are not redone."""
    from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from mlsd.artifacts import artifacts_dir_of
    from mlsd.cli import console, fail, setup_logging
    from mlsd.data import DataError
    from mlsd.serving import ServingArtifactError
    from mlsd.systems.street_view_blur.serving import load_blurrer
    from mlsd.systems.street_view_blur.serving_batch import blur_folder

    setup_logging(False)
    try:
        blurrer = load_blurrer(artifacts_dir_of(run), threads)
    except ServingArtifactError as exc:
        raise fail(f"cannot load street-view-blur from {run}: {exc}") from None
    with Progress(
        SpinnerColumn(),
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        console=console,
    ) as progress:
        task = progress.add_task("blurring images", total=None)
        try:
            res = blur_folder(
                folder,
                out,
                blurrer,
                batch_size,
                lambda done, total: progress.update(task, completed=done, total=total),
            )
        except DataError as exc:
            raise fail(str(exc)) from None
    console.print(
        f"blurred {res.processed:,} images in {res.seconds:.1f} s "
        f"({res.images_per_second:.1f} images/s; {res.faces:,} faces, {res.plates:,} plates); "
        f"{res.resumed:,} already done, {res.failed:,} unreadable; boxes in {out / 'boxes.jsonl'}"
    )
