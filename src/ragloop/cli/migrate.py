"""``ragloop migrate-catalog``: copy a catalog into another database, e.g. SQLite to PostgreSQL."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from ragloop.cli.common import (
    DataDir,
    JsonFlag,
    app,
    emit_json,
    handled,
    out,
    progress_bar,
    progress_callback,
    settings_for,
)


@app.command("migrate-catalog")
def migrate_catalog(
    target: Annotated[
        str,
        typer.Option(
            "--to",
            help="SQLAlchemy URL of the empty target, e.g. "
            "postgresql+psycopg://USER:PASSWORD@HOST/DATABASE.",
            show_default=False,
        ),
    ],
    source: Annotated[
        str | None,
        typer.Option(
            "--from",
            help="SQLAlchemy URL of the catalog to copy (default: the data dir's, or "
            "RAGLOOP_CATALOG_URL).",
            show_default=False,
        ),
    ] = None,
    batch_size: Annotated[
        int, typer.Option("--batch-size", min=1, max=100_000, help="Rows per insert.")
    ] = 1000,
    data_dir: DataDir = None,
    as_json: JsonFlag = False,
) -> None:
    """Copy every table (documents, chunks, versions, queries, feedback, pairs, jobs, keys,
    meta) into an empty database and check the counts. Vectors stay where they are: Chroma
    collections are named after the catalog's id, which is copied."""
    from ragloop.core.storage.catalog import Catalog
    from ragloop.core.storage.copy import copy_catalog

    with handled():
        source_url = source or settings_for(data_dir).resolved_catalog_url
        src = Catalog.open(source_url)
        try:
            dst = Catalog.open(target)
            try:
                with progress_bar() as bar:
                    report = copy_catalog(src, dst, batch_size, progress_callback(bar))
            finally:
                dst.close()
        finally:
            src.close()
    if as_json:
        emit_json(report.to_dict())
        return
    table = Table("table", "source", "target")
    for name, n in report.tables.items():
        table.add_row(name, str(n["source"]), str(n["target"]))
    out.print(table)
    lexical = report.lexical
    lexical_line = (
        f"lexical index: {lexical['entries']} entries, "
        + ("ok" if lexical["ok"] else f"PROBLEMS ({lexical['error'] or 'missing entries'})")
        if lexical
        else "no lexical index"
    )
    out.print(
        f"copied {report.source} -> {report.target} in {report.seconds:.1f} s; counts match; "
        f"{lexical_line}",
        highlight=False,
    )
    if not report.ok:
        raise typer.Exit(1)
