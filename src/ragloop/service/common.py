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
import math
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any

from fastapi import Request, UploadFile
from fastapi.responses import StreamingResponse

from ragloop.core.answering import QueryOutcome
from ragloop.core.errors import (
    InvalidInputError,
    PayloadTooLargeError,
    RagloopError,
    UnsupportedFormatError,
)
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


#: Largest integer magnitude a request may carry (a signed 64-bit integer: what the catalog
#: stores); bigger ones overflow SQLite and NumPy deep inside a request.
MAX_JSON_INT = 2**63 - 1


def field_name(path: str) -> str:
    """A field path safe to print: any character that is not valid Unicode is escaped."""
    return path.encode("utf-8", "backslashreplace").decode("utf-8") or "body"


def check_json(value: Any, path: str = "") -> None:
    """Refuse what ``json.loads`` accepts but nothing downstream can use; InvalidInputError
    naming the field.

    Python's JSON parser accepts lone UTF-16 surrogates (``"\\ud800"``), integers of any size
    and ``NaN``/``Infinity``. Such a value fails deep inside a request (the tokenizer raises
    TypeError, SQLite UnicodeEncodeError, an OFFSET OverflowError) as a 500, and, inside a
    shared embedding pass, could fail other users' queries. Every protocol checks its parsed
    body here, at the edge, so domain code only ever sees valid text and bounded numbers.
    """
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise InvalidInputError(
                f"{field_name(path)} is not valid Unicode text: it holds a lone surrogate "
                f"{value[exc.start]!a} at character {exc.start}"
            ) from None
    elif isinstance(value, bool):
        return
    elif isinstance(value, int):
        if abs(value) > MAX_JSON_INT:
            raise InvalidInputError(
                f"{field_name(path)} is out of range: integers must lie within "
                f"-{MAX_JSON_INT}..{MAX_JSON_INT}"
            )
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidInputError(f"{field_name(path)} must be a finite number")
    elif isinstance(value, dict):
        for key, item in value.items():
            where = f"{path}.{key}" if path else str(key)
            check_json(key, where)
            check_json(item, where)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            check_json(item, f"{path}[{i}]")


def parse_json(raw: bytes | str, what: str = "the body", invalid: str | None = None) -> Any:
    """``raw`` parsed and checked (``check_json``); InvalidInputError for anything refused
    (``invalid``, when given, is the message for text that is not JSON at all).

    Besides syntax errors, ``json.loads`` raises ValueError for an integer of more than 4,300
    digits and RecursionError for deep nesting: both are bad input, not server errors.
    """
    try:
        value = json.loads(raw)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError, UnicodeDecodeError included
        detail = "nested too deeply" if isinstance(exc, RecursionError) else str(exc)
        raise InvalidInputError(invalid or f"{what} is not valid JSON: {detail}") from None
    check_json(value, "" if what == "the body" else what)
    return value


async def read_json(request: Request) -> dict[str, Any]:
    """The body as a JSON object (empty body: ``{}``); InvalidInputError when it is not one,
    or when it carries text that is not valid Unicode or an unbounded number (``check_json``)."""
    raw = await request.body()
    if not raw.strip():
        return {}
    content_type = request.headers.get("content-type")
    if content_type is not None and "json" not in content_type.lower():
        # A web page can post text/plain or a form cross-site without a CORS preflight (CSRF);
        # a JSON content type needs one, which CORS then allows only for configured origins.
        raise UnsupportedFormatError(
            f"send the body as JSON (Content-Type: application/json), not "
            f"{content_type.split(';')[0].strip()[:60]!a}"
        )
    body = parse_json(raw)
    if not isinstance(body, dict):
        raise InvalidInputError("the body must be a JSON object")
    return body


async def checked_json_body(request: Request) -> None:
    """FastAPI dependency for the native routes: the same edge check as ``read_json``.

    FastAPI has already parsed a JSON body by the time dependencies run (Starlette keeps the
    parsed value, so nothing is parsed twice); a body FastAPI could not parse is left to its
    own 400.
    """
    if "json" not in request.headers.get("content-type", "").lower():
        return
    raw = await request.body()
    if not raw.strip():
        return
    try:
        body = await request.json()
    except (ValueError, RecursionError):
        return
    check_json(body)


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
    """Check and write an upload to a staging folder, enforcing limits while streaming; the
    folder is removed if the upload is refused."""
    runner = state.ingest
    named = [(f.filename or "upload", f.size or 0) for f in files]
    runner.check_upload(named)
    staged = runner.new_staging()
    names: list[str] = []
    limit = state.settings.max_file_bytes
    try:
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
                            f"{f.filename} is over the {state.settings.max_file_mb:g} MiB limit "
                            f"({limit} bytes, RAGLOOP_MAX_FILE_MB)"
                        )
                    out.write(chunk)
            names.append(name)
    except BaseException:  # a refused or broken upload leaves nothing staged
        runner.discard(staged)
        raise
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

    A known ``conversation_id`` of the caller's continues that conversation: its turns come
    from the query log and ``history`` is ignored (as in DocsGPT). No id, or one not seen
    before, starts a new conversation whose history is the given one; so does another client's
    id, under a new id (``Conversations.resume``).
    """
    if raw_id is None or raw_id == "" or raw_id == "None":
        return Conversations.new_id(), history
    if not isinstance(raw_id, str):
        raise InvalidInputError("conversation_id must be a string")
    cid = Conversations.check_id(raw_id)
    cid, stored = Conversations(state.querylog.engine).resume(cid, client, MAX_HISTORY_TURNS)
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
