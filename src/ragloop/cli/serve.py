"""``ragloop serve``, ``misses`` and ``keys``: running the service and reading its logs."""

from __future__ import annotations

import datetime as dt
import os
from typing import Annotated

import typer
from rich.table import Table

from ragloop.cli.common import (
    DataDir,
    JsonFlag,
    app,
    emit_json,
    fail,
    handled,
    open_catalog,
    out,
    settings_for,
)

keys_app = typer.Typer(help="Client API keys (stored as hashes).", no_args_is_help=True)
app.add_typer(keys_app, name="keys")


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
    workers: Annotated[int, typer.Option(help="Worker processes (needs a Chroma server).")] = 1,
    data_dir: DataDir = None,
) -> None:
    """Run the HTTP API (OpenAPI docs at /docs)."""
    import uvicorn

    from ragloop.core.storage.locks import WriterLock
    from ragloop.service.app import create_app

    with handled():
        settings = settings_for(data_dir)
        if workers < 1:
            fail("--workers must be at least 1")
        if workers > 1 and not settings.chroma_url:
            fail(
                "embedded Chroma belongs to one process, so --workers > 1 needs a Chroma "
                "server: start one (chroma run --path DIR --port 8001) and set "
                "RAGLOOP_CHROMA_URL=http://localhost:8001"
            )
        if not settings.chroma_url:
            # Check now so a busy data dir is one line, not a failed-startup traceback.
            with WriterLock(settings.data_dir, "ragloop serve (starting)"):
                pass
    if workers == 1:
        uvicorn.run(create_app(settings), host=host, port=port, log_level="info")
        return
    # Worker processes build their own app from the environment.
    os.environ["RAGLOOP_DATA_DIR"] = str(settings.data_dir.resolve())
    uvicorn.run(
        "ragloop.service.app:create_app_from_env",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level="info",
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


@keys_app.command("create")
def keys_create(
    name: Annotated[str, typer.Argument(help="Who the key is for.")],
    data_dir: DataDir = None,
    as_json: JsonFlag = False,
) -> None:
    """Create a key; the key itself is printed once and never stored."""
    from ragloop.service.apikeys import ApiKeys

    with handled(), open_catalog(data_dir) as catalog:
        record, plaintext = ApiKeys(catalog.engine).create(name)
    if as_json:
        emit_json(record.to_dict() | {"key": plaintext})
    else:
        out.print(f"created key {record.id} for {name}: {plaintext}\n(shown once; store it now)")


@keys_app.command("list")
def keys_list(data_dir: DataDir = None, as_json: JsonFlag = False) -> None:
    """List keys (ids and prefixes only)."""
    from ragloop.service.apikeys import ApiKeys

    with handled(), open_catalog(data_dir) as catalog:
        keys = ApiKeys(catalog.engine).all()
    if as_json:
        emit_json([k.to_dict() for k in keys])
        return
    table = Table("id", "name", "prefix", "created", "state")
    for k in keys:
        created = dt.datetime.fromtimestamp(k.created_at).strftime("%Y-%m-%d %H:%M")
        table.add_row(
            k.id, k.name, k.prefix + "…", created, "active" if k.revoked_at is None else "revoked"
        )
    out.print(table)


@keys_app.command("revoke")
def keys_revoke(
    key_id: Annotated[str, typer.Argument(help="The key's id (from keys list).")],
    data_dir: DataDir = None,
    as_json: JsonFlag = False,
) -> None:
    """Revoke a key."""
    from ragloop.service.apikeys import ApiKeys

    with handled(), open_catalog(data_dir) as catalog:
        record = ApiKeys(catalog.engine).revoke(key_id)
    if as_json:
        emit_json(record.to_dict())
    else:
        out.print(f"revoked key {record.id} ({record.name})")
