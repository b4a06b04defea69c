"""``ragloop status`` and ``check``: what the data dir holds, and whether it is consistent."""

from __future__ import annotations

from typing import Any

import typer
from rich.table import Table

from ragloop.cli.common import (
    DataDir,
    JsonFlag,
    app,
    emit_json,
    handled,
    out,
    settings_for,
)


@app.command()
def status(data_dir: DataDir = None, as_json: JsonFlag = False) -> None:
    """Documents, chunks, vectors and the active model."""
    from ragloop.core.runtime import open_runtime

    with handled():
        settings = settings_for(data_dir)
        rt = open_runtime(settings)
        try:
            counts = rt.catalog.counts()
            active = rt.catalog.active_version()
            vectors = rt.store.count(active.collection) if active else 0
            pending = sum(len(v) for v in rt.catalog.journal_pending().values())
        finally:
            rt.close()
    info = {
        "data_dir": str(settings.data_dir),
        "chroma": settings.chroma_url or str(settings.chroma_path),
        "documents": counts["documents"],
        "chunks": counts["chunks"],
        "vectors": vectors,
        "pending_repairs": pending,
        "active_model": (
            {
                "version": active.version,
                "model": active.model_ref,
                "dimension": active.dimension,
                "max_seq_length": active.max_seq_length,
                "collection": active.collection,
            }
            if active
            else None
        ),
    }
    if as_json:
        emit_json(info)
        return
    table = Table(show_header=False, box=None)
    for key in ("data_dir", "chroma", "documents", "chunks", "vectors", "pending_repairs"):
        table.add_row(key, str(info[key]))
    table.add_row(
        "active model",
        f"{active.version} ({active.model_ref}, dim {active.dimension})" if active else "none yet",
    )
    out.print(table)


@app.command()
def check(data_dir: DataDir = None, as_json: JsonFlag = False) -> None:
    """Verify that no chunk exceeds the model's token limit and that the vectors and the
    lexical index match the catalog."""
    from ragloop.core.runtime import open_runtime
    from ragloop.ingest.verify import check_index

    with handled():
        rt = open_runtime(settings_for(data_dir))
        try:
            report = check_index(rt)
        finally:
            rt.close()
    if as_json:
        emit_json(report.to_dict())
    else:
        out.print(
            f"chunks {report.chunks}, vectors {report.vectors}, longest chunk "
            f"{report.max_tokens}/{report.max_seq_length} tokens, over limit "
            f"{len(report.over_limit)}, missing vectors {report.missing_vectors}, orphan "
            f"vectors {report.orphan_vectors}, pending repairs {report.pending_repairs}, "
            f"{_lexical_line(report.lexical)}: " + ("OK" if report.ok else "PROBLEMS FOUND"),
            highlight=False,
        )
    if not report.ok:
        raise typer.Exit(1)


def _lexical_line(lexical: dict[str, Any] | None) -> str:
    if lexical is None:
        return "no lexical index"
    line = (
        f"lexical entries {lexical['entries']} (missing {lexical['missing']}, orphan "
        f"{lexical['orphans']}, integrity {'ok' if lexical['integrity_ok'] else 'FAILED'})"
    )
    return line + (f" {lexical['error']}" if lexical["error"] else "")
