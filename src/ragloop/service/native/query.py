"""Native query routes: answer, stream, feedback."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from ragloop.core.answering import QueryOutcome, QueryRequest
from ragloop.core.errors import InvalidInputError
from ragloop.core.generators.base import Context
from ragloop.core.retriever import best_chunk
from ragloop.service.auth import require_client
from ragloop.service.common import checked_json_body, record_metrics, sse_event
from ragloop.service.schemas import ErrorOut, FeedbackIn, FeedbackOut, QueryIn, QueryOut, SourceOut
from ragloop.service.state import AppState, get_state

# Auth first, then the same edge check of the body as every other protocol (text that is not
# valid Unicode, unbounded numbers: 400 naming the field).
router = APIRouter(
    tags=["query"], dependencies=[Depends(require_client), Depends(checked_json_body)]
)
ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorOut} for code in (400, 401, 404, 422, 503)
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


def build_request(state: AppState, body: QueryIn, request: Request) -> QueryRequest:
    """Validate a body against the configured limits."""
    question, k = state.answerer.validate(body.question, body.k)
    return QueryRequest(
        question=question,
        k=k,
        where={str(k): v for k, v in body.filters.items()} if body.filters else None,
        generator=body.generator,
        client=getattr(request.state, "client", None),
    )


@router.post("/v1/query", response_model=QueryOut, responses=ERRORS)
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
    req = build_request(state, body, request)
    state.answerer.generators(req.generator)  # an unknown generator is a 4xx, not a broken stream

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
    """Rate an answer; ``down`` makes the query a miss, named chunks become labelled pairs."""
    state = get_state(request)
    return await run_in_threadpool(apply_feedback, state, body)


def apply_feedback(state: AppState, body: FeedbackIn) -> FeedbackOut:
    """Resolve named documents to their best chunk for the question, then store feedback."""
    rec = state.querylog.get(body.query_id)
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
