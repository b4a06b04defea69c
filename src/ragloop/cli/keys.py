"""``ragloop keys``: client API keys (create, list, revoke), stored as hashes."""

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

keys_app = typer.Typer(help="Client API keys (stored as hashes).", no_args_is_help=True)
app.add_typer(keys_app, name="keys")


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
