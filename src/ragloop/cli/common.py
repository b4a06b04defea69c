"""What every ``ragloop`` command shares: the Typer app, options, output and error handling.

Every command takes ``--data-dir`` and ``--json``; failures print one line on stderr and exit
non-zero (1: nothing done; 3: ingest finished but some files failed).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from ragloop.core.errors import RagloopError
from ragloop.core.generators.registry import check_generator_setting
from ragloop.core.progress import ProgressFn
from ragloop.core.settings import Settings, load_settings

if TYPE_CHECKING:
    from ragloop.core.storage.catalog import Catalog

EXIT_ERROR = 1
EXIT_PARTIAL = 3

app = typer.Typer(
    help="ragloop: a RAG service that learns from its misses.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
err = Console(stderr=True)
out = Console()

DataDir = Annotated[
    Path | None,
    typer.Option(
        "--data-dir", help="Data directory (overrides RAGLOOP_DATA_DIR).", show_default=False
    ),
]
JsonFlag = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]


def fail(message: str, code: int = EXIT_ERROR) -> NoReturn:
    """Print one line on stderr and exit."""
    err.print(f"[red]error:[/red] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


@contextmanager
def handled() -> Iterator[None]:
    """Turn our errors (and Ctrl-C) into one line and an exit code, never a traceback."""
    try:
        yield
    except RagloopError as exc:
        fail(exc.message)
    except KeyboardInterrupt:
        fail("interrupted; re-run the same command to finish the work", 130)


def settings_for(data_dir: Path | None) -> Settings:
    """Settings from the environment with CLI overrides, the generator name checked."""
    settings = load_settings(data_dir=data_dir)
    check_generator_setting(settings)
    return settings


def emit_json(payload: Any) -> None:
    """Write JSON to stdout (progress and errors go to stderr)."""
    sys.stdout.write(json.dumps(payload, indent=2, default=str) + "\n")


def progress_bar() -> Progress:
    """A rich progress bar on stderr."""
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=True,
        disable=not err.is_terminal,
    )


def progress_callback(bar: Progress) -> ProgressFn:
    """Adapt (stage, done, total) progress reports to rich tasks, one per stage."""
    labels = {"scan": "scanning files", "embed": "embedding chunks"}
    tasks: dict[str, Any] = {}

    def report(stage: str, done: int, total: int) -> None:
        if stage not in tasks:
            tasks[stage] = bar.add_task(labels.get(stage, stage), total=total or None)
        bar.update(tasks[stage], completed=done, total=total or None)

    return report


@contextmanager
def open_catalog(data_dir: Path | None) -> Iterator[Catalog]:
    """The data dir's catalog alone (these commands never touch the vector store)."""
    from ragloop.core.storage.catalog import Catalog

    catalog = Catalog.open(settings_for(data_dir).resolved_catalog_url)
    try:
        yield catalog
    finally:
        catalog.close()
