"""The ``mlsd`` command line: list the systems, run one end to end, serve a run.

Settings are read here, once, and passed down; library code never reads the environment.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

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

from mlsd.cli_runs import runs_cmd, track_cmd, track_run_dir
from mlsd.systems import SYSTEMS, UnknownSystemError, runnable_system
from mlsd.world import Scale

if TYPE_CHECKING:
    from mlsd.settings import Settings

app = typer.Typer(
    help="mlsd: the systems of *Machine Learning System Design Interview*, built end to end.",
    no_args_is_help=True,
    add_completion=False,
)
console = Console(stderr=True)
log = logging.getLogger("mlsd")


def setup_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(message)s",
        handlers=[RichHandler(console=console, show_path=False, show_time=False)],
        force=True,
    )
    for noisy in ("httpx", "urllib3", "matplotlib", "numba", "PIL", "faiss.loader"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def fail(message: str, code: int = 2) -> typer.Exit:
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
            "movielens:; visual-search: imagefolder:, idx:; people-you-may-know: edgelist:; "
            "event-rec: eventrec: (a folder); news-feed: mind: (a folder); "
            "similar-listings: sessions:; video-search: beir: (a folder); "
            "street-view-blur: coco: (a JSON file), boxes: (a folder); "
            "harmful-content: csv:PATH[?text=COL&label=COL,...]."
        ),
    ] = None,
    test_data: Annotated[
        str | None, typer.Option(help="An explicit test file, FORMAT:PATH, for --data.")
    ] = None,
    text_column: Annotated[
        str | None,
        typer.Option(help="harmful-content --data csv:PATH: the text column (default text)."),
    ] = None,
    label_column: Annotated[
        list[str] | None,
        typer.Option(
            help="harmful-content --data csv:PATH: the label column (default label); repeat it "
            "for multi-label (one 0/1 column per class)."
        ),
    ] = None,
    out: Annotated[
        Path | None, typer.Option(help="Run directory (default runs/<system>-<scale>).")
    ] = None,
    force: Annotated[
        bool,
        typer.Option(
            "--force",
            help="Replace --out even if it is not an mlsd run (never the home directory, the "
            "root, or one holding the working directory).",
        ),
    ] = False,
    engine: Annotated[
        str | None,
        typer.Option(
            help="Where the heavy steps run: local (in-process, the default) or ray (Ray tasks, "
            "Ray Data, Ray Train; MLSD_ENGINE)."
        ),
    ] = None,
    ray_address: Annotated[
        str | None,
        typer.Option(
            help="HOST:PORT of an existing Ray cluster (`ray start --head`) for --engine ray; "
            "a private local Ray instance when unset (MLSD_RAY_ADDRESS)."
        ),
    ] = None,
    track: Annotated[
        bool | None,
        typer.Option(
            "--track/--no-track",
            help="Log the finished run to MLflow: params, every number of metrics.json, the "
            "blueprint and the served model (MLSD_TRACKING_URI, default "
            "sqlite:///runs/mlflow.db; MLSD_TRACK=1 turns it on by default).",
        ),
    ] = None,
    skip: Annotated[
        str | None,
        typer.Option(
            help="Leave out some of the analyses no later step needs, comma-separated: eda, "
            "efficiency, tradeoffs, batch_vs_online, canary, scale, sources (a faster run; "
            "listed as skipped)."
        ),
    ] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Debug logging.")] = False,
) -> None:
    """Build a system end to end and write its run directory and blueprint.

    An existing --out is replaced only if an earlier `mlsd run` wrote it (its .mlsd-run marker)
    or it is empty; anything else is refused unless --force."""
    from mlsd.data import DataError
    from mlsd.runner import RunOptions, RunRefusedError, run_pipeline

    setup_logging(verbose)
    if test_data and not data:
        raise fail("--test-data needs --data (the world splits its own log by time)")
    if text_column is not None or label_column:
        if system != "harmful-content":
            raise fail("--text-column and --label-column are for harmful-content --data csv:PATH")
        from mlsd.systems.harmful_content.datasets import columns_spec

        try:
            data = columns_spec(data, text_column, label_column or [])
            if test_data:
                test_data = columns_spec(test_data, text_column, label_column or [])
        except DataError as exc:
            raise fail(str(exc)) from None
    try:
        pipeline = runnable_system(system).pipeline()
    except UnknownSystemError as exc:
        raise fail(str(exc)) from None
    target = (out or Path("runs") / f"{system}-{'data' if data else scale}").expanduser()
    options = RunOptions(
        system=system,
        scale=scale,
        seed=seed,
        data=data,
        test_data=test_data,
        out=target,
        force=force,
        skip=frozenset(x.strip() for x in (skip or "").split(",") if x.strip()),
        settings=_run_settings(engine, ray_address),
    )
    try:
        run_dir = run_pipeline(pipeline, options, progress_factory=_rich_progress)
    except (DataError, RunRefusedError) as exc:
        raise fail(str(exc)) from None
    except KeyboardInterrupt:
        raise fail(f"interrupted: nothing was written to {target}", 130) from None
    except SystemExit as exc:  # SIGTERM during the run (runner._sigterm_raises)
        code = exc.code if isinstance(exc.code, int) else 1
        raise fail(f"terminated: nothing was written to {target}", code) from None
    console.print(f"[bold green]blueprint:[/] {run_dir / 'blueprint.md'}")
    console.print(f"[bold green]html:[/]      {run_dir / 'blueprint.html'}")
    console.print(f"[bold green]metrics:[/]   {run_dir / 'metrics.json'}")
    console.print(f"serve it:  mlsd serve {system} --run {run_dir}")
    if options.settings.tracking_on if track is None else track:
        track_run_dir(run_dir, options.settings.tracking_uri, options.settings)


def _run_settings(engine: str | None, ray_address: str | None) -> Settings:
    """The run's settings: the environment (MLSD_*), then --engine and --ray-address."""
    from mlsd.engine import ENGINES
    from mlsd.settings import Settings

    try:
        settings = Settings()
    except ValueError as exc:  # a bad MLSD_* variable, named
        raise fail(f"bad settings: {exc}") from None
    if engine is not None and engine not in ENGINES:
        raise fail(f"--engine {engine!r}: choose one of {', '.join(ENGINES)}")
    updates = {"engine": engine, "ray_address": ray_address}
    settings = settings.model_copy(update={k: v for k, v in updates.items() if v is not None})
    if settings.ray_address is not None and settings.engine != "ray":
        raise fail("--ray-address needs --engine ray")
    return settings


