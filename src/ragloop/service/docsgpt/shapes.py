"""What the DocsGPT-compatible routes share: lenient bodies, keys, questions, source labels.

DocsGPT reads request bodies leniently (unknown fields are ignored, numbers may arrive as
strings) and answers errors in its own shapes, not ours: ``{"error": "..."}`` on the answer
routes, ``{"success": false, "message": "..."}`` on the user routes, and an SSE ``error``
event on ``/stream``. The helpers here raise ``ragloop.core.errors`` exceptions; the routes
turn them into those shapes.
"""

from __future__ import annotations

import json
from pathlib import PurePosixPath
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse

from ragloop.core.answering import QueryRequest
from ragloop.core.errors import InvalidInputError, RagloopError
from ragloop.core.generators.base import Context, Turn
from ragloop.core.generators.prompts import MAX_HISTORY_TURNS
from ragloop.service.auth import check_client, presented_key
from ragloop.service.conversations import Conversations
from ragloop.service.state import AppState

#: DocsGPT cuts source texts to this many characters in ``source`` events.
SOURCE_PREVIEW_CHARS = 100


async def read_json(request: Request) -> dict[str, Any]:
    """The body as a JSON object; InvalidInputError when it is not one."""
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


def int_field(body: dict[str, Any], name: str, default: int | None = None) -> int | None:
    """An integer field that may arrive as a number or a numeric string (as DocsGPT allows)."""
    value = body.get(name)
    if value is None or value == "":
        return default
    if isinstance(value, bool):
        raise InvalidInputError(f"{name} must be an integer")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            pass
    raise InvalidInputError(f"{name} must be an integer, got {str(value)[:40]!r}")


def chunks_to_k(state: AppState, body: dict[str, Any]) -> int:
    """DocsGPT's ``chunks`` as our k, clamped to 1..RAGLOOP_MAX_K (default RAGLOOP_DEFAULT_K)."""
    s = state.settings
    chunks = int_field(body, "chunks")
    return s.default_k if chunks is None else min(max(chunks, 1), s.max_k)


def question_of(body: dict[str, Any]) -> str:
    """The required ``question``; a 400 naming it when it is missing."""
    question = body.get("question")
    if question is None:
        raise InvalidInputError("Missing required fields: question")
    if not isinstance(question, str):
        raise InvalidInputError("question must be a string")
    return question


def parse_history(raw: object) -> list[Turn]:
    """DocsGPT's ``history``: a JSON-encoded string (or a list) of ``{prompt, response}``.

    Items without a response are skipped: the widget sends its current, unanswered question as
    the last item.
    """
    if raw is None or raw == "":
        return []
    items = raw
    if isinstance(raw, str):
        try:
            items = json.loads(raw)
        except json.JSONDecodeError:
            raise InvalidInputError(
                'history must be a JSON-encoded list of {"prompt", "response"} objects'
            ) from None
    if not isinstance(items, list):
        raise InvalidInputError('history must be a list of {"prompt", "response"} objects')
    turns = []
    for item in items:
        if not isinstance(item, dict):
            raise InvalidInputError('history items must be {"prompt", "response"} objects')
        prompt, response = item.get("prompt"), item.get("response")
        if isinstance(prompt, str) and isinstance(response, str) and prompt and response:
            turns.append(Turn(question=prompt, answer=response))
    return turns[-MAX_HISTORY_TURNS:]


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


def build_query(
    state: AppState,
    body: dict[str, Any],
    client: str | None,
    *,
    history: list[Turn] | None = None,
) -> QueryRequest:
    """A validated question from a DocsGPT body (blocking: reads the query log)."""
    question, k = state.answerer.validate(question_of(body), chunks_to_k(state, body))
    given = parse_history(body.get("history")) if history is None else history
    cid, turns = resolve_conversation(state, body.get("conversation_id"), given, client)
    return QueryRequest(question=question, k=k, history=turns, conversation_id=cid, client=client)


def filename_of(source: str) -> str:
    """The last path segment of a source (a path, a URL or ``corpus.jsonl#id``)."""
    return PurePosixPath(source.replace("\\", "/")).name or source


def source_item(c: Context, preview: bool = True) -> dict[str, Any]:
    """A source as DocsGPT labels it; ``preview`` cuts a long text the way its ``/stream`` does."""
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


def sse(data: dict[str, Any]) -> str:
    """One event in the framing DocsGPT's widget parses: a ``data:`` line only."""
    return f"data: {json.dumps(data, ensure_ascii=False)}\n\n"


def answer_error(exc: RagloopError) -> JSONResponse:
    """An error in the answer routes' shape: ``{"error": "..."}``."""
    return JSONResponse({"error": exc.message}, status_code=exc.http_status)


def user_error(exc: RagloopError) -> JSONResponse:
    """An error in the user routes' shape, readable as either of DocsGPT's two forms."""
    return JSONResponse(
        {"success": False, "message": exc.message, "error": exc.message},
        status_code=exc.http_status,
    )
