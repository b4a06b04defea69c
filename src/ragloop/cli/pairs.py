"""``ragloop pairs``: labelled training pairs an admin already has, imported in bulk.

``ragloop pairs import DATASET --split train`` stores every relevant judgement of a BEIR split as
a labelled pair (see ``ragloop.finetune.imports``); ``ragloop pairs count`` shows what the
``labelled`` retrain source will train on. Both work on the data dir directly; importing only
reads the vector store and appends to the query log, so a running server may keep serving.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Annotated

import typer

from ragloop.cli.common import (
    DataDir,
    JsonFlag,
    app,
    emit_json,
    handled,
    open_catalog,
    out,
    progress_bar,
    progress_callback,
    settings_for,
)

pairs_app = typer.Typer(help="Labelled training pairs: import, count.", no_args_is_help=True)
app.add_typer(pairs_app, name="pairs")


@pairs_app.command("import")
def pairs_import(
    dataset: Annotated[Path, typer.Argument(help="A BEIR dataset folder (or its beir/ folder).")],
    split: Annotated[str, typer.Option("--split", help="Which qrels split to import.")] = "train",
    data_dir: DataDir = None,
    as_json: JsonFlag = False,
) -> None:
    """Import a BEIR split's judgements as labelled pairs (each document -> its best chunk)."""
    from ragloop.core.runtime import open_runtime
    from ragloop.core.storage.querylog import QueryLog
    from ragloop.eval.datasets import load_beir
    from ragloop.finetune.imports import import_beir_pairs

    with handled():
        data = load_beir(dataset, split)
        rt = open_runtime(settings_for(data_dir))
        try:
            with progress_bar() as bar:
                report = import_beir_pairs(
                    rt, QueryLog(rt.catalog.engine), data, progress_callback(bar)
                )
        finally:
            rt.close()
    if as_json:
        emit_json(report.to_dict())
        return
    out.print(
        f"{report.questions} questions, {report.judgements} judgements: "
        f"{report.pairs_added} pairs added, {report.already_present} already present, "
        f"{report.unknown_documents} name documents not in the store"
        + (f" (e.g. {', '.join(report.unknown_examples)})" if report.unknown_examples else ""),
        highlight=False,
    )


@pairs_app.command("count")
def pairs_count(data_dir: DataDir = None, as_json: JsonFlag = False) -> None:
    """Stored pairs by source (``feedback`` and ``import`` are what ``labelled`` trains on)."""
    from ragloop.core.storage.querylog import QueryLog

    with handled(), open_catalog(data_dir) as catalog:
        counts = dict(Counter(p["source"] for p in QueryLog(catalog.engine).pairs()))
    if as_json:
        emit_json(counts)
        return
    if not counts:
        out.print("no pairs stored yet")
    for source, n in sorted(counts.items()):
        out.print(f"{source}: {n}", highlight=False)
