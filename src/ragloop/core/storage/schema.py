"""Catalog tables (SQLAlchemy Core), the single source of truth for documents and chunks.

Vectors live in Chroma, one collection per model version; every chunk's text lives here, so any
model can re-embed the whole corpus. The same tables serve SQLite and PostgreSQL: the few
differences are types (``text_type``, ``key_type``, ``size_type``) and one index (``uq_pair``).
``SCHEMA_VERSION`` is stored in ``meta`` and checked on open, so an older ragloop never writes
to a newer catalog; ``core.storage.migrations`` brings an older catalog up to it.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
    func,
)
from sqlalchemy.types import TypeEngine

#: The version ``core.storage.migrations.MIGRATIONS`` ends at (each step is described there).
SCHEMA_VERSION = 6


class PgText(TypeDecorator[str]):
    """PostgreSQL ``text`` for every string column: no length is enforced (SQLite never enforced
    one, so a value one database takes the other takes too), and a NUL character, which a
    PostgreSQL string cannot hold, is stored as U+FFFD instead of failing the whole write."""

    impl = Text
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if isinstance(value, str) and "\x00" in value:
            return value.replace("\x00", "\ufffd")
        return value


def text_type() -> TypeEngine[str]:
    """Free text: TEXT on SQLite, ``PgText`` on PostgreSQL."""
    return Text().with_variant(PgText(), "postgresql")


def key_type(length: int) -> TypeEngine[str]:
    """Ids, names and states: VARCHAR(length) on SQLite (documentation only there), ``PgText``
    on PostgreSQL."""
    return String(length).with_variant(PgText(), "postgresql")


def size_type() -> TypeEngine[int]:
    """Byte counts: SQLite's INTEGER is 64-bit already; PostgreSQL needs BIGINT."""
    return Integer().with_variant(BigInteger(), "postgresql")


metadata = MetaData()

meta = Table(
    "meta",
    metadata,
    Column("key", key_type(64), primary_key=True),
    Column("value", text_type(), nullable=False),
)

documents = Table(
    "documents",
    metadata,
    Column("id", key_type(255), primary_key=True),
    # Absolute path of the file it came from (several documents share one for a BEIR corpus);
    # prune and re-ingest find a file's documents through it.
    Column("path", text_type(), nullable=False, index=True),
    Column("source", text_type(), nullable=False),
    Column("title", text_type(), nullable=False, default=""),
    Column("format", key_type(16), nullable=False),
    Column("content_hash", key_type(64), nullable=False),
    Column("size_bytes", size_type(), nullable=False, default=0),
    Column("n_chunks", Integer, nullable=False, default=0),
    Column("meta", JSON, nullable=False, default=dict),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
)

