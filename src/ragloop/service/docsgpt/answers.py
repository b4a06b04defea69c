"""DocsGPT-compatible answer routes: ``/stream``, ``/api/answer``, ``/api/search``,
``/api/feedback``.

DocsGPT's chat widget, search bar and API clients talk to these unchanged. Answers go through
the same ``Answerer`` as the native API (so every question is logged, with its conversation);
only the shapes are DocsGPT's. See ``docs/integrations.md``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.concurrency import run_in_threadpool

from ragloop.core.answering import QueryOutcome, QueryRequest
from ragloop.core.errors import InvalidInputError, NotFoundError, RagloopError
from ragloop.service.common import (
    authenticate,
    event_stream,
    read_json,
    record_metrics,
    source_item,
    sse_data,
    stream_error_message,
)
from ragloop.service.conversations import Conversations
from ragloop.service.docsgpt.shapes import (
    answer_error,
    build_query,
    chunks_to_k,
    int_field,
    question_of,
    user_error,
)
from ragloop.service.schemas import DOCSGPT_STREAM_ERRORS
from ragloop.service.state import AppState, get_state

router = APIRouter(tags=["docsgpt"])

_QUESTION_BODY = {
    "type": "object",
    "required": ["question"],
    "properties": {
        "question": {"type": "string"},
        "api_key": {"type": "string"},
        "chunks": {"type": "integer"},
        "history": {"type": "string", "description": 'JSON: [{"prompt", "response"}]'},
        "conversation_id": {"type": "string"},
    },
}
_FEEDBACK_BODY = {
    "type": "object",
    "required": ["feedback", "conversation_id", "question_index"],
    "properties": {
        "feedback": {"type": ["string", "null"], "enum": ["LIKE", "DISLIKE", None]},
        "conversation_id": {"type": "string"},
        "question_index": {"type": "integer"},
        "api_key": {"type": "string"},
    },
}


def _body_doc(schema: dict[str, Any]) -> dict[str, Any]:
    return {"requestBody": {"content": {"application/json": {"schema": schema}}}}


async def _prepare(request: Request) -> tuple[AppState, QueryRequest]:
    state = get_state(request)
    body = await read_json(request)
    client = authenticate(state, request, body.get("api_key"))
    return state, await run_in_threadpool(build_query, state, body, client)


def _events(state: AppState, req: QueryRequest) -> Iterator[str]:
    """The answer as DocsGPT events: ``source`` (always), ``answer`` deltas, ``id``, ``end``."""
    try:
        for ev in state.answerer.stream(req):
            if ev["event"] == "sources":
                # Sent even when empty: it tells the client retrieval ran and found nothing.
                yield sse_data(
                    {"type": "source", "source": [source_item(c) for c in ev["sources"]]}
                )
            elif ev["event"] == "delta":
                yield sse_data({"type": "answer", "answer": ev["text"]})
            else:
                record_metrics(state, ev["outcome"])
                yield sse_data({"type": "id", "id": req.conversation_id})
                yield sse_data({"type": "end"})
    except Exception as exc:  # headers are sent: report in-band, as DocsGPT does
        message = stream_error_message(exc, "DocsGPT /stream")
        yield sse_data({"type": "error", "error": message})


@router.post(
    "/stream",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}}, **DOCSGPT_STREAM_ERRORS},
    openapi_extra=_body_doc(_QUESTION_BODY),
)
async def stream(request: Request) -> StreamingResponse:
    """DocsGPT's streamed answer (server-sent ``data:`` events only, no ``id:``/``event:``)."""
    try:
        state, req = await _prepare(request)
    except RagloopError as exc:
        return event_stream(
            iter([sse_data({"type": "error", "error": exc.message})]), exc.http_status
        )
    return event_stream(_events(state, req))


def answer_body(req: QueryRequest, o: QueryOutcome) -> dict[str, Any]:
    """DocsGPT's ``/api/answer`` result, plus a ``ragloop`` block for native follow-ups."""
    return {
        "conversation_id": req.conversation_id,
        "answer": o.answer,
        "sources": [source_item(c) for c in o.sources],
        "tool_calls": [],
        "thought": "",
        "ragloop": {
            "query_id": o.query_id,
            "model_version": o.model_version,
            "generator": o.generator,
            "miss": o.miss,
            "miss_reasons": o.miss_reasons,
        },
    }


