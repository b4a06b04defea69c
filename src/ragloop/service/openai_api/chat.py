"""OpenAI-compatible chat routes: ``/v1/chat/completions`` and ``/v1/models``.

The last user message is the question and earlier user/assistant pairs are its history; the
answer comes from the same ``Answerer`` as every other route, so it is logged and can become a
miss. Sources travel in DocsGPT's extension: a top-level ``docsgpt`` block on the completion,
and an empty-delta chunk carrying ``"docsgpt": {"type": "source", ...}`` when streaming.
Authentication is ``Authorization: Bearer <ragloop API key>``.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from ragloop.core.answering import QueryOutcome, QueryRequest
from ragloop.core.errors import RagloopError
from ragloop.service.auth import check_client, presented_key
from ragloop.service.common import (
    event_stream,
    record_metrics,
    resolve_conversation,
    source_item,
    sse_data,
    stream_error_message,
)
from ragloop.service.openai_api.shapes import (
    CHAT_MODEL,
    ChatBody,
    error_response,
    parse_body,
    split_messages,
    usage,
)
from ragloop.service.state import AppState, get_state

router = APIRouter(tags=["openai"])


def _chat_request(state: AppState, body: ChatBody, client: str | None) -> QueryRequest:
    question, history = split_messages(body.messages)
    question, k = state.answerer.validate(question, None)
    cid, turns = resolve_conversation(state, body.conversation, history, client)
    return QueryRequest(question=question, k=k, history=turns, conversation_id=cid, client=client)


def count_usage(state: AppState, req: QueryRequest, o: QueryOutcome) -> dict[str, int]:
    """Approximate token counts: the embedding model's tokenizer over what the generator saw
    (question, history, retrieved chunks) and over the answer. An LLM's own tokenizer differs
    by some percent; the extractive generator has no tokens of its own."""
    tokenizer = state.runtime.active_index().embedder
    seen = [req.question, *(f"{t.question}\n{t.answer}" for t in req.history)]
    counts = tokenizer.count_tokens([*seen, *(c.text for c in o.sources), o.answer])
    return usage(sum(counts[:-1]), counts[-1])


def _extension(req: QueryRequest, o: QueryOutcome) -> dict[str, Any]:
    return {
        "query_id": o.query_id,
        "conversation_id": req.conversation_id,
        "model_version": o.model_version,
        "generator": o.generator,
        "miss": o.miss,
        "miss_reasons": o.miss_reasons,
    }


def _completion(state: AppState, req: QueryRequest) -> dict[str, Any]:
    o = state.answerer.answer(req)
    record_metrics(state, o)
    return {
        "id": f"chatcmpl-{o.query_id}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": CHAT_MODEL,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": o.answer},
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": count_usage(state, req, o),
        "docsgpt": {
            "conversation_id": req.conversation_id,
            "sources": [source_item(c) for c in o.sources],
            "tool_calls": [],
        },
        "ragloop": _extension(req, o),
    }


class _Chunks:
    """Builds ``chat.completion.chunk`` events that share one id."""

    def __init__(self) -> None:
        self.id = f"chatcmpl-{uuid.uuid4().hex}"
        self.created = int(time.time())

    def event(self, delta: dict[str, Any], finish: str | None = None, **extra: Any) -> str:
        chunk = {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": CHAT_MODEL,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
        }
        return sse_data(chunk | extra)

    def usage(self, counts: dict[str, int]) -> str:
        chunk = {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": CHAT_MODEL,
            "choices": [],
            "usage": counts,
        }
        return sse_data(chunk)


def _stream(state: AppState, req: QueryRequest, include_usage: bool) -> Iterator[str]:
    chunks = _Chunks()
    try:
        yield chunks.event({"role": "assistant", "content": ""})
        for ev in state.answerer.stream(req):
            if ev["event"] == "sources":
                sources = [source_item(c) for c in ev["sources"]]
                yield chunks.event({}, docsgpt={"type": "source", "sources": sources})
            elif ev["event"] == "delta":
                yield chunks.event({"content": ev["text"]})
            else:
                o: QueryOutcome = ev["outcome"]
                record_metrics(state, o)
                conversation = {"type": "id", "conversation_id": req.conversation_id}
                yield chunks.event({}, docsgpt=conversation)
                yield chunks.event({}, "stop", ragloop=_extension(req, o))
                if include_usage:
                    yield chunks.usage(count_usage(state, req, o))
    except Exception as exc:  # headers are sent: report in-band, as OpenAI's API does
        message = stream_error_message(exc, "/v1/chat/completions stream")
        yield sse_data({"error": {"message": message, "type": "server_error", "code": None}})
    yield "data: [DONE]\n\n"


@router.post("/v1/chat/completions", response_model=None)
async def chat_completions(request: Request) -> Response:
    """An answer as a ``chat.completion``, or ``chat.completion.chunk`` events when ``stream``."""
    try:
        state = get_state(request)
        client = check_client(state, presented_key(request))
        body = await parse_body(request, ChatBody)
        req = await run_in_threadpool(_chat_request, state, body, client)
        if body.stream:
            return event_stream(_stream(state, req, body.include_usage))
        return JSONResponse(await run_in_threadpool(_completion, state, req))
    except RagloopError as exc:
        return error_response(exc)


@router.get("/v1/models")
async def models(request: Request) -> JSONResponse:
    """``ragloop`` (the answering model) and the active embedding model version."""
    try:
        state = get_state(request)
        check_client(state, presented_key(request))
        index = await run_in_threadpool(state.runtime.active_index)
    except RagloopError as exc:
        return error_response(exc)
    v = index.version
    created = int(v.created_at)
    return JSONResponse(
        {
            "object": "list",
            "data": [
                {
                    "id": CHAT_MODEL,
                    "object": "model",
                    "created": created,
                    "owned_by": "ragloop",
                    "name": "ragloop",
                    "description": "Answers from your documents with cited sources "
                    f"(retrieval with embedding model {v.version}).",
                },
                {
                    "id": v.version,
                    "object": "model",
                    "created": created,
                    "owned_by": "ragloop",
                    "name": v.model_ref,
                    "description": f"The active embedding model ({v.dimension} dimensions); "
                    "use it with /v1/embeddings.",
                },
            ],
        }
    )
