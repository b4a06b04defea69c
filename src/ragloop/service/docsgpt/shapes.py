"""What the DocsGPT-compatible routes share: lenient fields, questions, history, error shapes.

DocsGPT reads request bodies leniently (unknown fields are ignored, numbers may arrive as
strings) and answers errors in its own shapes, not ours: ``{"error": "..."}`` on the answer
routes, ``{"success": false, "message": "..."}`` on the user routes, and an SSE ``error``
event on ``/stream``. The helpers here raise ``ragloop.core.errors`` exceptions; the routes
turn them into those shapes.
"""

from __future__ import annotations

import contextlib
from typing import Any

from fastapi.responses import JSONResponse

from ragloop.core.answering import QueryRequest
from ragloop.core.errors import InvalidInputError, RagloopError
from ragloop.core.generators.base import Turn
from ragloop.core.generators.prompts import MAX_HISTORY_TURNS
from ragloop.service.common import MAX_JSON_INT, parse_json, resolve_conversation
from ragloop.service.state import AppState


def int_field(body: dict[str, Any], name: str, default: int | None = None) -> int | None:
    """An integer field that may arrive as a number or a numeric string (as DocsGPT allows)."""
    value = body.get(name)
    if value is None or value == "":
        return default
    if isinstance(value, bool):
        raise InvalidInputError(f"{name} must be an integer")
    number: int | None = None
    if isinstance(value, int):
        number = value
    elif isinstance(value, float) and value.is_integer():
        number = int(value)
    elif isinstance(value, str):
        text = value.strip()
        # A numeric string is bounded by its length before int() reads it (int() of a long
        # digit string is slow, and a huge number overflows the catalog's 64-bit columns).
        if len(text) <= 20:
            with contextlib.suppress(ValueError):
                number = int(text)
    if number is None:
        raise InvalidInputError(f"{name} must be an integer, got {str(value)[:40]!a}")
    if abs(number) > MAX_JSON_INT:
        raise InvalidInputError(f"{name} is out of range: at most {MAX_JSON_INT} in magnitude")
    return number


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
        # The inner JSON gets the same edge check as the body: its escapes can hold what the
        # body's could not (a lone surrogate, an unbounded number).
        items = parse_json(
            raw,
            "history",
            invalid='history must be a JSON-encoded list of {"prompt", "response"} objects',
        )
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


def answer_error(exc: RagloopError) -> JSONResponse:
    """An error in the answer routes' shape: ``{"error": "..."}``."""
    return JSONResponse({"error": exc.message}, status_code=exc.http_status)


def user_error(exc: RagloopError) -> JSONResponse:
    """An error in the user routes' shape, readable as either of DocsGPT's two forms."""
    return JSONResponse(
        {"success": False, "message": exc.message, "error": exc.message},
        status_code=exc.http_status,
    )
