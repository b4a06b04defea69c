"""The lexical (BM25) index beside the vectors: SQLite FTS5 inside the catalog database.

Design. Three objects live in the catalog file and are created (and back-filled from the
existing chunks, once) when a catalog without them is opened:

- ``chunk_lexical_keys``: one row per chunk, an ``INTEGER PRIMARY KEY`` for its chunk id. FTS5
  keys documents by integer rowid, and the chunks table's own rowid is not stable (its primary
  key is a text hash, and VACUUM may renumber rowids of such tables), so the index gets a key
  of its own.
- ``chunks_fts``: an FTS5 table over ``title`` (the heading path) and ``text``, tokenizer
  ``porter unicode61 remove_diacritics 2``, with *external content* (the view
  ``chunks_lexical_source``): it stores the inverted index only, never a second copy of the
  text, and ``integrity-check`` can compare the index with the chunks it should hold.
- triggers on ``chunks`` (insert, delete, update of id/title/text) that write the key and the
  index entry in the statement that writes the chunk, so in the same transaction: a document
  has its lexical entries or none, also after kill -9, and ingest is incremental (never a
  rebuild). A cascade delete from ``documents`` fires them too.

Queries drop a small English stop-word list, quote each remaining term (so ``"``, ``*``, ``-``,
``NEAR``, ``AND``... are text, never syntax) and OR them; ``bm25()`` ranks (FTS5 returns it
negated; we return it positive, higher is better). A search may be limited to some columns
(an FTS5 column filter, ``text : (...)``): the learning loop's gate searches a heading or
title question against the chunk text alone, so its own title line cannot find it.

Cost, measured on SciFact (5,183 abstracts -> 9,991 chunks of ~850 characters with titles):
the lexical objects take 586 bytes per chunk (FTS5 postings 485, key table and its unique index
87, document sizes 11), about 0.7 of the chunk text itself; a million such chunks add about
0.6 GB to the catalog, written in the ingest transaction. A SciFact claim (top 100) takes
about 6 ms on a busy 2-core machine. FTS5 has no top-k pruning: a query scores every chunk
holding any of its terms, so at a million chunks, questions with common (non-stop) words
match a large share of the corpus and cost (estimated, not measured) tens to hundreds of ms;
``depth`` bounds only what is returned. ``verify`` (FTS5 integrity-check) reads every chunk.
A PostgreSQL catalog needs its own ``LexicalIndex`` (tsvector + GIN); until then hybrid
retrieval there runs as dense.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, text
from sqlalchemy.exc import SQLAlchemyError

from ragloop.core.errors import InvalidInputError, StoreError

FTS_TABLE = "chunks_fts"
KEYS_TABLE = "chunk_lexical_keys"
SOURCE_VIEW = "chunks_lexical_source"
TOKENIZER = "porter unicode61 remove_diacritics 2"

# Filters the dense search accepts (the Chroma metadata ingest writes), mapped to SQL columns.
_FILTER_COLUMNS = {"document_id": "c.document_id", "source": "d.source"}

# Words that carry no topic; BM25 would give them little weight anyway, but every OR-ed term
# widens the set of chunks FTS5 must score.
STOP_WORDS = frozenset(
    """a about above after again against all am an and any are as at be because been before
    being below between both but by can could did do does doing down during each few for from
    further had has have having he her here hers herself him himself his how i if in into is it
    its itself just me more most my myself no nor not now of off on once only or other our ours
    ourselves out over own same she should so some such than that the their theirs them
    themselves then there these they this those through to too under until up very was we were
    what when where which while who whom why will with would you your yours yourself
    yourselves""".split()
)

_TERM = re.compile(r"\w+", re.UNICODE)

#: The indexed columns, in the FTS5 table's order: a search may be limited to some of them.
COLUMNS = ("title", "text")

# Trigger bodies. The 'delete' command must be given exactly the values that were indexed,
# which old.* are.
_ADD = (
    f"INSERT INTO {KEYS_TABLE}(chunk_id) VALUES (new.id); "
    f"INSERT INTO {FTS_TABLE}(rowid, title, text) "
    "VALUES (last_insert_rowid(), new.title, new.text);"
)
_REMOVE = (
    f"INSERT INTO {FTS_TABLE}({FTS_TABLE}, rowid, title, text) "
    f"SELECT 'delete', k.id, old.title, old.text FROM {KEYS_TABLE} k WHERE k.chunk_id = old.id; "
    f"DELETE FROM {KEYS_TABLE} WHERE chunk_id = old.id;"
)
_INTEGRITY = f"INSERT INTO {FTS_TABLE}({FTS_TABLE}, rank) VALUES ('integrity-check', 1)"

_DDL = [
    f"CREATE TABLE IF NOT EXISTS {KEYS_TABLE} ("
    "id INTEGER PRIMARY KEY, chunk_id VARCHAR(64) NOT NULL UNIQUE)",
    f"CREATE VIEW IF NOT EXISTS {SOURCE_VIEW} AS SELECT k.id AS lex_id, c.title AS title, "
    f"c.text AS text FROM {KEYS_TABLE} k JOIN chunks c ON c.id = k.chunk_id",
    f"CREATE VIRTUAL TABLE IF NOT EXISTS {FTS_TABLE} USING fts5(title, text, "
    f"content='{SOURCE_VIEW}', content_rowid='lex_id', tokenize='{TOKENIZER}')",
    f"CREATE TRIGGER IF NOT EXISTS chunks_lexical_insert AFTER INSERT ON chunks BEGIN {_ADD} END",
    f"CREATE TRIGGER IF NOT EXISTS chunks_lexical_delete AFTER DELETE ON chunks BEGIN "
    f"{_REMOVE} END",
    f"CREATE TRIGGER IF NOT EXISTS chunks_lexical_update AFTER UPDATE OF id, title, text "
    f"ON chunks BEGIN {_REMOVE} {_ADD} END",
]

_OBJECTS = (
    KEYS_TABLE,
    SOURCE_VIEW,
    FTS_TABLE,
    "chunks_lexical_insert",
    "chunks_lexical_delete",
    "chunks_lexical_update",
)


def match_expression(query: str, columns: Sequence[str] | None = None) -> str | None:
    """The FTS5 MATCH string for a question: its non-stop-word terms, quoted and OR-ed.

    None when nothing is left (empty, only stop words or punctuation). Each term is a run of
    word characters, so it never holds a double quote and quoting makes it a plain string.
    ``columns`` (of ``COLUMNS``) limits the match to those columns with an FTS5 column filter,
    ``text : ( "a" OR "b" )``; None (the default) matches every column.
    """
    terms = [t for t in dict.fromkeys(_TERM.findall(query.lower())) if t not in STOP_WORDS]
    if not terms:
        return None
    expr = " OR ".join(f'"{t}"' for t in terms)
    if columns is None:
        return expr
    unknown = sorted(set(columns) - set(COLUMNS))
    if unknown or not columns:
        raise InvalidInputError(
            f"unknown lexical column {', '.join(unknown) or '(none given)'}; "
            f"use {', '.join(COLUMNS)}"
        )
    names = list(dict.fromkeys(columns))
    target = names[0] if len(names) == 1 else "{" + " ".join(names) + "}"
    return f"{target} : ( {expr} )"


@dataclass(frozen=True)
class LexicalCheck:
    """What verifying the lexical index found."""

    chunks: int
    entries: int
    missing: int
    orphans: int
    integrity_ok: bool
    error: str | None = None

    @property
    def ok(self) -> bool:
        """Every chunk has exactly one entry, none is orphaned, and FTS5 agrees."""
        return self.integrity_ok and not self.missing and not self.orphans

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary."""
        return {
            "chunks": self.chunks,
            "entries": self.entries,
            "missing": self.missing,
            "orphans": self.orphans,
            "integrity_ok": self.integrity_ok,
            "error": self.error,
            "ok": self.ok,
        }


