"""The FastAPI application: ``create_app(settings)`` builds everything in its lifespan."""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from sqlalchemy.exc import IntegrityError
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

import ragloop
from ragloop.core.answering import Answerer
from ragloop.core.embedding.base import EmbedderRegistry
from ragloop.core.errors import ConfigError, InvalidInputError
from ragloop.core.generators.base import Generator, GeneratorFactory, LLMGenerator
from ragloop.core.generators.registry import build_generator, check_generator_setting
from ragloop.core.runtime import ActiveIndex, Runtime, open_runtime
from ragloop.core.settings import Settings, load_settings
from ragloop.core.storage.jobs import JobStore
from ragloop.core.storage.leases import Leases
from ragloop.core.storage.locks import WriterLock
from ragloop.core.storage.querylog import QueryLog
from ragloop.core.storage.vectors import VectorStore
from ragloop.finetune.retrain import RetrainManager
from ragloop.finetune.scheduler import Scheduler
from ragloop.ingest.pipeline import repair_vectors
from ragloop.service.apikeys import ApiKeys
from ragloop.service.console import router as console_router
from ragloop.service.docsgpt import answers as routes_docsgpt
from ragloop.service.docsgpt import sources as routes_docsgpt_sources
from ragloop.service.errors import install_error_handlers
from ragloop.service.ingest_jobs import IngestRunner
from ragloop.service.limits import BodyLimit, RateLimit
from ragloop.service.metrics import Metrics
from ragloop.service.native import admin as routes_admin
from ragloop.service.native import documents as routes_documents
from ragloop.service.native import health as routes_health
from ragloop.service.native import query as routes_query
from ragloop.service.native import sources_web as routes_sources_web
from ragloop.service.openai_api import chat as routes_openai
from ragloop.service.openai_api import embeddings as routes_openai_embeddings
from ragloop.service.schemas import DOCSGPT_ERRORS, OPENAI_ERRORS, RATE_LIMITED
from ragloop.service.state import AppState


def default_generator_factory(settings: Settings, name: str | None) -> Generator:
    """Build a generator by name (None: the configured one) from the registry."""
    return build_generator(settings, name)


def _generator_provider(
    settings: Settings, factory: GeneratorFactory
) -> Callable[[str | None], Generator]:
    cache: dict[str, Generator] = {}
    lock = threading.Lock()

    def provide(name: str | None) -> Generator:
        key = name or settings.generator
        with lock:
            if key not in cache:
                try:
                    cache[key] = factory(settings, None if key == settings.generator else key)
                except ConfigError as exc:
                    if key == settings.generator:
                        raise
                    # A request asked for a generator this server is not set up for.
                    raise InvalidInputError(exc.message) from None
            return cache[key]

    return provide


def build_state(
    settings: Settings,
    registry: EmbedderRegistry | None,
    store: VectorStore | None,
    generator_factory: GeneratorFactory,
) -> AppState:
    """Open everything the service needs; fails fast with a clear error."""
    started = time.time()
    lock: WriterLock | None = None
    if settings.chroma_url is None:
        # Embedded Chroma belongs to this process: hold the data dir for our whole life, so a
        # CLI ingest is refused rather than writing the store under us.
        lock = WriterLock(settings.data_dir, "ragloop serve")
        lock.acquire()
    try:
        runtime = open_runtime(settings, registry=registry, store=store)
        index = _first_index(runtime)
        index.embedder.embed_query("warm up")  # first call pays one-off costs, not a user
        # Leases in the catalog: the one-job rule, the scheduler and (with a Chroma server) the
        # writer rule hold across every replica on every host.
        leases = Leases(runtime.catalog.engine, settings.lease_ttl_s)
        jobs = JobStore(runtime.catalog.engine, leases)
        if lock is not None:
            repair_vectors(runtime.catalog, runtime.store)
        querylog = QueryLog(runtime.catalog.engine)
        provider = _generator_provider(settings, generator_factory)
        provider(None)  # a misconfigured generator fails at start-up, not on the first query
        answerer = Answerer(runtime, querylog, provider, generator_factory(settings, "extractive"))

        def read_catalog() -> dict[str, Any]:
            active = runtime.catalog.active_version()
            return runtime.catalog.counts() | {"model_version": active.version if active else ""}

        ingest = IngestRunner(
            runtime,
            jobs,
            None
            if lock
            else WriterLock(settings.data_dir, "ragloop serve ingest job", leases, wait_s=600),
            started,
        )

        def llm() -> LLMGenerator | None:
            generator = provider(None)
            return generator if isinstance(generator, LLMGenerator) else None

        retrain = RetrainManager(runtime, querylog, jobs, ingest.write_guard, llm)
        if lock is not None:
            jobs.adopt("retrain")  # before resume: the jobs it resumes are ours
            retrain.resume()
        scheduler = Scheduler(
            retrain,
            querylog,
            settings.retrain_every_hours,
            settings.retrain_after_misses,
            tick_s=settings.retrain_check_s,
            leases=leases,
        )
        state = AppState(
            settings=settings,
            runtime=runtime,
            querylog=querylog,
            jobs=jobs,
            keys=ApiKeys(runtime.catalog.engine, settings.api_key_list),
            answerer=answerer,
            ingest=ingest,
            metrics=Metrics(read_catalog),
            retrain=retrain,
            scheduler=scheduler,
            lock=lock,
        )
        # Crawl jobs a dead process left are failed; upload jobs are resumed (or failed) and
        # stale staging removed, last, as it may start the ingest thread.
        routes_sources_web.recover(jobs, owner=lock is not None)
        ingest.recover(owner=lock is not None)
    except BaseException:
        if lock is not None:
            lock.release()
        raise
    scheduler.start()
    state.ready.set()
    return state


