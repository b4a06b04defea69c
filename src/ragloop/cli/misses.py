"""``ragloop misses``: the queries the service failed, newest first."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

import typer
from rich.table import Table

from ragloop.cli.common import (
    DataDir,
    JsonFlag,
    app,
    emit_json,
    handled,
    open_catalog,
    out,
)


@app.command()
def misses(
    reason: Annotated[
        str | None, typer.Option(help="low_score | no_answer | negative_feedback")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=10_000)] = 50,
    data_dir: DataDir = None,
    as_json: JsonFlag = False,
) -> None:
    """List missed queries, newest first."""
    from ragloop.core.storage.querylog import QueryLog

    with handled(), open_catalog(data_dir) as catalog:
        items, total = QueryLog(catalog.engine).find(misses_only=True, reason=reason, limit=limit)
    if as_json:
        emit_json({"total": total, "items": [r.to_dict() for r in items]})
        return
    table = Table("when", "reasons", "top score", "question", title=f"{total} misses")
    for r in items:
        when = dt.datetime.fromtimestamp(r.created_at).strftime("%Y-%m-%d %H:%M")
        score = f"{r.top_score:.3f}" if r.top_score is not None else "-"
        table.add_row(when, ", ".join(r.miss_reasons), score, r.question[:80])
    out.print(table)
