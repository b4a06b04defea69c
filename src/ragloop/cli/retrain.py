"""``ragloop retrain`` and ``ragloop models``: the learning loop from the command line.

Against a running server (``--server URL --token TOKEN``) they go through its admin API; with no
server they run in this process, holding the data dir's writer lock (a server that owns the
data dir makes them refuse with a pointer to ``--server``).
"""

from __future__ import annotations

import json
import threading
import time
from typing import Annotated, Any

import httpx
import typer
from pydantic import ValidationError
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
    progress_bar,
    settings_for,
)
from ragloop.core.errors import ConflictError, InvalidInputError

models_app = typer.Typer(help="Model versions: list, activate (rollback).", no_args_is_help=True)
app.add_typer(models_app, name="models")

Server = Annotated[str | None, typer.Option("--server", help="A running ragloop server's URL.")]
Token = Annotated[
    str | None, typer.Option("--token", envvar="RAGLOOP_ADMIN_TOKEN", help="Admin token.")
]


def _remote(method: str, url: str, path: str, token: str | None, body: Any = None) -> Any:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        r = httpx.request(method, url.rstrip("/") + path, json=body, headers=headers, timeout=60)
    except httpx.HTTPError as exc:
        raise ConflictError(f"cannot reach {url}: {exc}") from None
    if r.status_code >= 400:
        try:
            message = r.json()["error"]["message"]
        except Exception:
            message = r.text[:200]
        raise InvalidInputError(f"server answered {r.status_code}: {message}")
    return r.json()


def _local(data_dir: Any) -> Any:
    from ragloop.core.runtime import open_runtime
    from ragloop.core.storage.jobs import JobStore
    from ragloop.core.storage.locks import WriterLock
    from ragloop.core.storage.querylog import QueryLog
    from ragloop.finetune.retrain import RetrainManager

    settings = settings_for(data_dir)
    lock = WriterLock(settings.data_dir, "ragloop retrain")
    try:
        lock.acquire()
    except ConflictError as exc:
        raise ConflictError(
            f"{exc.message}; if a server owns it, use --server URL --token TOKEN"
        ) from None
    rt = open_runtime(settings)
    log = QueryLog(rt.catalog.engine)
    manager = RetrainManager(rt, log, JobStore(rt.catalog.engine), threading.Lock(), lambda: None)
    return rt, manager, lock


def _watch(poll: Any, as_json: bool) -> dict[str, Any]:
    job: dict[str, Any] = poll()
    with progress_bar() as bar:
        task = bar.add_task("retraining", total=1.0)
        while not job["done"]:
            bar.update(
                task, completed=job["progress"], description=job["message"][:60] or job["state"]
            )
            time.sleep(1)
            job = poll()
    return job


@app.command()
def retrain(
    sources: Annotated[
        str, typer.Option(help="Comma-separated: labelled,pseudo,synthetic.")
    ] = "labelled,pseudo,synthetic",
    loss: Annotated[
        str, typer.Option(help="mnrl|matryoshka|triplet|online-contrastive|tsdae")
    ] = "mnrl",
    lora: Annotated[bool, typer.Option(help="Train LoRA adapters.")] = False,
    query_only: Annotated[bool, typer.Option(help="Train a query-side adapter only.")] = False,
    epochs: Annotated[float, typer.Option()] = 1.0,
    gate_dataset: Annotated[str | None, typer.Option(help="BEIR folder to gate on.")] = None,
    gate_split: Annotated[str, typer.Option()] = "test",
    margin: Annotated[float | None, typer.Option(help="Required nDCG@10 gain.")] = None,
    options_json: Annotated[
        str | None,
        typer.Option(
            "--options",
            help="More options as JSON, as in POST /admin/retrain: '{\"learning_rate\": 3e-5}'.",
        ),
    ] = None,
    wait: Annotated[
        bool, typer.Option("--wait", help="Wait for the job (always, locally).")
    ] = False,
    server: Server = None,
    token: Token = None,
    data_dir: DataDir = None,
    as_json: JsonFlag = False,
) -> None:
    """Fine-tune the embedder on logged misses and synthetic pairs; promote it if it wins."""
    from ragloop.finetune.options import RetrainOptions

    with handled():
        try:
            extra = json.loads(options_json) if options_json else {}
            if not isinstance(extra, dict):
                raise ValueError("must be a JSON object")
            options = RetrainOptions.model_validate(
                {
                    "sources": [s for s in sources.split(",") if s],
                    "loss": loss,
                    "lora": lora,
                    "query_only": query_only,
                    "epochs": epochs,
                    "gate_dataset": gate_dataset,
                    "gate_split": gate_split,
                    "margin": margin,
                }
                | extra
            )
        except ValidationError as exc:
            fail(
                "; ".join(
                    f"{'.'.join(map(str, e['loc'])) or 'options'}: {e['msg']}" for e in exc.errors()
                )
            )
        except ValueError as exc:  # --options is not JSON, or not an object
            fail(f"--options: {exc}")
        if server:
            job = _remote("POST", server, "/admin/retrain", token, options.model_dump())
            if wait:
                job = _watch(
                    lambda: _remote("GET", server, f"/admin/jobs/{job['id']}", token), as_json
                )
        else:
            rt, manager, lock = _local(data_dir)
            try:
                started = manager.start(options)
                job = _watch(lambda: manager.jobs.get(started.id).to_dict(), as_json)
                manager.threads[started.id].join()
                job = manager.jobs.get(started.id).to_dict()
            finally:
                rt.close()
                lock.release()
    if as_json:
        emit_json(job)
    else:
        gate = (job.get("result") or {}).get("gate") or {}
        out.print(f"job {job['id']}: {job['state']} ({job['message']})", highlight=False)
        if gate:
            out.print(
                f"gate on {gate['gate_set']} ({gate['n_queries']} queries): ndcg@10 current "
                f"{gate['current']['ndcg@10']:.4f}, candidate {gate['candidate']['ndcg@10']:.4f}",
                highlight=False,
            )
    if job["state"] in ("failed", "cancelled"):
        raise typer.Exit(1)


@models_app.command("list")
def models_list(
    server: Server = None, token: Token = None, data_dir: DataDir = None, as_json: JsonFlag = False
) -> None:
    """Model versions with status and gate scores."""
    with handled():
        if server:
            rows = _remote("GET", server, "/admin/models", token)
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
            _remote("POST", server, f"/admin/models/{version}/activate", token)
        else:
            rt, manager, lock = _local(data_dir)
            try:
                manager.promoter.activate(version)
            finally:
                rt.close()
                lock.release()
    if as_json:
        emit_json({"active": version})
    else:
        out.print(f"{version} is active")
