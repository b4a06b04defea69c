"""Native query routes: answer, stream, feedback.

A query is logged with who asked (its API key id, or none for an anonymous caller); feedback is
accepted only on the caller's own queries. Anyone else's query id is answered exactly as an
unknown one (404), so ids cannot be probed.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from ragloop.core.answering import QueryOutcome, QueryRequest
from ragloop.core.errors import InvalidInputError, NotFoundError
from ragloop.core.generators.base import Context
from ragloop.core.generators.registry import default_registry
from ragloop.core.retriever import best_chunk
from ragloop.core.storage.querylog import QueryRecord
from ragloop.service.auth import require_client
from ragloop.service.common import checked_json_body, record_metrics, sse_event
from ragloop.service.schemas import (
    FeedbackIn,
    FeedbackOut,
    QueryIn,
    QueryOut,
    SourceOut,
    native_errors,
)
from ragloop.service.state import AppState, get_state

# Auth first, then the same edge check of the body as every other protocol (text that is not
# valid Unicode, unbounded numbers: 400 naming the field).
router = APIRouter(
    tags=["query"], dependencies=[Depends(require_client), Depends(checked_json_body)]
)
ERRORS = native_errors(400, 401, 404, 413, 422, 429, 503)
#: OpenAPI links: a query's id is what its feedback names (stateful API clients follow them).
QUERY_LINKS: dict[int | str, dict[str, Any]] = {
    200: {
        "links": {
            "GiveFeedback": {
                "operationId": "feedback_v1_feedback_post",
                "requestBody": {"query_id": "$response.body#/query_id", "rating": "down"},
                "description": "Rate this answer: its query_id is the feedback's.",
            }
        }
    }
}


def source_out(c: Context) -> SourceOut:
    """A context as the API shows it."""
    return SourceOut(
        n=c.n,
        chunk_id=c.chunk_id,
        document_id=c.document_id,
        title=c.title,
        source=c.source,
        text=c.text,
        score=round(c.score, 6),
    )


def outcome_out(o: QueryOutcome) -> QueryOut:
    """An outcome as the API shows it."""
    return QueryOut(
        query_id=o.query_id,
        answer=o.answer,
        sources=[source_out(c) for c in o.sources],
        citations=o.citations,
        model_version=o.model_version,
        generator=o.generator,
        generator_error=o.generator_error,
        miss=o.miss,
        miss_reasons=o.miss_reasons,
        timings_ms=o.timings_ms,
    )


def available_generators(state: AppState, known: list[str]) -> list[str]:
    """Which of the ``known`` generator names this server can answer with."""
    names = []
    for name in known:
        try:
            state.answerer.generators(name)
        except InvalidInputError:
            continue
        names.append(name)
    return names


def check_generator(state: AppState, name: str | None) -> None:
    """Refuse a generator this server lacks: 400 listing the available ones, and for a known
    provider that is not set up, what it needs."""
    if name is None:
        return
    try:
        state.answerer.generators(name)
    except InvalidInputError as exc:
        known = ["auto", *default_registry().names()]
        available = ", ".join(available_generators(state, known)) or "none"
        why = f" ({exc.message})" if name.lower() in known else ""
        raise InvalidInputError(
            f"generator {name!r} is not available on this server; available: {available}{why}"
        ) from None


def build_request(state: AppState, body: QueryIn, request: Request) -> QueryRequest:
    """Validate a body against the configured limits and generators."""
    question, k = state.answerer.validate(body.question, body.k)
    check_generator(state, body.generator)
    return QueryRequest(
        question=question,
        k=k,
        where={str(k): v for k, v in body.filters.items()} if body.filters else None,
        generator=body.generator,
        client=getattr(request.state, "client", None),
    )


@router.post("/v1/query", response_model=QueryOut, responses=ERRORS | QUERY_LINKS)
async def query(body: QueryIn, request: Request) -> QueryOut:
    """Answer a question from the documents, citing numbered sources."""
    state = get_state(request)
    req = build_request(state, body, request)
    outcome = await run_in_threadpool(state.answerer.answer, req)
    record_metrics(state, outcome)
    return outcome_out(outcome)


@router.post(
    "/v1/query/stream",
    responses={200: {"content": {"text/event-stream": {}}}, **ERRORS},
    response_class=StreamingResponse,
)
async def query_stream(body: QueryIn, request: Request) -> StreamingResponse:
    """Server-sent events: ``sources`` first, then ``delta`` answer texts, then ``end``."""
    state = get_state(request)
    req = build_request(state, body, request)  # an unknown generator is a 4xx, not a broken stream

    def events() -> Iterator[str]:
        try:
            for ev in state.answerer.stream(req):
                if ev["event"] == "sources":
                    yield sse_event(
                        "sources",
                        {
                            "sources": [source_out(c).model_dump() for c in ev["sources"]],
                            "model_version": ev["model_version"],
                        },
                    )
                elif ev["event"] == "delta":
                    yield sse_event("delta", {"text": ev["text"]})
                else:
                    o: QueryOutcome = ev["outcome"]
                    record_metrics(state, o)
                    end = outcome_out(o).model_dump(exclude={"sources", "answer"})
                    yield sse_event("end", end)
        except Exception as exc:  # headers are sent: report in-band
            yield sse_event("error", {"error": {"code": "internal_error", "message": str(exc)}})

    return StreamingResponse(events(), media_type="text/event-stream")


@router.post("/v1/feedback", response_model=FeedbackOut, responses=ERRORS)
async def feedback(body: FeedbackIn, request: Request) -> FeedbackOut:
    """Rate one of your own answers; ``down`` makes the query a miss, named chunks become
    labelled pairs. Another caller's query is a 404, as an unknown one is."""
    state = get_state(request)
    client = getattr(request.state, "client", None)
    return await run_in_threadpool(apply_feedback, state, body, client)


