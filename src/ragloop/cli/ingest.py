"""``ragloop ingest``, ``query``, ``status`` and ``check``: the data dir from the command line."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

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
                        paths, include or (), exclude or (), prune
                    )
            finally:
                rt.close()
    if as_json:
        emit_json(report.to_dict())
    else:
        for f in report.failed:
            err.print(f"[yellow]skipped[/yellow] {f['name']}: {f['reason']}", highlight=False)
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


@app.command()
def query(
    question: Annotated[str, typer.Argument(help="The question to search for.")],
    k: Annotated[int, typer.Option("--k", help="How many chunks to return.")] = 5,
    data_dir: DataDir = None,
    as_json: JsonFlag = False,
) -> None:
    """Retrieve the top chunks for a question, with scores (retrieval only)."""
    from ragloop.core.retriever import search
    from ragloop.core.runtime import open_runtime

    with handled():
        rt = open_runtime(settings_for(data_dir))
        try:
            index = rt.active_index()
            hits = search(index, rt.store, rt.catalog, question, k)
        finally:
            rt.close()
    results = [
        {
            "rank": i,
            "score": round(h.score, 4),
            "chunk_id": h.chunk.id,
            "document_id": h.chunk.document_id,
            "title": h.document_title,
            "source": h.source,
            "text": h.chunk.text,
        }
        for i, h in enumerate(hits, start=1)
    ]
    if as_json:
        emit_json(
            {"question": question, "model_version": index.version.version, "results": results}
        )
        return
    if not results:
        out.print("no results: ingest documents first (ragloop ingest PATH)")
        return
    for r in results:
        out.print(
            f"[bold]{r['rank']}. {r['title']}[/bold]  score {r['score']:.3f}  ({r['source']})"
        )
        text = str(r["text"]).replace("\n", " ")
        out.print(f"   {text[:300]}{'…' if len(text) > 300 else ''}", highlight=False)


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
    """Verify that no chunk exceeds the model's token limit and vectors match the catalog."""
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
            f"vectors {report.orphan_vectors}, pending repairs {report.pending_repairs}: "
            + ("OK" if report.ok else "PROBLEMS FOUND"),
            highlight=False,
        )
    if not report.ok:
        raise typer.Exit(1)
