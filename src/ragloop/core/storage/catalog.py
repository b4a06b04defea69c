"""The catalog: documents, chunks, model versions and the active pointer, in SQL.

SQLite in WAL mode by default (readers never block the writer), or PostgreSQL
(``postgresql+psycopg://``, the ``postgres`` extra), through SQLAlchemy Core: the same
statements run on both, upserts use each dialect's ``ON CONFLICT``. Every multi-row change is
one transaction. Opening a catalog applies its missing schema steps (``migrations.py``).
"""

from __future__ import annotations

import os
import time
import uuid
import zlib
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Engine,
    Table,
    bindparam,
    create_engine,
    delete,
    event,
    func,
    insert,
    make_url,
    select,
    text,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Row
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from ragloop.core.errors import ConfigError, NotFoundError, StoreError
from ragloop.core.records import ChunkRecord, DocumentRecord, ModelVersion
from ragloop.core.storage import schema as t
from ragloop.core.storage.lexical import LexicalIndex, PostgresLexicalIndex, SqliteFtsIndex
from ragloop.core.storage.migrations import DIALECTS, migrate

# SQLite caps bound parameters per statement; chunk id lists are sliced to stay under it.
_IN_BATCH = 500


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()


# Built once: constructing the statement per search cost about as much as running it.
_HITS_QUERY = (
    select(*t.chunks.c, t.documents.c.title.label("doc_title"), t.documents.c.source)
    .select_from(t.chunks.outerjoin(t.documents, t.documents.c.id == t.chunks.c.document_id))
    .where(t.chunks.c.id.in_(bindparam("ids", expanding=True)))
)


def _slices(items: Sequence[str]) -> Iterator[Sequence[str]]:
    for i in range(0, len(items), _IN_BATCH):
        yield items[i : i + _IN_BATCH]


def make_private_dir(path: Path) -> None:
    """Create ``path`` and its missing parents as 0700 (owner only), whatever the umask.

    Folders that already exist keep their mode: an operator who made the data dir chose it.
    """
    missing: list[Path] = []
    for folder in (path, *path.parents):
        if folder.exists():
            break
        missing.append(folder)
    for folder in reversed(missing):
        try:
            folder.mkdir()
        except FileExistsError:  # another process made it first: theirs to set
            continue
        os.chmod(folder, 0o700)


def _make_private_file(path: Path) -> None:
    """Create an empty ``path`` as 0600 unless it exists (SQLite takes an empty file as an empty
    database, and gives its ``-wal`` and ``-shm`` files the database file's mode)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return
    try:
        os.fchmod(fd, 0o600)  # the umask may have taken bits from os.open's mode
    finally:
        os.close(fd)


def normalize_url(url: str) -> str:
    """``url`` with a bare PostgreSQL scheme given ragloop's driver, psycopg 3."""
    for bare in ("postgres://", "postgresql://"):
        if url.startswith(bare):
            return "postgresql+psycopg://" + url.removeprefix(bare)
    return url


