"""What one app instance holds, built by ``create_app``'s lifespan and read by routes."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from fastapi import Request

from ragloop.core.answering import Answerer
from ragloop.core.errors import StoreError
from ragloop.core.runtime import Runtime
from ragloop.core.settings import Settings
from ragloop.core.storage.jobs import JobStore
from ragloop.core.storage.locks import WriterLock
from ragloop.core.storage.querylog import QueryLog
from ragloop.finetune.retrain import RetrainManager
from ragloop.finetune.scheduler import Scheduler
from ragloop.service.apikeys import ApiKeys
from ragloop.service.ingest_jobs import IngestRunner
from ragloop.service.metrics import Metrics


@dataclass
class AppState:
    """The runtime and the services built on it."""

    settings: Settings
    runtime: Runtime
    querylog: QueryLog
    jobs: JobStore
    keys: ApiKeys
    answerer: Answerer
    ingest: IngestRunner
    metrics: Metrics
    retrain: RetrainManager
    scheduler: Scheduler
    lock: WriterLock | None = None
    ready: threading.Event = field(default_factory=threading.Event)


def get_state(request: Request) -> AppState:
    """The app's state; 503 while the app is starting or stopping."""
    state: AppState | None = getattr(request.app.state, "rl", None)
    if state is None:
        raise StoreError("the service is not ready yet")
    return state