def _first_index(runtime: Runtime) -> ActiveIndex:
    """The active index; on a new catalog, replicas starting together race to register the
    base model, and the losers read the winner's once it is active."""
    deadline = None
    while True:
        try:
            return runtime.active_index()
        except IntegrityError:
            # the winner commits its version, then the pointer: give it 30 s from our loss
            deadline = deadline or time.monotonic() + 30
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def create_app(
    settings: Settings | None = None,
    *,
    registry: EmbedderRegistry | None = None,
    store: VectorStore | None = None,
    generator_factory: GeneratorFactory = default_generator_factory,
) -> FastAPI:
    """The ragloop HTTP app. Nothing is opened until the lifespan starts.

    Raises ``ConfigError`` at once when ``RAGLOOP_GENERATOR`` names no known generator.
    """
    settings = settings or load_settings()
    check_generator_setting(settings)
    install_log_redaction()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        state = await run_in_threadpool(build_state, settings, registry, store, generator_factory)
        app.state.rl = state
        try:
            yield
        finally:
            app.state.rl = None
            state.scheduler.stop()
            state.ingest.shutdown()
            if state.jobs.leases is not None:
                state.jobs.leases.close()
            state.runtime.close()
            if state.lock is not None:
                state.lock.release()

    app = FastAPI(
        title="ragloop",
        version=ragloop.__version__,
        description="A RAG service that learns from its misses.",
        lifespan=lifespan,
    )
    install_error_handlers(app)
    # Innermost of the middlewares: its 413s still get CORS headers and latency metrics.
    app.add_middleware(BodyLimit, settings=settings)
    app.add_middleware(RateLimit, settings=settings)
    if settings.cors_origin_list:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origin_list,
            allow_methods=["GET", "POST", "DELETE", "OPTIONS"],
            allow_headers=["Content-Type", "Authorization", "X-API-Key", "Idempotency-Key"],
        )

    app.add_middleware(RequestLatency)
    # Each protocol's documented errors, in its own shape (routes may document more).
    for module, errors in (
        (routes_health, {}),
        (routes_query, RATE_LIMITED),
        (routes_documents, RATE_LIMITED),
        (routes_sources_web, {}),
        (routes_admin, {}),
        (routes_docsgpt, DOCSGPT_ERRORS),
        (routes_docsgpt_sources, DOCSGPT_ERRORS),
        (routes_openai, OPENAI_ERRORS),
        (routes_openai_embeddings, OPENAI_ERRORS),
    ):
        app.include_router(module.router, responses=errors)
    app.include_router(console_router)  # /console and /chat, left out of the schema
    return app


class RequestLatency:
    """Observe each request's latency by method, route and status, as plain ASGI middleware.

    ``@app.middleware("http")`` (Starlette's BaseHTTPMiddleware) runs every request through an
    extra task and memory streams; on two cores that overhead showed up in ``/api/search``'s
    distance from the in-process floor (docs/benchmarks.md). This wraps ``send`` only. The time
    covers the whole response, streamed bodies included.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # what the client sees when the app raises before responding

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            state: AppState | None = getattr(scope["app"].state, "rl", None)
            if state is not None:
                route = getattr(scope.get("route"), "path", "unmatched")
                state.metrics.latency.labels(scope["method"], route, str(status)).observe(
                    time.perf_counter() - started
                )


#: ``api_key=...`` in a logged URL: DocsGPT clients may send their key as a query parameter.
_KEY_IN_URL = re.compile(r"((?:^|[?&])api_key=)[^&\s\"]*", re.IGNORECASE)


class RedactKeys(logging.Filter):
    """Replace ``?api_key=`` values in access-log records, so keys never reach log files."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(
                _KEY_IN_URL.sub(r"\1REDACTED", a) if isinstance(a, str) else a for a in record.args
            )
        elif isinstance(record.msg, str):
            record.msg = _KEY_IN_URL.sub(r"\1REDACTED", record.msg)
        return True


def install_log_redaction() -> None:
    """Add ``RedactKeys`` to uvicorn's access logger, once per process."""
    access = logging.getLogger("uvicorn.access")
    if not any(isinstance(f, RedactKeys) for f in access.filters):
        access.addFilter(RedactKeys())


def create_app_from_env() -> FastAPI:
    """Factory for ``uvicorn --factory`` and worker processes: settings from the environment."""
    return create_app(load_settings())
