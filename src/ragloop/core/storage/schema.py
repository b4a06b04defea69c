"""Catalog tables (SQLAlchemy Core), the single source of truth for documents and chunks.

Vectors live in Chroma, one collection per model version; every chunk's text lives here, so any
model can re-embed the whole corpus. ``SCHEMA_VERSION`` is stored in ``meta`` and checked on
open, so an older ragloop never writes to a newer catalog.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    inspect,
    text,
)
from sqlalchemy.engine import Connection

# 3: the lexical index (FTS5 table, its keys and triggers on ``chunks``), raw SQLite DDL made
# and back-filled by ``core.storage.lexical.install_sqlite_fts`` when the catalog is opened.
# 4: ``queries.raw_question`` (a follow-up as typed; ``question`` is its stand-alone form),
# added to older catalogs by ``ADDED_COLUMNS`` when the catalog is opened.
SCHEMA_VERSION = 4

metadata = MetaData()

meta = Table(
    "meta",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)

documents = Table(
    "documents",
    metadata,
    Column("id", String(255), primary_key=True),
    # Absolute path of the file it came from (several documents share one for a BEIR corpus);
    # prune and re-ingest find a file's documents through it.
    Column("path", Text, nullable=False, index=True),
    Column("source", Text, nullable=False),
    Column("title", Text, nullable=False, default=""),
    Column("format", String(16), nullable=False),
    Column("content_hash", String(64), nullable=False),
    Column("size_bytes", Integer, nullable=False, default=0),
    Column("n_chunks", Integer, nullable=False, default=0),
    Column("meta", JSON, nullable=False, default=dict),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
)

chunks = Table(
    "chunks",
    metadata,
    Column("id", String(64), primary_key=True),
    Column(
        "document_id",
        String(255),
        ForeignKey("documents.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("seq", Integer, nullable=False),
    Column("text", Text, nullable=False),
    Column("title", Text, nullable=False, default=""),
    Column("start_char", Integer, nullable=False),
    Column("end_char", Integer, nullable=False),
    Column("n_tokens", Integer, nullable=False),
    Index("ix_chunks_document_seq", "document_id", "seq"),
)

model_versions = Table(
    "model_versions",
    metadata,
    Column("version", String(64), primary_key=True),
    # What to load: a registered embedder name or a model directory.
    Column("model_ref", Text, nullable=False),
    Column("parent", String(64), nullable=True),
    Column("dimension", Integer, nullable=False),
    Column("max_seq_length", Integer, nullable=False),
    # Query-only versions share their parent's collection (document vectors are unchanged).
    Column("collection", String(128), nullable=False),
    # candidate | active | retired | rejected | failed
    Column("status", String(16), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("info", JSON, nullable=False, default=dict),
)

# The one row (id=1) that says which model version serves queries.
active_pointer = Table(
    "active_pointer",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("version", String(64), ForeignKey("model_versions.version"), nullable=False),
    Column("changed_at", Float, nullable=False),
)

# Outbox for vector writes: ids are journaled before Chroma is touched and cleared after the
# catalog commit, so a crash in between is repaired by deleting journaled ids the catalog lacks.
vector_journal = Table(
    "vector_journal",
    metadata,
    Column("collection", String(128), primary_key=True),
    Column("chunk_id", String(64), primary_key=True),
)

# ---- query service (schema 2) --------------------------------------------------------------

# Every query, with what was retrieved: the raw material of the learning loop.
queries = Table(
    "queries",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("created_at", Float, nullable=False, index=True),
    # The question retrieval used: a follow-up rewritten to stand alone (core/condense.py).
    Column("question", Text, nullable=False),
    # What the user typed, when it differs from ``question``; NULL otherwise.
    Column("raw_question", Text, nullable=True),
    Column("k", Integer, nullable=False),
    Column("filters", JSON, nullable=False, default=dict),
    Column("model_version", String(64), nullable=False),
    Column("generator", String(32), nullable=False),
    Column("generator_error", Text, nullable=True),
    Column("answer", Text, nullable=False, default=""),
    # [[chunk_id, score], ...] best first
    Column("retrieved", JSON, nullable=False, default=list),
    Column("top_score", Float, nullable=True),
    Column("miss", Boolean, nullable=False, default=False, index=True),
    Column("miss_reasons", JSON, nullable=False, default=list),
    Column("latency_ms", Float, nullable=False, default=0.0),
    Column("conversation_id", String(64), nullable=True, index=True),
    Column("client", String(64), nullable=True),
)

feedback = Table(
    "feedback",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("query_id", String(32), ForeignKey("queries.id", ondelete="CASCADE"), nullable=False),
    Column("rating", String(8), nullable=False),
    Column("comment", Text, nullable=True),
    Column("relevant_chunk_ids", JSON, nullable=False, default=list),
    Column("created_at", Float, nullable=False),
    Index("ix_feedback_query", "query_id"),
)

# (question, relevant chunk) pairs: from feedback now, pseudo-labels and synthetic later.
labelled_pairs = Table(
    "labelled_pairs",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("query_id", String(32), nullable=True),
    Column("question", Text, nullable=False),
    Column("chunk_id", String(64), nullable=False),
    Column("source", String(32), nullable=False),
    Column("created_at", Float, nullable=False),
    UniqueConstraint("question", "chunk_id", "source", name="uq_pair"),
)

jobs = Table(
    "jobs",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("kind", String(32), nullable=False),
    Column("state", String(16), nullable=False, index=True),
    Column("created_at", Float, nullable=False),
    Column("started_at", Float, nullable=True),
    Column("finished_at", Float, nullable=True),
    Column("progress", Float, nullable=False, default=0.0),
    Column("message", Text, nullable=False, default=""),
    Column("params", JSON, nullable=False, default=dict),
    Column("result", JSON, nullable=False, default=dict),
    Column("errors", JSON, nullable=False, default=list),
)

# Client API keys; only a hash of each key is stored.
api_keys = Table(
    "api_keys",
    metadata,
    Column("id", String(16), primary_key=True),
    Column("name", String(128), nullable=False),
    Column("key_hash", String(64), nullable=False, unique=True),
    Column("prefix", String(16), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("revoked_at", Float, nullable=True),
)

# Synthetic questions per chunk (a chunk id is a content hash, so a chunk is never asked twice).
synthetic_questions = Table(
    "synthetic_questions",
    metadata,
    Column("chunk_id", String(64), primary_key=True),
    Column("method", String(32), primary_key=True),
    Column("questions", JSON, nullable=False),
    Column("created_at", Float, nullable=False),
)

#: Columns a schema step added to an existing table, by the version that added them: opening an
#: older catalog adds them (``ALTER TABLE ... ADD COLUMN``, nullable, so every row is kept).
ADDED_COLUMNS: dict[int, list[tuple[Table, str]]] = {4: [(queries, "raw_question")]}


def add_columns(conn: Connection, from_version: int) -> list[str]:
    """Add the columns of ``ADDED_COLUMNS`` newer than ``from_version`` that a table lacks.

    Tables themselves are made by ``metadata.create_all``, which never alters an existing
    one. Returns the ``table.column`` names added (none when another process was first).
    """
    added: list[str] = []
    for version, columns in sorted(ADDED_COLUMNS.items()):
        if version <= from_version:
            continue
        for table, name in columns:
            have = {c["name"] for c in inspect(conn).get_columns(table.name)}
            if name in have:
                continue
            column = table.c[name]
            kind = column.type.compile(dialect=conn.dialect)
            conn.execute(text(f"ALTER TABLE {table.name} ADD COLUMN {name} {kind}"))
            added.append(f"{table.name}.{name}")
    return added