chunks = Table(
    "chunks",
    metadata,
    Column("id", key_type(64), primary_key=True),
    Column(
        "document_id",
        key_type(255),
        ForeignKey("documents.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("seq", Integer, nullable=False),
    Column("text", text_type(), nullable=False),
    Column("title", text_type(), nullable=False, default=""),
    Column("start_char", Integer, nullable=False),
    Column("end_char", Integer, nullable=False),
    Column("n_tokens", Integer, nullable=False),
    Index("ix_chunks_document_seq", "document_id", "seq"),
)

model_versions = Table(
    "model_versions",
    metadata,
    Column("version", key_type(64), primary_key=True),
    # What to load: a registered embedder name or a model directory.
    Column("model_ref", text_type(), nullable=False),
    Column("parent", key_type(64), nullable=True),
    Column("dimension", Integer, nullable=False),
    Column("max_seq_length", Integer, nullable=False),
    # Query-only versions share their parent's collection (document vectors are unchanged).
    Column("collection", key_type(128), nullable=False),
    # candidate | active | retired | rejected | failed
    Column("status", key_type(16), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("info", JSON, nullable=False, default=dict),
)

# The one row (id=1) that says which model version serves queries.
active_pointer = Table(
    "active_pointer",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("version", key_type(64), ForeignKey("model_versions.version"), nullable=False),
    Column("changed_at", Float, nullable=False),
)

# Outbox for vector writes: ids are journaled before Chroma is touched and cleared after the
# catalog commit, so a crash in between is repaired by deleting journaled ids the catalog lacks.
vector_journal = Table(
    "vector_journal",
    metadata,
    Column("collection", key_type(128), primary_key=True),
    Column("chunk_id", key_type(64), primary_key=True),
)

# ---- query service (schema 2) --------------------------------------------------------------

# Every query, with what was retrieved: the raw material of the learning loop.
queries = Table(
    "queries",
    metadata,
    Column("id", key_type(32), primary_key=True),
    Column("created_at", Float, nullable=False, index=True),
    # The question retrieval used: a follow-up rewritten to stand alone (core/condense.py).
    Column("question", text_type(), nullable=False),
    # What the user typed, when it differs from ``question``; NULL otherwise.
    Column("raw_question", text_type(), nullable=True),
    Column("k", Integer, nullable=False),
    Column("filters", JSON, nullable=False, default=dict),
    Column("model_version", key_type(64), nullable=False),
    Column("generator", key_type(32), nullable=False),
    Column("generator_error", text_type(), nullable=True),
    Column("answer", text_type(), nullable=False, default=""),
    # [[chunk_id, score], ...] best first
    Column("retrieved", JSON, nullable=False, default=list),
    Column("top_score", Float, nullable=True),
    Column("miss", Boolean, nullable=False, default=False, index=True),
    Column("miss_reasons", JSON, nullable=False, default=list),
    Column("latency_ms", Float, nullable=False, default=0.0),
    Column("conversation_id", key_type(64), nullable=True, index=True),
    Column("client", key_type(64), nullable=True),
)

feedback = Table(
    "feedback",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("query_id", key_type(32), ForeignKey("queries.id", ondelete="CASCADE"), nullable=False),
    Column("rating", key_type(8), nullable=False),
    Column("comment", text_type(), nullable=True),
    Column("relevant_chunk_ids", JSON, nullable=False, default=list),
    Column("created_at", Float, nullable=False),
    Index("ix_feedback_query", "query_id"),
)

# (question, relevant chunk) pairs: from feedback now, pseudo-labels and synthetic later.
labelled_pairs = Table(
    "labelled_pairs",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("query_id", key_type(32), nullable=True),
    Column("question", text_type(), nullable=False),
    Column("chunk_id", key_type(64), nullable=False),
    Column("source", key_type(32), nullable=False),
    Column("created_at", Float, nullable=False),
    # A pair is stored once. PostgreSQL's B-tree cannot index a long question (about 2.7 KB at
    # most per entry), so there the same rule is a unique index on the question's md5.
    UniqueConstraint("question", "chunk_id", "source", name="uq_pair").ddl_if(dialect="sqlite"),
)
Index(
    "uq_pair",
    func.md5(labelled_pairs.c.question),
    labelled_pairs.c.chunk_id,
    labelled_pairs.c.source,
    unique=True,
).ddl_if(dialect="postgresql")

jobs = Table(
    "jobs",
    metadata,
    Column("id", key_type(32), primary_key=True),
    Column("kind", key_type(32), nullable=False),
    Column("state", key_type(16), nullable=False, index=True),
    Column("created_at", Float, nullable=False),
    Column("started_at", Float, nullable=True),
    Column("finished_at", Float, nullable=True),
    Column("progress", Float, nullable=False, default=0.0),
    Column("message", text_type(), nullable=False, default=""),
    Column("params", JSON, nullable=False, default=dict),
    Column("result", JSON, nullable=False, default=dict),
    Column("errors", JSON, nullable=False, default=list),
)

# Client API keys; only a hash of each key is stored.
api_keys = Table(
    "api_keys",
    metadata,
    Column("id", key_type(16), primary_key=True),
    Column("name", key_type(128), nullable=False),
    Column("key_hash", key_type(64), nullable=False, unique=True),
    Column("prefix", key_type(16), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("revoked_at", Float, nullable=True),
)

# Synthetic questions per chunk (a chunk id is a content hash, so a chunk is never asked twice).
synthetic_questions = Table(
    "synthetic_questions",
    metadata,
    Column("chunk_id", key_type(64), primary_key=True),
    Column("method", key_type(32), primary_key=True),
    Column("questions", JSON, nullable=False),
    Column("created_at", Float, nullable=False),
)

# Which migration steps ran, and when (``core.storage.migrations``); ``meta.schema_version``
# stays the version an older ragloop reads to refuse a newer catalog.
schema_migrations = Table(
    "schema_migrations",
    metadata,
    Column("version", Integer, primary_key=True, autoincrement=False),
    Column("description", text_type(), nullable=False),
    # NULL: applied before this table existed (a catalog made by an older ragloop).
    Column("applied_at", Float, nullable=True),
)

# Leases (``core.storage.leases``): who may act alone (write the store, run the one retrain, run
# the scheduler) across processes and hosts, until ``expires_at`` (seconds since the epoch, by
# the database's clock on PostgreSQL) unless the owner renews it. Not data: never copied.
leases = Table(
    "leases",
    metadata,
    Column("name", key_type(128), primary_key=True),
    Column("owner", key_type(255), nullable=False),
    Column("expires_at", Float, nullable=False),
)

#: The tables holding a deployment's data, parents before children (``ragloop migrate-catalog``
#: copies them in this order); the migration history and the lexical index are each database's
#: own.
DATA_TABLES: tuple[Table, ...] = (
    meta,
    documents,
    chunks,
    model_versions,
    active_pointer,
    vector_journal,
    queries,
    feedback,
    labelled_pairs,
    jobs,
    api_keys,
    synthetic_questions,
)
