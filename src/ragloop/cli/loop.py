"""What ``ragloop retrain`` and ``ragloop models`` share: a server, or the data dir itself.

Against a running server (``--server URL --token TOKEN``) they go through its admin API with
``RagloopClient``; with no server they run in this process, holding the data dir's writer lock
(a server that owns the data dir makes them refuse with a pointer to ``--server``).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from ragloop.cli.common import settings_for
from ragloop.client import RagloopClient
from ragloop.core.errors import ConflictError

if TYPE_CHECKING:
    from ragloop.finetune.retrain import RetrainManager

Server = Annotated[str | None, typer.Option("--server", help="A running ragloop server's URL.")]
Token = Annotated[
    str | None, typer.Option("--token", envvar="RAGLOOP_ADMIN_TOKEN", help="Admin token.")
]


def server_client(server: str, token: str | None) -> RagloopClient:
    """A client for a running server's admin API."""
    return RagloopClient(server, token, timeout=60)


@contextmanager
def local_manager(data_dir: Path | None) -> Iterator[RetrainManager]:
    """The data dir's retrain manager in this process, under the data dir's writer lock."""
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
    try:
        rt = open_runtime(settings)
        try:
            log = QueryLog(rt.catalog.engine)
            jobs = JobStore(rt.catalog.engine)
            yield RetrainManager(rt, log, jobs, threading.Lock(), lambda: None)
        finally:
            rt.close()
    finally:
        lock.release()
