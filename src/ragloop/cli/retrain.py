"""``ragloop retrain``: fine-tune the embedder and promote it if it wins the gate.

Against a running server (``--server URL --token TOKEN``) it goes through the admin API; with
no server it runs in this process, holding the data dir's writer lock (see ``cli.loop``).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Annotated, Any

import typer
from pydantic import ValidationError

from ragloop.cli.common import (
    DataDir,
    JsonFlag,
    app,
    emit_json,
    fail,
    handled,
    out,
    progress_bar,
)
from ragloop.cli.loop import Server, Token, local_manager, server_client


def _watch(poll: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """Poll a job once a second, with a progress bar on stderr, until it is done."""
    job = poll()
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
            with server_client(server, token) as client:
                job = client.retrain(options.model_dump())
                if wait:
                    job_id = job["id"]
                    job = _watch(lambda: client.job(job_id))
        else:
            with local_manager(data_dir) as manager:
                started = manager.start(options)
                job = _watch(lambda: manager.jobs.get(started.id).to_dict())
                manager.threads[started.id].join()
                job = manager.jobs.get(started.id).to_dict()
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
