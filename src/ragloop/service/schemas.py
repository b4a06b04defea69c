"""Request and response models of the native API, and the documented error responses of every
protocol (together they are /openapi.json)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class QueryIn(BaseModel):
    """A question; ``filters`` are metadata equalities such as ``{"document_id": "..."}``."""

    model_config = ConfigDict(extra="forbid")

    question: str = Field(..., min_length=1, description="The question to answer.")
    k: int | None = Field(None, ge=1, le=100, description="How many chunks to retrieve.")
    filters: dict[Literal["document_id", "source"], str] | None = Field(
        None, description="Metadata equality filters: document_id and/or source."
    )
    generator: str | None = Field(
        None,
        min_length=1,
        max_length=64,
        description="Override RAGLOOP_GENERATOR with another generator this server has: auto, "
        "extractive (always), anthropic or openai when configured, or a plugin. Any other "
        "name is a 400 that lists the available ones.",
    )


class SourceOut(BaseModel):
    """A numbered source; the answer cites it as [n]."""

    n: int
    chunk_id: str
    document_id: str
    title: str
    source: str
    text: str
    score: float


class QueryOut(BaseModel):
    """An answer with its sources and the miss verdict."""

    query_id: str
    answer: str
    sources: list[SourceOut]
    citations: list[int] = Field(description="Source numbers the answer cites, in order.")
    model_version: str
    generator: str
    generator_error: str | None = None
    miss: bool
    miss_reasons: list[str]
    timings_ms: dict[str, float]


class FeedbackIn(BaseModel):
    """A rating of an answer, optionally naming the chunks or documents that were right."""

    model_config = ConfigDict(extra="forbid")

    query_id: str = Field(..., min_length=1)
    rating: Literal["up", "down"]
    relevant_chunk_ids: list[str] | None = Field(None, max_length=100)
    relevant_document_ids: list[str] | None = Field(
        None,
        max_length=100,
        description="Each stands for its chunk that best matches the question.",
    )
    comment: str | None = Field(None, max_length=5000)


class FeedbackOut(BaseModel):
    """What the feedback did."""

    query_id: str
    rating: str
    miss: bool
    miss_reasons: list[str]
    labelled_chunk_ids: list[str]


class JobOut(BaseModel):
    """A background job's state."""

    id: str
    kind: str
    state: str
    done: bool
    progress: float
    message: str
    created_at: float
    started_at: float | None
    finished_at: float | None
    params: dict[str, Any]
    result: dict[str, Any]
    errors: list[dict[str, Any]]


class DocumentOut(BaseModel):
    """A document in the catalog."""

    id: str
    title: str
    source: str
    format: str
    n_chunks: int
    size_bytes: int
    created_at: float
    updated_at: float


class DocumentList(BaseModel):
    """A page of documents."""

    total: int
    limit: int
    offset: int
    documents: list[DocumentOut]


class DeletedOut(BaseModel):
    """Result of a delete."""

    id: str
    deleted: bool
    chunks_deleted: int


class QueryLogOut(BaseModel):
    """One logged query."""

    id: str
    created_at: float
    question: str
    k: int
    model_version: str
    generator: str
    generator_error: str | None
    answer: str
    retrieved: list[tuple[str, float]]
    top_score: float | None
    miss: bool
    miss_reasons: list[str]
    latency_ms: float
    conversation_id: str | None
    client: str | None = Field(
        None, description="The API key id that asked; null for an anonymous caller."
    )


class QueryPage(BaseModel):
    """A page of logged queries."""

    total: int
    limit: int
    offset: int
    items: list[QueryLogOut]


class ErrorOut(BaseModel):
    """Every error response has this shape."""

    error: dict[str, str] = Field(description='{"code": ..., "message": ...}')


class ModelVersionOut(BaseModel):
    """A model version."""

    version: str
    status: str
    active: bool
    parent: str | None
    kind: str
    collection: str
    created_at: float
    gate: dict[str, Any] | None = None


#: Headers of a 429 answer.
RETRY_AFTER = {
    "Retry-After": {
        "description": "Seconds until the request would be admitted.",
        "schema": {"type": "integer"},
    }
}
_RATE_LIMITED = "Over a rate limit (RAGLOOP_*RATE_LIMIT*, RAGLOOP_EMBED_BYTES_PER_MINUTE)."


def native_errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """Documented native error responses (``{"error": {"code", "message"}}``)."""
    out: dict[int | str, dict[str, Any]] = {code: {"model": ErrorOut} for code in codes}
    if 429 in codes:
        out[429] = {"model": ErrorOut, "description": _RATE_LIMITED, "headers": RETRY_AFTER}
    return out


def shaped_errors(
    codes: tuple[int, ...], schema: dict[str, Any], media_type: str = "application/json"
) -> dict[int | str, dict[str, Any]]:
    """Documented error responses of a protocol with its own error shape (DocsGPT, OpenAI)."""
    out: dict[int | str, dict[str, Any]] = {}
    for code in codes:
        doc: dict[str, Any] = {
            "description": _RATE_LIMITED if code == 429 else "Error",
            "content": {media_type: {"schema": schema}},
        }
        if code == 429:
            doc["headers"] = RETRY_AFTER
        out[code] = doc
    return out


#: Every client route may answer these: the body checks, auth, limits, an unready service.
CLIENT_ERROR_CODES = (400, 401, 403, 404, 409, 413, 415, 422, 429, 503)
#: The native routes' rate-limit answer (other native errors are documented per route).
RATE_LIMITED = native_errors(429)
#: DocsGPT's error shapes: ``{"error": "..."}`` and ``{"success": false, "message": "..."}``.
DOCSGPT_ERRORS = shaped_errors(
    CLIENT_ERROR_CODES,
    {
        "type": "object",
        "properties": {
            "error": {"type": "string"},
            "success": {"type": "boolean"},
            "message": {"type": "string"},
        },
    },
)
#: DocsGPT's ``/stream`` reports errors as one SSE ``error`` event.
DOCSGPT_STREAM_ERRORS = shaped_errors(
    CLIENT_ERROR_CODES, {"type": "string"}, media_type="text/event-stream"
)
#: OpenAI's error object.
OPENAI_ERRORS = shaped_errors(
    CLIENT_ERROR_CODES,
    {
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": {
                "type": "object",
                "properties": {
                    "message": {"type": "string"},
                    "type": {"type": "string"},
                    "param": {"type": ["string", "null"]},
                    "code": {"type": ["string", "null"]},
                },
            }
        },
    },
)
