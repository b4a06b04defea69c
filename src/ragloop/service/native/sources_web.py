"""Web pages through the API: ``POST /v1/sources/web`` crawls a list of URLs as a background
job (admin token only), polled at ``/v1/jobs/{id}`` like an upload.

The crawl is ``ingest.web.WebSource``, as ``ragloop ingest URL...`` runs it, under the server's
fetch policy (``FetchPolicy``): hosts that resolve to loopback, private, link-local or other
non-public addresses are refused, at submission and on every connection, unless
``RAGLOOP_WEB_ALLOW_PRIVATE`` or ``RAGLOOP_WEB_ALLOWED_HOSTS`` lets them through. A crawl job
runs on the upload jobs' worker thread, one job at a time, holding the same write mutex.

A crawl stops between pages when the server shuts down; the pages it had are ingested and the
job ends ``cancelled``. A crawl job a dead process left queued or running is failed at the next
start-up (``recover``); starting it again costs little, since unchanged pages are not embedded.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Annotated, Any
from urllib.parse import urlsplit

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field, StringConstraints
from starlette.concurrency import run_in_threadpool

from ragloop.core.errors import ConflictError, InvalidInputError
from ragloop.core.records import DocumentRecord
from ragloop.core.settings import Settings
from ragloop.core.storage.jobs import Job, JobStore
from ragloop.ingest.pipeline import Ingestor, SourceItem
from ragloop.ingest.web import CrawlOptions, WebSource
from ragloop.ingest.web_fetch import FetchPolicy, is_http
from ragloop.service.auth import require_admin
from ragloop.service.common import checked_json_body, job_out
from ragloop.service.schemas import ErrorOut, JobOut
from ragloop.service.state import AppState, get_state

#: The ``kind`` of a crawl job's row.
JOB_KIND = "web"
#: The message of a crawl job that a stopped server left unfinished.
STOPPED = (
    "the server stopped before this crawl finished; start it again (the pages it ingested "
    "are kept, and unchanged pages are not embedded again)"
)

router = APIRouter(
    tags=["documents"], dependencies=[Depends(require_admin), Depends(checked_json_body)]
)
ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorOut} for code in (400, 401, 403, 409, 422)
}

Url = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=2048)]
Host = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=260)]


class WebSourceIn(BaseModel):
    """A crawl: start pages or sitemaps, and its limits (as ``ragloop ingest URL...``)."""

    model_config = ConfigDict(extra="forbid")

    urls: list[Url] = Field(
        min_length=1, max_length=100, description="http(s) pages or sitemaps to start from."
    )
    depth: int = Field(3, ge=0, le=20, description="Links followed from a start page, in hops.")
    max_pages: int = Field(500, ge=1, le=100_000, description="Requests made at most.")
    delay: float = Field(
        1.0, ge=0, le=60, description="Seconds between requests to one host (at least)."
    )
    allow_hosts: list[Host] = Field(
        default_factory=list,
        max_length=100,
        description="Hosts followed besides the start URLs' hosts.",
    )
    prune: bool = Field(
        False, description="Remove the crawled hosts' stored pages this crawl did not reach."
    )


def fetch_policy(settings: Settings) -> FetchPolicy:
    """The server's fetch policy, from ``RAGLOOP_WEB_ALLOW_PRIVATE`` and
    ``RAGLOOP_WEB_ALLOWED_HOSTS``."""
    return FetchPolicy(
        allow_private=settings.web_allow_private,
        allowed_hosts=frozenset(settings.web_allowed_host_list),
    )


def check_request(body: WebSourceIn, policy: FetchPolicy) -> None:
    """Refuse URLs that are not http(s) and hosts the policy refuses (resolves names, so it
    blocks: run it off the event loop)."""
    for i, url in enumerate(body.urls):
        if not _is_http(url):
            raise InvalidInputError(f"urls[{i}]: not an http(s) URL with a host: {url!r}")
        refused = policy.refusal(url)
        if refused:
            raise InvalidInputError(f"urls[{i}]: {url}: {refused}")
    for i, host in enumerate(body.allow_hosts):
        url = host if "//" in host else f"http://{host}"
        if not (_is_http(url) and urlsplit(url).path in ("", "/")):
            raise InvalidInputError(f"allow_hosts[{i}]: not a host name: {host!r}")
        refused = policy.refusal(url)
        if refused:
            raise InvalidInputError(f"allow_hosts[{i}]: {host}: {refused}")


def _is_http(url: str) -> bool:
    """``is_http``, False for what cannot be parsed as a URL (an unclosed ``[``)."""
    try:
        urlsplit(url).port  # noqa: B018 - a bad port raises here
        return is_http(url)
    except ValueError:
        return False


@router.post("/v1/sources/web", status_code=202, response_model=JobOut, responses=ERRORS)
async def crawl(body: WebSourceIn, request: Request) -> JobOut:
    """Crawl web pages into the corpus as a background job (poll ``/v1/jobs/{id}``).

    Needs the admin token. Links are followed on the start URLs' hosts (and ``allow_hosts``)
    to ``depth`` hops, at most ``max_pages`` requests, honouring robots.txt; a page is read as
    an HTML, text or Markdown file would be. Hosts that resolve to non-public addresses are
    refused unless the server's settings allow them.
    """
    state = get_state(request)
    policy = fetch_policy(state.settings)
    await run_in_threadpool(check_request, body, policy)
    options = CrawlOptions(
        max_depth=body.depth,
        max_pages=body.max_pages,
        delay_s=body.delay,
        max_page_bytes=state.settings.max_file_bytes,
        allow_hosts=tuple(body.allow_hosts),
    )
    app = request.app

    def stopping() -> bool:
        return getattr(app.state, "rl", None) is not state

    pages = WebSource(body.urls, options, sleep=_pausing(stopping), policy=policy)
    source = _Stoppable(pages, stopping)
    job = await run_in_threadpool(submit, state, source, body.model_dump(), body.prune)
    return job_out(job)


def _pausing(stopping: Callable[[], bool]) -> Callable[[float], None]:
    """A wait between requests that ends early once ``stopping()`` says so."""

    def sleep(seconds: float) -> None:
        end = time.monotonic() + seconds
        while not stopping() and (left := end - time.monotonic()) > 0:
            time.sleep(min(left, 0.25))

    return sleep


class _Stoppable:
    """A ``WebSource`` that stops between pages once ``stopping()`` says the server stops."""

    def __init__(self, inner: WebSource, stopping: Callable[[], bool]) -> None:
        self.inner = inner
        self.stopping = stopping
        self.stopped = False
        self.complete = True
        self.warnings: list[dict[str, str]] = []
        self.skipped = inner.skipped  # the crawl clears and fills this very list

    def scopes(self) -> Sequence[str]:
        return self.inner.scopes()

    def documents(self, stored: Mapping[str, DocumentRecord]) -> Iterator[SourceItem]:
        self.stopped = False
        self.warnings.clear()
        pages = self.inner.documents(stored)
        try:
            for item in pages:
                yield item
                if self.stopping():
                    self.stopped = True
                    break
        finally:
            close = getattr(pages, "close", None)
            if close is not None:
                close()  # the crawl's own cleanup: its connections
            self.complete = self.inner.complete and not self.stopped
            self.warnings += self.inner.warnings
            if self.stopped:
                self.warnings.append(
                    {
                        "name": self.inner.starts[0],
                        "warning": "stopped: the server is shutting down; the pages fetched "
                        "so far are ingested, and prune removes only pages that answered "
                        "404 or 410",
                    }
                )


def submit(state: AppState, source: _Stoppable, params: dict[str, Any], prune: bool) -> Job:
    """Queue a crawl job on the ingest worker."""
    job = state.jobs.create(JOB_KIND, params)
    try:
        state.ingest.pool.submit(_run, state, job.id, source, prune)
    except RuntimeError:  # the pool is shut down: the server is stopping
        state.jobs.update(job.id, state="failed", message=STOPPED)
        raise ConflictError("the server is shutting down; start the crawl again later") from None
    return job


def _run(state: AppState, job_id: str, source: _Stoppable, prune: bool) -> None:
    jobs = state.jobs
    last = 0.0

    def progress(stage: str, done: int, total: int) -> None:
        nonlocal last
        now = time.monotonic()
        if now - last < 0.5 and not (total and done == total):
            return
        last = now
        if stage == "scan":
            jobs.update(job_id, message=f"crawling: {done} pages", result={"pages": done})
        elif stage == "embed" and total:
            jobs.update(
                job_id,
                progress=round(done / total, 4),
                message=f"embedding: {done} of {total} chunks",
            )

    runner = state.ingest
    try:
        if source.stopping():
            jobs.update(job_id, state="failed", message=STOPPED)
            return
        jobs.update(job_id, state="running", message="crawling")
        with runner.write_guard:
            report = Ingestor(state.runtime, progress).ingest_source(source, prune)
        result = report.to_dict()
        failed = len(report.failed)
        if source.stopped:
            final, message = "cancelled", f"{STOPPED}; {report.documents_seen} pages were ingested"
        else:
            final, message = "succeeded", "done" if not failed else f"{failed} page(s) failed"
        jobs.update(
            job_id,
            state=final,
            progress=1.0,
            message=message,
            result=result,
            errors=result["failed"],
        )
    except Exception as exc:  # the job row must say what happened, whatever it was
        jobs.update(job_id, state="failed", message=f"{exc.__class__.__name__}: {exc}")


def recover(jobs: JobStore, owner: bool) -> int:
    """Start-up: fail the crawl jobs a dead process left unfinished (only the process that
    owns the data dir for its whole life knows no other worker runs them)."""
    return jobs.fail_unfinished(JOB_KIND, STOPPED) if owner else 0