@router.post("/api/answer", openapi_extra=_body_doc(_QUESTION_BODY))
async def answer(request: Request) -> JSONResponse:
    """DocsGPT's answer in one response: ``{conversation_id, answer, sources, ...}``."""
    try:
        state, req = await _prepare(request)
        outcome = await run_in_threadpool(state.answerer.answer, req)
    except RagloopError as exc:
        return answer_error(exc)
    record_metrics(state, outcome)
    return JSONResponse(answer_body(req, outcome))


def _search(state: AppState, question: str, k: int) -> list[dict[str, Any]]:
    _, hits = state.answerer.retrieve(QueryRequest(question=question, k=k))
    out: list[dict[str, Any]] = []
    seen: set[str] = set()
    for h in hits:
        key = h.chunk.text[:200]  # DocsGPT drops repeats by their first 200 characters
        if key in seen:
            continue
        seen.add(key)
        out.append(
            {
                "text": h.chunk.text,
                "title": h.document_title,
                "source": h.source,
                "chunk_id": h.chunk.id,
                "document_id": h.chunk.document_id,
                "score": round(h.score, 6),
            }
        )
    return out


@router.post("/api/search", openapi_extra=_body_doc(_QUESTION_BODY))
async def search(request: Request) -> Response:
    """Retrieval only: ``[{text, title, source}]`` (plus ``chunk_id``, ``document_id``, ``score``).

    Searches are not answers, so they are not logged as queries.
    """
    try:
        state = get_state(request)
        body = await read_json(request)
        authenticate(state, request, body.get("api_key"))
        question, k = state.answerer.validate(question_of(body), chunks_to_k(state, body))
        results = await run_in_threadpool(_search, state, question, k)
    except RagloopError as exc:
        return answer_error(exc)
    return JSONResponse(results)


def _feedback(state: AppState, body: dict[str, Any], client: str | None) -> None:
    missing = [f for f in ("feedback", "conversation_id", "question_index") if f not in body]
    if missing:
        raise InvalidInputError(f"Missing required fields: {', '.join(missing)}")
    value = body["feedback"]
    rating = value.strip().upper() if isinstance(value, str) else value
    if rating not in ("LIKE", "DISLIKE", None):
        raise InvalidInputError('feedback must be "LIKE", "DISLIKE" or null')
    cid = body["conversation_id"]
    if not isinstance(cid, str):
        raise InvalidInputError("conversation_id must be a string")
    index = int_field(body, "question_index")
    if index is None:
        raise InvalidInputError("question_index must be an integer")
    cid = Conversations.check_id(cid)
    query_id = Conversations(state.querylog.engine).query_id_at(cid, index, client)
    rec = state.querylog.get(query_id)
    if rec.client != client:
        # Only your own answers: an anonymous caller may rate only anonymous queries. Answered
        # as a question that does not exist, so conversations cannot be probed.
        raise NotFoundError(
            f"conversation {cid!r} has no question number {index} (question_index counts from 0)"
        )
    disliked = "negative_feedback" in rec.miss_reasons
    if rating == "DISLIKE":
        if not disliked:  # a repeated click is the same rating, not a second signal
            state.querylog.add_feedback(query_id, "down", comment="docsgpt feedback")
            state.metrics.misses.labels("negative_feedback").inc()
        return
    # DocsGPT keeps one rating per answer: a like, or null, replaces an earlier dislike.
    if disliked:
        state.querylog.clear_negative_feedback(query_id)
    if rating == "LIKE":
        state.querylog.add_feedback(query_id, "up", comment="docsgpt feedback")


@router.post("/api/feedback", openapi_extra=_body_doc(_FEEDBACK_BODY))
async def feedback(request: Request) -> JSONResponse:
    """LIKE / DISLIKE / null for question ``question_index`` of one of your conversations.

    DISLIKE makes that query a miss (``negative_feedback``), the learning loop's signal. A
    question someone else asked is a 404, as a missing one is.
    """
    try:
        state = get_state(request)
        body = await read_json(request)
        client = authenticate(state, request, body.get("api_key"))
        await run_in_threadpool(_feedback, state, body, client)
    except RagloopError as exc:
        return user_error(exc)
    return JSONResponse({"success": True})