class LexicalIndex(ABC):
    """Full-text search over the catalog's chunks; scores are BM25, higher is better."""

    @abstractmethod
    def search(
        self,
        query: str,
        k: int,
        where: Mapping[str, Any] | None = None,
        columns: Sequence[str] | None = None,
    ) -> list[tuple[str, float]]:
        """Up to ``k`` (chunk id, score) pairs, best first; [] when the query has no terms.
        ``columns`` limits the match to those of ``COLUMNS`` (default: all)."""

    @abstractmethod
    def verify(self) -> LexicalCheck:
        """Compare the index with the chunks table."""

    @abstractmethod
    def count(self) -> int:
        """Number of indexed chunks."""


class SqliteFtsIndex(LexicalIndex):
    """FTS5 in the SQLite catalog, kept in sync by triggers (see the module docstring)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def search(
        self,
        query: str,
        k: int,
        where: Mapping[str, Any] | None = None,
        columns: Sequence[str] | None = None,
    ) -> list[tuple[str, float]]:
        """BM25 top-``k``, honouring ``document_id`` / ``source`` equality filters; with
        ``columns``, only terms in those columns match and score."""
        expr = match_expression(query, columns)
        if expr is None or k <= 0:
            return []
        params: dict[str, Any] = {"q": expr, "k": k}
        if where:
            unknown = sorted(set(where) - set(_FILTER_COLUMNS))
            if unknown:
                raise InvalidInputError(
                    f"unknown filter {', '.join(unknown)}; use {', '.join(_FILTER_COLUMNS)}"
                )
            conds = []
            for i, (key, value) in enumerate(sorted(where.items())):
                conds.append(f"{_FILTER_COLUMNS[key]} = :f{i}")
                params[f"f{i}"] = value
            sql = (
                f"SELECT k.chunk_id, bm25({FTS_TABLE}) AS s FROM {FTS_TABLE} "
                f"JOIN {KEYS_TABLE} k ON k.id = {FTS_TABLE}.rowid "
                "JOIN chunks c ON c.id = k.chunk_id "
                "LEFT JOIN documents d ON d.id = c.document_id "
                f"WHERE {FTS_TABLE} MATCH :q AND {' AND '.join(conds)} "
                "ORDER BY s, k.chunk_id LIMIT :k"
            )
        else:
            # The inner query is the shape FTS5 optimises (ORDER BY rank LIMIT on the table).
            sql = (
                f"SELECT k.chunk_id, r.s FROM (SELECT rowid AS id, rank AS s FROM {FTS_TABLE} "
                f"WHERE {FTS_TABLE} MATCH :q ORDER BY rank LIMIT :k) r "
                f"JOIN {KEYS_TABLE} k ON k.id = r.id ORDER BY r.s, k.chunk_id"
            )
        try:
            with self.engine.connect() as conn:
                rows = conn.execute(text(sql), params).all()
        except SQLAlchemyError as exc:
            raise StoreError(f"lexical search failed: {exc}") from exc
        return [(str(cid), -float(score)) for cid, score in rows]

    def count(self) -> int:
        """Indexed chunks (rows of the FTS5 document-size table: one per entry)."""
        with self.engine.connect() as conn:
            return int(conn.execute(text(f"SELECT count(*) FROM {FTS_TABLE}_docsize")).scalar_one())

    def verify(self) -> LexicalCheck:
        """Keys against chunks, index entries against keys, then FTS5's own integrity-check
        against the content (rank 1: compare with the external content, not only itself)."""
        q = {
            "chunks": "SELECT count(*) FROM chunks",
            "entries": f"SELECT count(*) FROM {FTS_TABLE}_docsize",
            "no_key": f"SELECT count(*) FROM chunks c LEFT JOIN {KEYS_TABLE} k "
            "ON k.chunk_id = c.id WHERE k.id IS NULL",
            "no_entry": f"SELECT count(*) FROM {KEYS_TABLE} k JOIN chunks c ON c.id = k.chunk_id "
            f"LEFT JOIN {FTS_TABLE}_docsize s ON s.id = k.id WHERE s.id IS NULL",
            "stale_key": f"SELECT count(*) FROM {KEYS_TABLE} k LEFT JOIN chunks c "
            "ON c.id = k.chunk_id WHERE c.id IS NULL",
            "stray_entry": f"SELECT count(*) FROM {FTS_TABLE}_docsize s LEFT JOIN {KEYS_TABLE} k "
            "ON k.id = s.id WHERE k.id IS NULL",
        }
        try:
            with self.engine.connect() as conn:
                n = {name: int(conn.execute(text(sql)).scalar_one()) for name, sql in q.items()}
        except SQLAlchemyError as exc:
            return LexicalCheck(0, 0, 0, 0, False, f"lexical index unreadable: {exc}")
        error = None
        try:
            with self.engine.begin() as conn:
                conn.execute(text(_INTEGRITY))
        except SQLAlchemyError as exc:
            error = f"FTS5 integrity-check failed: {getattr(exc, 'orig', exc)}"
        return LexicalCheck(
            chunks=n["chunks"],
            entries=n["entries"],
            missing=n["no_key"] + n["no_entry"],
            orphans=n["stale_key"] + n["stray_entry"],
            integrity_ok=error is None,
            error=error,
        )


def install_sqlite_fts(engine: Engine) -> bool:
    """Create the lexical index in a SQLite catalog that lacks it and back-fill it from the
    existing chunks, in one ``BEGIN IMMEDIATE`` transaction; returns True when it did.

    pysqlite runs DDL outside a transaction unless one is begun explicitly, so this uses the
    driver connection in autocommit mode with its own BEGIN: a crash mid-way leaves nothing,
    and concurrent openers wait for each other (the second finds everything in place).
    """
    raw = engine.raw_connection()
    try:
        dbapi: Any = raw.driver_connection
        cur = dbapi.cursor()
        if _installed(cur):
            return False
        previous = dbapi.isolation_level
        dbapi.isolation_level = None
        try:
            cur.execute("BEGIN IMMEDIATE")
            try:
                if _installed(cur):
                    cur.execute("ROLLBACK")
                    return False
                fresh = not _exists(cur, FTS_TABLE)
                for ddl in _DDL:
                    cur.execute(ddl)
                if fresh:
                    cur.execute(f"DELETE FROM {KEYS_TABLE}")
                    cur.execute(
                        f"INSERT INTO {KEYS_TABLE}(chunk_id) SELECT id FROM chunks ORDER BY rowid"
                    )
                    cur.execute(f"INSERT INTO {FTS_TABLE}({FTS_TABLE}) VALUES ('rebuild')")
                cur.execute("COMMIT")
            except BaseException:
                cur.execute("ROLLBACK")
                raise
        finally:
            dbapi.isolation_level = previous
        return True
    except Exception as exc:
        raise StoreError(f"cannot create the lexical index: {exc}") from exc
    finally:
        raw.close()


def _exists(cur: Any, name: str) -> bool:
    row = cur.execute("SELECT 1 FROM sqlite_master WHERE name = ?", (name,)).fetchone()
    return row is not None


def _installed(cur: Any) -> bool:
    marks = ",".join("?" * len(_OBJECTS))
    row = cur.execute(f"SELECT count(*) FROM sqlite_master WHERE name IN ({marks})", _OBJECTS)
    return int(row.fetchone()[0]) == len(_OBJECTS)