def display_url(url: str) -> str:
    """``url`` safe to print: its password masked."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError as exc:
        raise ConfigError(f"not a database URL: {url!r} ({exc})") from exc


def _engine(url: str) -> Engine:
    """An engine for a catalog URL: SQLite with its pragmas, PostgreSQL with a pool that
    replaces connections the server dropped (a restart, a failover)."""
    name = make_url(url).get_backend_name()
    if name not in DIALECTS:
        raise ConfigError(
            f"unsupported catalog database {name!r}: use sqlite:///PATH or "
            "postgresql+psycopg://USER:PASSWORD@HOST/DATABASE"
        )
    if name == "sqlite":
        engine = create_engine(url)
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    query = make_url(url).query
    args: dict[str, Any] = {"application_name": "ragloop"}
    if "connect_timeout" not in query:
        args["connect_timeout"] = 10
    try:
        return create_engine(url, pool_pre_ping=True, connect_args=args)
    except ImportError as exc:
        raise ConfigError(
            f"a PostgreSQL catalog needs psycopg: pip install 'ragloop[postgres]' ({exc})"
        ) from exc


def insert_ignoring_conflicts(
    conn: Connection, table: Table, rows: Sequence[dict[str, Any]]
) -> int:
    """Insert ``rows``, skipping those whose key (any unique index) is taken; returns how many
    were inserted. One statement, no race with a concurrent writer (``ON CONFLICT DO
    NOTHING`` on both dialects); the count comes from ``RETURNING`` (psycopg reports no
    row count for an executemany)."""
    if not rows:
        return 0
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    stmt = dialect.insert(table).on_conflict_do_nothing().returning(*table.primary_key.columns)
    return len(conn.execute(stmt, list(rows)).all())


def upsert(conn: Connection, table: Table, values: dict[str, Any], key: Sequence[str]) -> None:
    """Insert a row or, when its ``key`` columns match one, update that row's other columns."""
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    stmt = dialect.insert(table).values(**values)
    changes = {c: stmt.excluded[c] for c in values if c not in key}
    conn.execute(stmt.on_conflict_do_update(index_elements=list(key), set_=changes))


#: The first key of the PostgreSQL advisory locks on documents; the second is one of
#: ``_DOCUMENT_BUCKETS`` buckets of document ids (few enough locks for any transaction).
_DOCUMENT_LOCK = 0x646F63  # "doc"
_DOCUMENT_BUCKETS = 256


def _lock_documents(conn: Connection, document_ids: Iterable[str]) -> None:
    """Make writers that replace the same documents take turns, each reading the chunk set the
    other committed. PostgreSQL: transaction locks on the buckets of these document ids (in
    bucket order, so two writers never deadlock). SQLite: a write statement that changes
    nothing takes the database's write lock now, before the reads (pysqlite would otherwise
    read outside the transaction and begin it at the first change)."""
    if conn.dialect.name == "sqlite":
        conn.execute(delete(t.meta).where(t.meta.c.key == "", t.meta.c.value == ""))
        return
    buckets = sorted({zlib.crc32(d.encode()) % _DOCUMENT_BUCKETS for d in document_ids})
    lock = text("SELECT pg_advisory_xact_lock(:k, :b)")
    for bucket in buckets:
        conn.execute(lock, {"k": _DOCUMENT_LOCK, "b": bucket})


