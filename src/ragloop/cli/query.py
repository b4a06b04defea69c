"""``ragloop query``: the top chunks for a question, retrieval only."""

from __future__ import annotations

from typing import Annotated

import typer

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
