"""Harmful content's extra CLI command, ``mlsd classify-posts`` (registered through
``System.commands``). Only light imports at the top: the CLI imports this module at start-up."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def classify_posts(
    posts: Annotated[
        Path, typer.Argument(help="CSV of posts: text, optionally image (a path) and author_id.")
    ],
    run: Annotated[Path, typer.Option(help="A harmful-content run directory (`mlsd run`).")],
    output: Annotated[Path, typer.Option(help="Where to write the classified CSV.")],
    batch_size: Annotated[int, typer.Option(min=1, help="Posts scored per batch.")] = 256,
) -> None:
    """Classify a file of posts in batches: a probability per harm class and the action."""
    from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from mlsd.cli import console, fail, setup_logging
    from mlsd.data import DataError
    from mlsd.serving import ServingArtifactError
    from mlsd.systems.harmful_content.serving import load_scorer
    from mlsd.systems.harmful_content.serving_batch import classify_file

    setup_logging(False)
    try:
        scorer = load_scorer(run)
    except (ServingArtifactError, FileNotFoundError) as exc:
        raise fail(f"cannot load {run}: {exc}") from None
    with Progress(
        SpinnerColumn(),
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        console=console,
    ) as progress:
        task = progress.add_task("classifying posts", total=None)
        try:
            result = classify_file(
                scorer,
                posts,
                output,
                batch_size,
                lambda done, total: progress.update(task, completed=done, total=total),
            )
        except DataError as exc:
            raise fail(str(exc)) from None
    counts = result["action"].value_counts().to_dict()
    console.print(f"[bold green]classified:[/] {len(result):,} posts -> {output} {counts}")
