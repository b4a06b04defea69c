"""Request and response models of the native API (they document /openapi.json)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

GeneratorName = Literal["auto", "anthropic", "openai", "extractive"]


class QueryIn(BaseModel):
    """A question; ``filters`` are metadata equalities such as ``{"document_id": "..."}``."""

    model_config = ConfigDict(extra="forbid")

    question: str = Field(..., min_length=1, description="The question to answer.")
    k: int | None = Field(None, ge=1, le=100, description="How many chunks to retrieve.")
    filters: dict[Literal["document_id", "source"], str] | None = Field(
        None, description="Metadata equality filters: document_id and/or source."
    )
    generator: GeneratorName | None = Field(None, description="Override RAGLOOP_GENERATOR.")


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
