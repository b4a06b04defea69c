"""``ragloop serve``: run the HTTP API, one process or several workers."""

from __future__ import annotations

import os
import shutil
import tempfile
from typing import Annotated

import typer

from ragloop.cli.common import (
    DataDir,
    app,
    fail,
    handled,
    settings_for,
)


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
    # A scrape reaches one worker: in prometheus-client's multiprocess mode each writes its
    # metrics to files here and any of them reports the sum (unless one is set already).
    metrics_dir = None
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        metrics_dir = tempfile.mkdtemp(prefix="ragloop-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
    try:
        uvicorn.run(
            "ragloop.service.app:create_app_from_env",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            log_level="info",
        )
    finally:
        if metrics_dir is not None:
            shutil.rmtree(metrics_dir, ignore_errors=True)
