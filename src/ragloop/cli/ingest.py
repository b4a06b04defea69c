"""``ragloop ingest``: load, chunk, embed and store documents from the command line."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ragloop.cli.common import (
    EXIT_PARTIAL,
    DataDir,
    JsonFlag,
    app,
    emit_json,
    err,
    handled,
    out,
    progress_bar,
    progress_callback,
    settings_for,
)


@app.command()
def ingest(
    paths: Annotated[list[Path], typer.Argument(help="Files or directories to ingest.")],
    include: Annotated[
        list[str] | None, typer.Option("--include", help="Glob of files to take (repeatable).")
    ] = None,
    exclude: Annotated[
        list[str] | None, typer.Option("--exclude", help="Glob of files to skip (repeatable).")
    ] = None,
    prune: Annotated[
        bool, typer.Option("--prune", help="Remove documents whose files are gone.")
    ] = False,
    follow_outside_links: Annotated[
        bool,
        typer.Option(
            "--follow-outside-links",
            help="Also ingest files that links in a folder point to outside that folder.",
        ),
    ] = False,
    data_dir: DataDir = None,
    as_json: JsonFlag = False,
) -> None:
    """Load, chunk, embed and store documents; unchanged documents cost nothing."""
    from ragloop.core.runtime import open_runtime
    from ragloop.core.storage.locks import WriterLock
    from ragloop.ingest.pipeline import Ingestor

    with handled():
        settings = settings_for(data_dir)
        with WriterLock(settings.data_dir, "ragloop ingest"):
            rt = open_runtime(settings)
            try:
                with progress_bar() as bar:
                    report = Ingestor(rt, progress_callback(bar)).ingest(
                        paths,
                        include or (),
                        exclude or (),
                        prune,
                        follow_outside_links=follow_outside_links,
                    )
            finally:
                rt.close()
    if as_json:
        emit_json(report.to_dict())
    else:
        for f in report.failed:
            err.print(f"[yellow]skipped[/yellow] {f['name']}: {f['reason']}", highlight=False)
        for w in report.warnings:
            err.print(f"[yellow]warning[/yellow] {w['name']}: {w['warning']}", highlight=False)
        out.print(
            f"documents: {report.added} added, {report.updated} updated, "
            f"{report.unchanged} unchanged, {report.removed} removed, "
            f"{len(report.failed)} failed\n"
            f"chunks embedded: {report.chunks_embedded} in {report.seconds:.1f} s "
            f"({report.chunks_per_second:.1f} chunks/s), model {report.model_version}",
            highlight=False,
        )
    if report.failed:
        raise typer.Exit(EXIT_PARTIAL)