class Catalog:
    """Typed access to the catalog tables; one instance per process, shared by threads."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._lexical: LexicalIndex | None = None

    @classmethod
    def open(cls, url: str) -> Catalog:
        """Open (creating if needed) the catalog at a SQLAlchemy URL and bring its schema up to
        date. ``postgres://`` and ``postgresql://`` mean ``postgresql+psycopg://``."""
        url = normalize_url(url)
        shown = display_url(url)
        sqlite_file = url.startswith("sqlite:///") and url != "sqlite:///:memory:"
        database = url.removeprefix("sqlite:///").split("?")[0]
        try:
            if sqlite_file and database:
                # The catalog holds users' questions and documents: owner-only from the start.
                make_private_dir(Path(database).parent)
                _make_private_file(Path(database))
            engine = _engine(url)
            migrate(engine)
        except ConfigError as exc:
            raise ConfigError(f"catalog {shown}: {exc.message}") from exc
        except (SQLAlchemyError, OSError) as exc:
            raise StoreError(
                f"cannot open catalog {shown}: {exc.__class__.__name__}: {exc}"
            ) from exc
        return cls(engine)

    @property
    def dialect(self) -> str:
        """``sqlite`` or ``postgresql``."""
        return self.engine.dialect.name

    @property
    def lexical(self) -> LexicalIndex | None:
        """The full-text index over the chunks: SQLite FTS5, or the tsvector column and GIN
        index on PostgreSQL (``core.storage.lexical``)."""
        if self._lexical is None:
            if self.dialect == "postgresql":
                self._lexical = PostgresLexicalIndex(self.engine)
            else:
                self._lexical = SqliteFtsIndex(self.engine)
        return self._lexical

    def close(self) -> None:
        """Release pooled connections."""
        self.engine.dispose()

    # ---- documents and chunks -------------------------------------------------------------

    def get_document(self, document_id: str) -> DocumentRecord | None:
        """One document by id, or None."""
        with self.engine.connect() as conn:
            row = conn.execute(select(t.documents).where(t.documents.c.id == document_id)).first()
        return _doc(row) if row else None

    def documents_under(self, path_prefix: str) -> dict[str, DocumentRecord]:
        """Documents whose origin path equals or lies under ``path_prefix`` (for prune)."""
        prefix = path_prefix.rstrip("/")
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(t.documents).where(
                    (t.documents.c.path == prefix)
                    | t.documents.c.path.startswith(prefix + "/", autoescape=True)
                )
            ).all()
        return {r.id: _doc(r) for r in rows}

    def list_documents(self, limit: int = 100, offset: int = 0) -> list[DocumentRecord]:
        """Documents ordered by id, paginated."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(t.documents).order_by(t.documents.c.id).limit(limit).offset(offset)
            ).all()
        return [_doc(r) for r in rows]

    def chunk_ids_of(self, document_ids: Iterable[str]) -> dict[str, set[str]]:
        """Chunk ids of each given document (absent documents map to an empty set)."""
        ids = list(document_ids)
        out: dict[str, set[str]] = {d: set() for d in ids}
        with self.engine.connect() as conn:
            for part in _slices(ids):
                for cid, did in conn.execute(
                    select(t.chunks.c.id, t.chunks.c.document_id).where(
                        t.chunks.c.document_id.in_(part)
                    )
                ):
                    out[did].add(cid)
        return out

    def get_chunks(self, chunk_ids: Sequence[str]) -> dict[str, ChunkRecord]:
        """Chunks by id; ids the catalog does not have are simply absent from the result."""
        out: dict[str, ChunkRecord] = {}
        with self.engine.connect() as conn:
            for part in _slices(list(chunk_ids)):
                for row in conn.execute(select(t.chunks).where(t.chunks.c.id.in_(part))):
                    out[row.id] = _chunk(row)
        return out

    def chunks_for_hits(
        self, chunk_ids: Sequence[str]
    ) -> dict[str, tuple[ChunkRecord, str | None, str | None]]:
        """Chunks by id with their document's title and source (None if the document is gone).

        One joined query for the retriever: every search needs exactly this, and two queries
        (chunks, then whole document rows with their JSON metadata) cost the request path about
        twice the time under the GIL.
        """
        out: dict[str, tuple[ChunkRecord, str | None, str | None]] = {}
        with self.engine.connect() as conn:
            for part in _slices(list(chunk_ids)):
                for row in conn.execute(_HITS_QUERY, {"ids": list(part)}):
                    out[row.id] = (_chunk(row), row.doc_title, row.source)
        return out

    def chunks_of(self, document_id: str) -> list[ChunkRecord]:
        """A document's chunks in order."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(t.chunks)
                .where(t.chunks.c.document_id == document_id)
                .order_by(t.chunks.c.seq)
            ).all()
        return [_chunk(r) for r in rows]

    def iter_chunks(self, batch_size: int = 1000) -> Iterator[list[ChunkRecord]]:
        """Every chunk, in id order, in batches (for re-embedding and checks)."""
        last = ""
        while True:
            with self.engine.connect() as conn:
                rows = conn.execute(
                    select(t.chunks)
                    .where(t.chunks.c.id > last)
                    .order_by(t.chunks.c.id)
                    .limit(batch_size)
                ).all()
            if not rows:
                return
            yield [_chunk(r) for r in rows]
            last = rows[-1].id

    def save_documents(
        self, items: Sequence[tuple[DocumentRecord, Sequence[ChunkRecord]]], collection: str
    ) -> list[str]:
        """Insert or replace documents with exactly the given chunks, in one transaction.

        Returns the ids of chunks that no longer exist; they are journaled for ``collection``
        in the same transaction so their vectors are deleted even after a crash.
        """
        now = time.time()
        removed: list[str] = []
        with self._begin() as conn:
            _lock_documents(conn, [doc.id for doc, _ in items])
            for doc, doc_chunks in items:
                old = {
                    r[0]
                    for r in conn.execute(
                        select(t.chunks.c.id).where(t.chunks.c.document_id == doc.id)
                    )
                }
                new_ids = {c.id for c in doc_chunks}
                gone = sorted(old - new_ids)
                values = _doc_values(doc) | {"n_chunks": len(doc_chunks), "updated_at": now}
                if (
                    conn.execute(
                        update(t.documents).where(t.documents.c.id == doc.id).values(**values)
                    ).rowcount
                    == 0
                ):
                    conn.execute(insert(t.documents).values(**values, created_at=now))
                for part in _slices(gone):
                    conn.execute(delete(t.chunks).where(t.chunks.c.id.in_(part)))
                # Kept chunks may have moved (seq/offsets change when text is inserted above).
                kept = [c for c in doc_chunks if c.id in old]
                for c in kept:
                    conn.execute(
                        update(t.chunks)
                        .where(t.chunks.c.id == c.id)
                        .values(seq=c.seq, start_char=c.start_char, end_char=c.end_char)
                    )
                fresh = [_chunk_values(c) for c in doc_chunks if c.id not in old]
                if fresh:
                    conn.execute(insert(t.chunks), fresh)
                removed.extend(gone)
            self._journal(conn, collection, removed)
        return removed

    def delete_documents(self, document_ids: Sequence[str], collection: str) -> list[str]:
        """Delete documents and their chunks; returns (and journals) the removed chunk ids."""
        removed: list[str] = []
        with self._begin() as conn:
            _lock_documents(conn, document_ids)
            for part in _slices(list(document_ids)):
                removed += [
                    r[0]
                    for r in conn.execute(
                        select(t.chunks.c.id).where(t.chunks.c.document_id.in_(part))
                    )
                ]
                conn.execute(delete(t.chunks).where(t.chunks.c.document_id.in_(part)))
                conn.execute(delete(t.documents).where(t.documents.c.id.in_(part)))
            self._journal(conn, collection, removed)
        return removed

    def counts(self) -> dict[str, int]:
        """Numbers of documents and chunks."""
        with self.engine.connect() as conn:
            n_docs = conn.execute(select(func.count()).select_from(t.documents)).scalar_one()
            n_chunks = conn.execute(select(func.count()).select_from(t.chunks)).scalar_one()
        return {"documents": int(n_docs), "chunks": int(n_chunks)}

    # ---- vector journal -------------------------------------------------------------------

    def journal_vectors(self, collection: str, chunk_ids: Sequence[str]) -> None:
        """Record that vectors for these ids are about to be written to ``collection``."""
        with self._begin() as conn:
            self._journal(conn, collection, chunk_ids)

    def journal_pending(self) -> dict[str, list[str]]:
        """Journaled ids by collection, each either committed or to be deleted."""
        out: dict[str, list[str]] = {}
        with self.engine.connect() as conn:
            for coll, cid in conn.execute(
                select(t.vector_journal.c.collection, t.vector_journal.c.chunk_id)
            ):
                out.setdefault(coll, []).append(cid)
        return out

    def journal_clear(self, collection: str, chunk_ids: Sequence[str]) -> None:
        """Forget journaled ids once Chroma matches the catalog for them."""
        with self._begin() as conn:
            for part in _slices(list(chunk_ids)):
                conn.execute(
                    delete(t.vector_journal).where(
                        (t.vector_journal.c.collection == collection)
                        & t.vector_journal.c.chunk_id.in_(part)
                    )
                )

    def missing_chunks(self, chunk_ids: Sequence[str]) -> list[str]:
        """The ids among ``chunk_ids`` that the catalog has no chunk for."""
        have = set(self.get_chunks(chunk_ids))
        return [c for c in chunk_ids if c not in have]

    def documents_by_ids(self, document_ids: Sequence[str]) -> dict[str, DocumentRecord]:
        """Documents by id; absent ids are left out."""
        out: dict[str, DocumentRecord] = {}
        with self.engine.connect() as conn:
            for part in _slices(list(dict.fromkeys(document_ids))):
                for row in conn.execute(select(t.documents).where(t.documents.c.id.in_(part))):
                    out[row.id] = _doc(row)
        return out

    def instance_id(self) -> str:
        """A random id made once per catalog; it prefixes collection names so two catalogs
        sharing one Chroma server never touch each other's collections."""
        with self._begin() as conn:
            query = select(t.meta.c.value).where(t.meta.c.key == "instance_id")
            value = conn.execute(query).scalar_one_or_none()
            if value is None:  # the first of several processes to get here wins
                new = {"key": "instance_id", "value": uuid.uuid4().hex[:8]}
                insert_ignoring_conflicts(conn, t.meta, [new])
                value = conn.execute(query).scalar_one()
        return str(value)

    def get_meta(self, key: str) -> str | None:
        """A value of the catalog's key-value table, or None."""
        with self.engine.connect() as conn:
            value = conn.execute(select(t.meta.c.value).where(t.meta.c.key == key)).scalar()
        return None if value is None else str(value)

    def set_meta(self, key: str, value: str) -> None:
        """Set a value of the catalog's key-value table."""
        with self._begin() as conn:
            upsert(conn, t.meta, {"key": key, "value": value}, ["key"])

    # ---- model versions -------------------------------------------------------------------

    def add_version(self, mv: ModelVersion) -> None:
        """Register a model version."""
        with self._begin() as conn:
            conn.execute(insert(t.model_versions).values(**_mv_values(mv)))

    def get_version(self, version: str) -> ModelVersion:
        """A model version by id; NotFoundError names the known ones."""
        with self.engine.connect() as conn:
            row = conn.execute(
                select(t.model_versions).where(t.model_versions.c.version == version)
            ).first()
        if row is None:
            known = ", ".join(v.version for v in self.list_versions()) or "none"
            raise NotFoundError(f"unknown model version {version!r} (known: {known})")
        return _mv(row)

    def list_versions(self) -> list[ModelVersion]:
        """All model versions, oldest first."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(t.model_versions).order_by(t.model_versions.c.created_at)
            ).all()
        return [_mv(r) for r in rows]

    def active_version(self) -> ModelVersion | None:
        """The version serving queries, or None before the first one is registered."""
        with self.engine.connect() as conn:
            row = conn.execute(
                select(t.model_versions).join(
                    t.active_pointer, t.active_pointer.c.version == t.model_versions.c.version
                )
            ).first()
        return _mv(row) if row else None

    def set_status(self, version: str, status: str) -> None:
        """Change a version's status (e.g. ``deleted`` when its collection is dropped)."""
        with self._begin() as conn:
            conn.execute(
                update(t.model_versions)
                .where(t.model_versions.c.version == version)
                .values(status=status)
            )

    def set_fusion(self, version: str, recipe: dict[str, Any]) -> ModelVersion:
        """Store a version's fusion recipe (``info["fusion"]``); returns the updated version.

        Serving processes pick it up when they next read the active pointer, with the
        version's embedder and collection, as one unit.
        """
        return self.set_info(version, "fusion", dict(recipe))

    def set_info(self, version: str, key: str, value: Any) -> ModelVersion:
        """Store one per-version setting in ``info[key]`` (the fusion recipe, the miss
        calibration); returns the updated version. Other keys are kept."""
        with self._begin() as conn:
            info = conn.execute(
                select(t.model_versions.c.info).where(t.model_versions.c.version == version)
            ).scalar_one_or_none()
            if info is None:
                raise NotFoundError(f"unknown model version {version!r}")
            conn.execute(
                update(t.model_versions)
                .where(t.model_versions.c.version == version)
                .values(info={**info, key: value})
            )
        return self.get_version(version)

    def set_active(self, version: str) -> None:
        """Point the active pointer at ``version`` and mark statuses, in one transaction."""
        now = time.time()
        with self._begin() as conn:
            prev = conn.execute(select(t.active_pointer.c.version)).scalar_one_or_none()
            if prev is not None and prev != version:
                conn.execute(
                    update(t.model_versions)
                    .where(t.model_versions.c.version == prev)
                    .values(status="retired")
                )
            conn.execute(
                update(t.model_versions)
                .where(t.model_versions.c.version == version)
                .values(status="active")
            )
            upsert(conn, t.active_pointer, {"id": 1, "version": version, "changed_at": now}, ["id"])

    # ---- helpers --------------------------------------------------------------------------

    def _begin(self) -> Any:
        try:
            return self.engine.begin()
        except SQLAlchemyError as exc:  # pragma: no cover - connection failure
            raise StoreError(f"catalog unavailable: {exc}") from exc

    @staticmethod
    def _journal(conn: Connection, collection: str, chunk_ids: Sequence[str]) -> None:
        rows = [{"collection": collection, "chunk_id": c} for c in dict.fromkeys(chunk_ids)]
        for i in range(0, len(rows), _IN_BATCH):
            insert_ignoring_conflicts(conn, t.vector_journal, rows[i : i + _IN_BATCH])


