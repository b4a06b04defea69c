"""Plain records passed between the layers (no behaviour, no I/O)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class ChunkRecord:
    """One chunk of a document as the catalog stores it."""

    id: str
    document_id: str
    seq: int
    text: str
    title: str
    start_char: int
    end_char: int
    n_tokens: int

    @property
    def embedding_input(self) -> str:
        """The exact text the embedder sees: the title line, then the chunk text."""
        return embedding_input(self.title, self.text)


def embedding_input(title: str, text: str) -> str:
    """Join a title and chunk text the way every embedding of a chunk is made.

    The title gives a chunk cut from the middle of a document its context (as BEIR/MTEB encode
    ``title + text``); keeping this in one function means ingest, re-embedding and evaluation
    always agree on the input.
    """
    return f"{title}\n{text}" if title else text


@dataclass(frozen=True)
class DocumentRecord:
    """One document's catalog row."""

    id: str
    path: str
    source: str
    title: str
    format: str
    content_hash: str
    size_bytes: int
    n_chunks: int
    meta: dict[str, Any] = field(default_factory=dict)
    created_at: float = 0.0
    updated_at: float = 0.0


@dataclass(frozen=True)
class ModelVersion:
    """A model version: which weights, which collection holds its vectors, and its state."""

    version: str
    model_ref: str
    parent: str | None
    dimension: int
    max_seq_length: int
    collection: str
    status: str
    created_at: float
    info: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Hit:
    """A retrieved chunk with its similarity score (cosine, higher is better)."""

    chunk: ChunkRecord
    score: float
    document_title: str
    source: str
