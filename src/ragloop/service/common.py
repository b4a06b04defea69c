"""What the route modules of every protocol share: bodies, client auth, uploads, jobs, sources,
conversations, metrics and server-sent events.

Route modules (``native/``, ``docsgpt/``, ``openai_api/``) import helpers from here and from
their own protocol's ``shapes`` module only, never from one another, so a protocol can change
its routes without breaking another's. Helpers raise ``ragloop.core.errors`` exceptions; each
protocol turns them into its own error shape.
"""

from __future__ import annotations

import json
import logging
import tempfile
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any

from fastapi import Request, UploadFile
from fastapi.responses import StreamingResponse

from ragloop.core.answering import QueryOutcome
from ragloop.core.errors import InvalidInputError, PayloadTooLargeError, RagloopError
from ragloop.core.generators.base import Context, Turn
from ragloop.core.generators.prompts import MAX_HISTORY_TURNS
from ragloop.core.storage.jobs import Job
from ragloop.service.auth import check_client, presented_key
from ragloop.service.conversations import Conversations
from ragloop.service.ingest_jobs import safe_filename
from ragloop.service.schemas import JobOut
from ragloop.service.state import AppState

log = logging.getLogger("ragloop.service")

#: DocsGPT cuts source texts to this many characters in ``source`` events.
SOURCE_PREVIEW_CHARS = 100


async def read_json(request: Request) -> dict[str, Any]:
    """The body as a JSON object (empty body: ``{}``); InvalidInputError when it is not one."""
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InvalidInputError(f"the body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise InvalidInputError("the body must be a JSON object")
    return body


def authenticate(state: AppState, request: Request, key: object = None) -> str | None:
    """The client's key id from ``api_key`` (body or query) or the headers; AuthError if bad.

    As in the native API, everything is open while no key is configured.
    """
    presented = key if isinstance(key, str) and key.strip() else presented_key(request)
    return check_client(state, presented.strip() if presented else None)


def job_out(job: Job) -> JobOut:
    """A job row as the API shows it."""
    return JobOut(**job.to_dict())


async def stage_uploads(state: AppState, files: list[UploadFile]) -> tuple[Path, list[str]]:
    """Check and write an upload to a staging folder, enforcing limits while streaming."""
    runner = state.ingest
    named = [(f.filename or "upload", f.size or 0) for f in files]
    runner.check_upload(named)
    staging_root = state.settings.uploads_dir / ".staging"
    staging_root.mkdir(parents=True, exist_ok=True)
    staged = Path(tempfile.mkdtemp(dir=staging_root))
    names: list[str] = []
    limit = state.settings.max_file_bytes
    for f in files:
        name = safe_filename(f.filename or "upload")
        if name in names:
            raise InvalidInputError(f"the upload names {name} twice")
        written = 0
        with (staged / name).open("wb") as out:
            while chunk := await f.read(1 << 20):
                written += len(chunk)
                if written > limit:
                    raise PayloadTooLargeError(
                        f"{f.filename} is over the {state.settings.max_file_mb:g} MB limit "
                        "(RAGLOOP_MAX_FILE_MB)"
                    )
                out.write(chunk)
        names.append(name)
    return staged, names


def record_metrics(state: AppState, o: QueryOutcome) -> None:
    """Count a query and its miss reasons."""
    state.metrics.queries.labels(o.generator).inc()
    for reason in o.miss_reasons:
        state.metrics.misses.labels(reason).inc()


def filename_of(source: str) -> str:
    """The last path segment of a source (a path, a URL or ``corpus.jsonl#id``)."""
    return PurePosixPath(source.replace("\\", "/")).name or source


def source_item(c: Context, preview: bool = True) -> dict[str, Any]:
    """A source as DocsGPT labels it (the OpenAI routes carry it in DocsGPT's extension);
    ``preview`` cuts a long text the way DocsGPT's ``/stream`` does."""
    text = c.text
    if preview and len(text) > SOURCE_PREVIEW_CHARS:
        text = text[:SOURCE_PREVIEW_CHARS].strip() + "..."
    filename = filename_of(c.source)
    return {
        "text": text,
        "title": c.title or filename,
        "source": c.source or filename,
        "filename": filename,
        "score": round(c.score, 6),
    }


def resolve_conversation(
    state: AppState, raw_id: object, history: list[Turn], client: str | None
) -> tuple[str, list[Turn]]:
    """The conversation id and its prior turns.

    A known ``conversation_id`` continues that conversation: its turns come from the query log
    and ``history`` is ignored (as in DocsGPT). No id, or one not seen before, starts a new
    conversation whose history is the given one.
    """
    if raw_id is None or raw_id == "" or raw_id == "None":
        return Conversations.new_id(), history
    if not isinstance(raw_id, str):
        raise InvalidInputError("conversation_id must be a string")
    cid = Conversations.check_id(raw_id)
    stored = Conversations(state.querylog.engine).turns(cid, client, last=MAX_HISTORY_TURNS)
    return cid, stored or history


def sse_event(event: str, data: dict[str, Any]) -> str:
    """One server-sent event with a name: an ``event:`` line, then a ``data:`` line."""
    return f"event: {event}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"


def sse_data(data: dict[str, Any]) -> str:
    """One server-sent event as DocsGPT's widget and OpenAI clients parse it: ``data:`` only."""
    return f"data: {json.dumps(data, ensure_ascii=False)}\n\n"


def event_stream(events: Iterator[str], status: int = 200) -> StreamingResponse:
    """A ``text/event-stream`` response that proxies neither cache nor buffer."""
    return StreamingResponse(
        events,
        status_code=status,
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


def stream_error_message(exc: Exception, where: str) -> str:
    """The in-band message for a stream that failed after its headers were sent.

    Our own errors say what went wrong; anything else is logged with its traceback and reported
    by class only, so internals do not leak to clients.
    """
    if isinstance(exc, RagloopError):
        return exc.message
    log.exception("%s failed", where)
    return f"internal error ({exc.__class__.__name__}); see the server log"
