"""``ragloop worker``: train queued retrain jobs on this host (docs/deployment.md)."""

from __future__ import annotations

import os
from typing import Annotated

import typer

from ragloop.cli.common import app, fail, handled, out, settings_for


def _device(choice: str | None) -> str:
    """--device, else RAGLOOP_DEVICE, else CUDA when this host has it, else the CPU."""
    if choice:
        return choice
    if os.environ.get("RAGLOOP_DEVICE"):
        return os.environ["RAGLOOP_DEVICE"]
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


@app.command("worker")
def worker(
    device: Annotated[
        str | None,
        typer.Option(
            "--device",
            help="torch device to train on (cpu, cuda, cuda:1); default RAGLOOP_DEVICE, else "
            "cuda when this host has a GPU, else cpu.",
            show_default=False,
        ),
    ] = None,
    name: Annotated[
        str | None,
        typer.Option(
            "--name", help="Worker name in the queue (default host-pid).", show_default=False
        ),
    ] = None,
    burst: Annotated[
        bool, typer.Option("--burst", help="Stop once the queue is empty instead of waiting.")
    ] = False,
) -> None:
    """Take retrain jobs from the training queue and train them here, one at a time, until
    stopped (Ctrl-C or SIGTERM stop it once the job in hand is done). Needs the catalog and queue
    (RAGLOOP_CATALOG_URL, RAGLOOP_TRAINING_QUEUE) and the shared root mounted at the path the
    API host uses (RAGLOOP_SHARED_ROOT)."""
    with handled():
        try:
            import procrastinate  # noqa: F401
        except ImportError:
            fail("ragloop worker needs the workers extra: pip install 'ragloop[workers]'")
        from ragloop.finetune.remote import queue_url, run_worker

        os.environ["RAGLOOP_DEVICE"] = _device(device)
        settings = settings_for(None)
        url = queue_url(settings)
        from ragloop.core.storage.catalog import display_url

        out.print(
            f"training worker on {settings.device}: queue {display_url(url)}, "
            f"lease {settings.training_lease_seconds:g} s"
        )
        run_worker(settings, name=name, wait=not burst)
