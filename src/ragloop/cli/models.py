"""``ragloop models``: model versions (list) and rollback (activate), locally or on a server."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from ragloop.cli.common import DataDir, JsonFlag, app, emit_json, handled, open_catalog, out
from ragloop.cli.loop import Server, Token, local_manager, server_client

models_app = typer.Typer(help="Model versions: list, activate (rollback).", no_args_is_help=True)
app.add_typer(models_app, name="models")


@models_app.command("list")
def models_list(
    server: Server = None, token: Token = None, data_dir: DataDir = None, as_json: JsonFlag = False
) -> None:
    """Model versions with status and gate scores."""
    with handled():
        if server:
            with server_client(server, token) as client:
                rows = client.models()
        else:
            with open_catalog(data_dir) as catalog:
                active = catalog.active_version()
                rows = [
                    {
                        "version": v.version,
                        "status": v.status,
                        "parent": v.parent,
                        "kind": v.info.get("kind", "base" if v.parent is None else "full"),
                        "active": active is not None and v.version == active.version,
                        "created_at": v.created_at,
                        "gate": v.info.get("gate"),
                    }
                    for v in catalog.list_versions()
                ]
    if as_json:
        emit_json(rows)
        return
    table = Table("version", "status", "kind", "parent", "gate ndcg@10 (current -> candidate)")
    for r in rows:
        g = r.get("gate") or {}
        score = f"{g['current']['ndcg@10']:.4f} -> {g['candidate']['ndcg@10']:.4f}" if g else "-"
        table.add_row(
            r["version"] + (" *" if r["active"] else ""),
            r["status"],
            r["kind"],
            r["parent"] or "-",
            score,
        )
    out.print(table)


@models_app.command("activate")
def models_activate(
    version: Annotated[str, typer.Argument(help="The version to serve.")],
    server: Server = None,
    token: Token = None,
    data_dir: DataDir = None,
    as_json: JsonFlag = False,
) -> None:
    """Roll back or forward to a kept version."""
    with handled():
        if server:
            with server_client(server, token) as client:
                client.activate_model(version)
        else:
            with local_manager(data_dir) as manager:
                manager.promoter.activate(version)
    if as_json:
        emit_json({"active": version})
    else:
        out.print(f"{version} is active")
