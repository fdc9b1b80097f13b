"""The ``mlsd`` command line: list the systems, run one end to end, serve a run.

Settings are read here, once, and passed down; library code never reads the environment.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.progress import (
    BarColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from mlsd.systems import SYSTEMS, UnknownSystemError, get_system, load_system
from mlsd.world import Scale

app = typer.Typer(
    help="mlsd: the systems of *Machine Learning System Design Interview*, built end to end.",
    no_args_is_help=True,
    add_completion=False,
)
console = Console(stderr=True)
log = logging.getLogger("mlsd")


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(message)s",
        handlers=[RichHandler(console=console, show_path=False, show_time=False)],
        force=True,
    )
    for noisy in ("httpx", "urllib3", "matplotlib", "numba", "PIL", "faiss.loader"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _fail(message: str, code: int = 2) -> typer.Exit:
    console.print(f"[bold red]error:[/] {message}", soft_wrap=True, highlight=False)
    return typer.Exit(code)


@app.command("systems")
def systems_cmd() -> None:
    """List the book's ten systems, a line each, with their status."""
    table = Table(title="The systems of Machine Learning System Design Interview")
    table.add_column("name", no_wrap=True)
    table.add_column("chapter", justify="right")
    table.add_column("title")
    table.add_column("status", no_wrap=True)
    table.add_column("what it does")
    for s in SYSTEMS.values():
        status = "[green]runs[/]" if s.status == "runs" else "[dim]planned[/]"
        table.add_row(s.name, str(s.chapter), s.title, status, s.summary)
    Console().print(table)


@contextmanager
def _rich_progress() -> Iterator[tuple[object, object]]:
    with Progress(
        SpinnerColumn(),
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.fields[detail]}"),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    ) as progress:
        current: dict[str, TaskID] = {}

        def on_step(event: str, title: str) -> None:
            if event == "start":
                current["task"] = progress.add_task(title, total=None, detail="")
            else:
                progress.update(current["task"], total=1, completed=1, detail="done")

        def progress_fn(desc: str, done: float, total: float) -> None:
            if "task" in current:
                progress.update(current["task"], total=total, completed=done, detail=desc)

        yield on_step, progress_fn


@app.command("run")
def run_cmd(
    system: Annotated[str, typer.Argument(help="System name, e.g. ad-click (see `mlsd systems`).")],
    scale: Annotated[Scale, typer.Option(help="Size of the simulated world.")] = Scale.SMALL,
    seed: Annotated[int, typer.Option(help="Seed for the world, splits and models.")] = 0,
    data: Annotated[
        str | None,
        typer.Option(
            help="Your own data as FORMAT:PATH. ad-click: criteo:, libfm:; video-rec: "
            "movielens:; visual-search: imagefolder:, idx:."
        ),
    ] = None,
    test_data: Annotated[
        str | None, typer.Option(help="An explicit test file, FORMAT:PATH, for --data.")
    ] = None,
    out: Annotated[
        Path | None, typer.Option(help="Run directory (default runs/<system>-<scale>).")
    ] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Debug logging.")] = False,
) -> None:
    """Build a system end to end and write its run directory and blueprint."""
    from mlsd.data import DataError
    from mlsd.runner import RunOptions, RunRefusedError, run_steps
    from mlsd.settings import Settings

    _setup_logging(verbose)
    try:
        module = load_system(system)
    except UnknownSystemError as exc:
        raise _fail(str(exc)) from None
    if test_data and not data:
        raise _fail("--test-data needs --data (the world splits its own log by time)")
    target = out or Path("runs") / f"{system}-{'data' if data else scale}"
    options = RunOptions(
        system=system,
        scale=scale,
        seed=seed,
        data=data,
        test_data=test_data,
        out=target,
        settings=Settings(),
    )
    try:
        run_dir = run_steps(
            module.steps(options), options, module.TITLE, progress_factory=_rich_progress
        )
    except (DataError, RunRefusedError) as exc:
        raise _fail(str(exc)) from None
    console.print(f"[bold green]blueprint:[/] {run_dir / 'blueprint.md'}")
    console.print(f"[bold green]html:[/]      {run_dir / 'blueprint.html'}")
    console.print(f"[bold green]metrics:[/]   {run_dir / 'metrics.json'}")
    console.print(f"serve it:  mlsd serve {system} --run {run_dir}")


@app.command("serve")
def serve_cmd(
    system: Annotated[str, typer.Argument(help="System name, e.g. ad-click.")],
    run: Annotated[Path, typer.Option(help="A run directory written by `mlsd run`.")],
    host: Annotated[str | None, typer.Option(help="Bind address (MLSD_HOST).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (MLSD_PORT).")] = None,
) -> None:
    """Serve a run's model over HTTP (OpenAPI docs at /docs)."""
    import uvicorn

    from mlsd.serving import create_app
    from mlsd.settings import Settings

    _setup_logging(False)
    settings = Settings()
    updates = {k: v for k, v in {"host": host, "port": port}.items() if v is not None}
    settings = settings.model_copy(update=updates)
    try:
        info = get_system(system)
        module = load_system(system, "serving")
    except UnknownSystemError as exc:
        raise _fail(str(exc)) from None
    if not (run / "metrics.json").is_file():
        raise _fail(f"{run} is not a finished run directory (no metrics.json); run `mlsd run`")
    try:
        served = module.make_served_system(run, settings)
    except (FileNotFoundError, ValueError, ConnectionError) as exc:
        raise _fail(f"cannot load {info.name} from {run}: {exc}") from None
    import torch

    torch.set_num_threads(settings.torch_threads)  # per-request batches are small
    app_ = create_app(settings, [served])
    console.print(f"serving {info.name} from {run} on http://{settings.host}:{settings.port}")
    uvicorn.run(app_, host=settings.host, port=settings.port, log_level=settings.log_level)


@app.command("index-images")
def index_images_cmd(
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
    """Embed a folder of images in batches and add them to a visual-search run's index."""
    from mlsd.data import DataError
    from mlsd.serving import ServingArtifactError
    from mlsd.systems.visual_search.indexing import index_folder

    _setup_logging(False)
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
            raise _fail(str(exc)) from None
        except ServingArtifactError as exc:
            raise _fail(f"cannot load visual-search from {run}: {exc}") from None
    console.print(
        f"indexed {res.indexed:,} images ({len(res.skipped)} skipped) in {res.seconds:.1f} s; "
        f"the index holds {res.index_size:,}. A running server picks them up after "
        "POST /v1/visual-search/reload"
    )


def main() -> None:
    app()


if __name__ == "__main__":
    main()
