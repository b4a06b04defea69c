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


#: Joins the parts of a chunk title: the document title, then the headings down to its section.
TITLE_SEPARATOR = " > "


def section_heading(chunk_title: str) -> str:
    """The heading of the section a chunk comes from ("" when its title has no section path)."""
    _, sep, rest = chunk_title.partition(TITLE_SEPARATOR)
    return rest.rsplit(TITLE_SEPARATOR, 1)[-1].strip() if sep else ""


def display_title(document_title: str | None, chunk_title: str) -> str:
    """A source's title as responses show it: the document's own title, then the chunk's section.

    A chunk title is the (possibly shortened) document title followed by its heading path;
    shown, the document keeps its full title and the path follows it. None (a document already
    deleted) shows the chunk title.
    """
    if not document_title or not chunk_title or chunk_title == document_title:
        return document_title or chunk_title
    _, sep, sections = chunk_title.partition(TITLE_SEPARATOR)
    return f"{document_title}{TITLE_SEPARATOR}{sections}" if sep else document_title


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

    @property
    def fusion(self) -> dict[str, Any] | None:
        """This version's stored fusion recipe (``info["fusion"]``), or None for a version
        made before recipes existed (the settings' default applies; see ``core.fusion``)."""
        value = self.info.get("fusion")
        return dict(value) if isinstance(value, dict) else None

    @property
    def miss_calibration(self) -> dict[str, Any] | None:
        """This version's stored miss-flag calibration (``info["miss"]``), or None before it
        was calibrated (see ``core.calibration``)."""
        value = self.info.get("miss")
        return dict(value) if isinstance(value, dict) else None


@dataclass(frozen=True)
class Hit:
    """A retrieved chunk and its scores, higher is better.

    ``score`` ranks the hits: the cosine in dense mode, BM25 in lexical mode, the fused score
    in hybrid mode. ``dense_score`` is the chunk's cosine with the question (computed from its
    stored vector when only the lexical side found it; None without a vector);
    ``lexical_score`` its BM25 score, None when the lexical side did not return it.
    """

    chunk: ChunkRecord
    score: float
    document_title: str
    source: str
    dense_score: float | None = None
    lexical_score: float | None = None