@app.command("serve")
def serve_cmd(
    system: Annotated[str, typer.Argument(help="System name, e.g. ad-click.")],
    run: Annotated[Path, typer.Option(help="A run directory written by `mlsd run`.")],
    host: Annotated[str | None, typer.Option(help="Bind address (MLSD_HOST).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (MLSD_PORT).")] = None,
) -> None:
    """Serve a run's model over HTTP (OpenAPI docs at /docs).

    API keys: MLSD_API_KEYS='key1:admin,key2:read' (or JSON '{"key1": "admin"}').
    Clients send a key in the X-API-Key header; the reloads need an admin key.
    /healthz, /readyz and the docs need no key.
    Unset: every route is open to anyone, and a warning says so.
    Bodies over MLSD_MAX_BODY_BYTES (default 1 MiB) are refused with a 413.
    The access log hashes ids (MLSD_LOG_ID_SALT keeps hashes stable across processes)."""
    import uvicorn

    from mlsd.api.main import create_app
    from mlsd.api.routes import served_system
    from mlsd.settings import Settings

    setup_logging(False)
    try:
        settings = Settings()
    except ValueError as exc:  # a bad MLSD_* variable, named (its value is never echoed)
        raise fail(f"bad settings: {exc}") from None
    updates = {k: v for k, v in {"host": host, "port": port}.items() if v is not None}
    settings = settings.model_copy(update=updates)
    try:
        info = runnable_system(system)
    except UnknownSystemError as exc:
        raise fail(str(exc)) from None
    if not (run / "metrics.json").is_file():
        raise fail(f"{run} is not a finished run directory (no metrics.json); run `mlsd run`")
    try:
        served = served_system(info, run, settings)
    except (FileNotFoundError, ValueError, ConnectionError) as exc:
        raise fail(f"cannot load {info.name} from {run}: {exc}") from None
    import torch

    torch.set_num_threads(settings.torch_threads)  # per-request batches are small
    app_ = create_app(settings, [served])
    console.print(f"serving {info.name} from {run} on http://{settings.host}:{settings.port}")
    if not settings.api_keys:
        console.print(
            "[bold yellow]warning:[/] MLSD_API_KEYS is not set: every route, reloads included, "
            "is open to anyone who can reach this port"
        )
    # the app writes its own access log (logger mlsd.access: route templates, ids hashed);
    # uvicorn's would print raw paths, user ids included
    uvicorn.run(
        app_,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        access_log=False,
    )


@app.command("interview")
def interview_cmd(
    system: Annotated[str, typer.Argument(help="System name, e.g. ad-click.")],
    run: Annotated[
        Path | None,
        typer.Option(help="A run directory written by `mlsd run`: its numbers back the plan."),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(
            help="Where to write interview.md/.html (default: --run; without a run, "
            "the plan is printed)."
        ),
    ] = None,
) -> None:
    """The 45-minute interview plan for a system: per block, what to ask, what to decide and
    the run's numbers that back each decision (interview.md, interview.html, a timeline)."""
    from mlsd.interview import InterviewError, interview_for
    from mlsd.interview_render import to_markdown, write_interview

    setup_logging(False)
    try:
        runnable_system(system)
        interview = interview_for(system, run)
    except (UnknownSystemError, InterviewError) as exc:
        raise fail(str(exc)) from None
    target = out or run
    if target is None:
        typer.echo(to_markdown(interview, Path.cwd(), figure=False))  # plain, unwrapped
        return
    written = write_interview(interview, target)
    for path in written[1:]:
        console.print(f"[bold green]wrote[/] {path}")
    if run is not None:
        console.print(f"{interview.measured} decisions backed by this run's numbers")


def _add_system_commands() -> None:
    """Register the extra commands the systems declare (``System.commands``), e.g.
    visual-search's ``index-images``; their modules import only light things at top level."""
    import importlib

    for info in SYSTEMS.values():
        for ref in info.commands:
            module_name, _, func = ref.partition(":")
            command = getattr(importlib.import_module(module_name), func)
            app.command(func.replace("_", "-"))(command)


app.command("track")(track_cmd)
app.command("runs")(runs_cmd)
_add_system_commands()


def main() -> None:
    app()


if __name__ == "__main__":
    main()