def _doc_values(d: DocumentRecord) -> dict[str, Any]:
    return {
        "id": d.id,
        "path": d.path,
        "source": d.source,
        "title": d.title,
        "format": d.format,
        "content_hash": d.content_hash,
        "size_bytes": d.size_bytes,
        "meta": d.meta,
    }


def _doc(r: Row[Any]) -> DocumentRecord:
    return DocumentRecord(
        id=r.id,
        path=r.path,
        source=r.source,
        title=r.title,
        format=r.format,
        content_hash=r.content_hash,
        size_bytes=r.size_bytes,
        n_chunks=r.n_chunks,
        meta=r.meta or {},
        created_at=r.created_at,
        updated_at=r.updated_at,
    )


def _chunk_values(c: ChunkRecord) -> dict[str, Any]:
    return {
        "id": c.id,
        "document_id": c.document_id,
        "seq": c.seq,
        "text": c.text,
        "title": c.title,
        "start_char": c.start_char,
        "end_char": c.end_char,
        "n_tokens": c.n_tokens,
    }


def _chunk(r: Any) -> ChunkRecord:  # a Row with the chunks columns
    return ChunkRecord(
        id=r.id,
        document_id=r.document_id,
        seq=r.seq,
        text=r.text,
        title=r.title,
        start_char=r.start_char,
        end_char=r.end_char,
        n_tokens=r.n_tokens,
    )


def _mv_values(m: ModelVersion) -> dict[str, Any]:
    return {
        "version": m.version,
        "model_ref": m.model_ref,
        "parent": m.parent,
        "dimension": m.dimension,
        "max_seq_length": m.max_seq_length,
        "collection": m.collection,
        "status": m.status,
        "created_at": m.created_at,
        "info": m.info,
    }


def _mv(r: Row[Any]) -> ModelVersion:
    return ModelVersion(
        version=r.version,
        model_ref=r.model_ref,
        parent=r.parent,
        dimension=r.dimension,
        max_seq_length=r.max_seq_length,
        collection=r.collection,
        status=r.status,
        created_at=r.created_at,
        info=r.info or {},
    )