def own_query(state: AppState, query_id: str, client: str | None) -> QueryRecord:
    """The query ``query_id`` if ``client`` asked it (None: an anonymous caller, who may rate
    only anonymous queries); NotFoundError, the same as for an unknown id, otherwise."""
    rec = state.querylog.get(query_id)
    if rec.client != client:
        raise NotFoundError(f"unknown query_id {query_id!r}")
    return rec


def apply_feedback(state: AppState, body: FeedbackIn, client: str | None) -> FeedbackOut:
    """Resolve named documents to their best chunk for the question, then store feedback."""
    rec = own_query(state, body.query_id, client)
    chunk_ids = list(body.relevant_chunk_ids or [])
    known = state.runtime.catalog.get_chunks(chunk_ids)
    unknown = [c for c in chunk_ids if c not in known]
    if unknown:
        raise InvalidInputError(f"unknown chunk ids: {', '.join(unknown[:5])}")
    doc_ids = list(body.relevant_document_ids or [])
    if doc_ids:
        index = state.runtime.active_index()
        docs = state.runtime.catalog.documents_by_ids(doc_ids)
        missing = [d for d in doc_ids if d not in docs]
        if missing:
            raise InvalidInputError(f"unknown document ids: {', '.join(missing[:5])}")
        chunks_of = state.runtime.catalog.chunk_ids_of(doc_ids)
        for doc_id in doc_ids:
            best = best_chunk(
                state.runtime.store,
                index.collection,
                chunks_of[doc_id],
                lambda: index.query_vector(rec.question),
            )
            if best is not None:
                chunk_ids.append(best)
    chunk_ids = list(dict.fromkeys(chunk_ids))
    updated = state.querylog.add_feedback(body.query_id, body.rating, chunk_ids, body.comment)
    if body.rating == "down":
        state.metrics.misses.labels("negative_feedback").inc()
    return FeedbackOut(
        query_id=updated.id,
        rating=body.rating,
        miss=updated.miss,
        miss_reasons=updated.miss_reasons,
        labelled_chunk_ids=chunk_ids,
    )
