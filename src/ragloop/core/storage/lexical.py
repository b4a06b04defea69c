"""The lexical (BM25) index beside the vectors, inside the catalog database: SQLite FTS5, or a
tsvector column with a GIN index on PostgreSQL. Both are written in the transaction that
writes the chunks, so a document has its lexical entries or none, also after kill -9, and
ingest is incremental (never a rebuild). The objects are made by the catalog's migrations
(``core.storage.migrations``): version 3 on SQLite, version 5 on PostgreSQL.

SQLite. Three objects live in the catalog file:

- ``chunk_lexical_keys``: one row per chunk, an ``INTEGER PRIMARY KEY`` for its chunk id. FTS5
  keys documents by integer rowid, and the chunks table's own rowid is not stable (its primary
  key is a text hash, and VACUUM may renumber rowids of such tables), so the index gets a key
  of its own.
- ``chunks_fts``: an FTS5 table over ``title`` (the heading path) and ``text``, tokenizer
  ``porter unicode61 remove_diacritics 2``, with *external content* (the view
  ``chunks_lexical_source``): it stores the inverted index only, never a second copy of the
  text, and ``integrity-check`` can compare the index with the chunks it should hold.
- triggers on ``chunks`` (insert, delete, update of id/title/text) that write the key and the
  index entry in the statement that writes the chunk. A cascade delete from ``documents``
  fires them too.

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

PostgreSQL. ``chunks.lexical`` is a *stored generated column*, ``setweight(to_tsvector(cfg,
title), 'A') || setweight(to_tsvector(cfg, text), 'B')``, with a GIN index: PostgreSQL computes
it in the statement that writes the chunk, so no trigger or application code can forget it,
and ``ragloop migrate-catalog`` or a plain ``INSERT`` fill it too. ``cfg`` is
``ragloop_english``, a copy of the built-in ``english`` configuration (Snowball stemmer and
stop words) with the ``unaccent`` dictionary in front when that extension can be created, so
accents fold as with FTS5's ``remove_diacritics``. Weights mark the columns: a search limited
to the text matches only lexemes weighted B (``'term':B`` in the tsquery).

PostgreSQL's own rankings (``ts_rank``, ``ts_rank_cd``) know nothing of how rare a term is, so
a question's common word counts as much as its rare one. Instead, the GIN index finds the
chunks holding any of the terms, and one statement scores them with Okapi BM25 (k1 1.2,
b 0.75, the constants FTS5 uses): term frequency from the stored positions, document
frequency counted among those same candidates (exact: a chunk holding a term is always a
candidate), length as the number of distinct lexemes. The collection size and average
length are read exactly on every search below a thousand chunks, and above that estimated
(PostgreSQL's row estimate, a 1% sample) and kept for a minute. Unnesting a chunk's whole
vector to find the query's terms cost three times the rest of the statement, so each vector
is first cut to the query's lexemes (``setweight`` to D, ``ts_filter``). On SciFact this
ranks as well as FTS5 (lexical nDCG@10 0.688 against 0.687; ``ts_rank_cd`` 0.405). Like FTS5
it scores every chunk holding a term, reading each one's stored vector, so common words cost
most on large corpora: a SciFact claim, whose common words make three quarters of the corpus
candidates, took p50 33 ms against FTS5's 4 ms on a busy 2-core machine. The stored vector is
about the size of the text (1.5 KB per SciFact abstract) and the GIN index 1.2 KB more.
``verify`` recomputes every chunk's vector and compares it with the stored one, and checks the
column and the index.
"""

from __future__ import annotations

import logging
import re
import time
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, inspect, text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import SQLAlchemyError

from ragloop.core.errors import InvalidInputError, StoreError

FTS_TABLE = "chunks_fts"
KEYS_TABLE = "chunk_lexical_keys"
SOURCE_VIEW = "chunks_lexical_source"
TOKENIZER = "porter unicode61 remove_diacritics 2"

PG_CONFIG = "ragloop_english"
PG_COLUMN = "lexical"
PG_INDEX = "ix_chunks_lexical"
#: The generated column's expression: the heading path weighted A, the text B.
PG_VECTOR = (
    f"setweight(to_tsvector('{PG_CONFIG}', title), 'A') || "
    f"setweight(to_tsvector('{PG_CONFIG}', text), 'B')"
)
_PG_WEIGHTS = {"title": "A", "text": "B"}
# Okapi BM25's constants, as FTS5's bm25() has them.
BM25_K1 = 1.2
BM25_B = 0.75

log = logging.getLogger(__name__)

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


def query_terms(query: str) -> list[str]:
    """A question's distinct lower-cased terms (runs of word characters) minus stop words."""
    return [t for t in dict.fromkeys(_TERM.findall(query.lower())) if t not in STOP_WORDS]


def _column_names(columns: Sequence[str] | None) -> list[str] | None:
    """``columns`` checked against ``COLUMNS`` and de-duplicated; None stays None (all)."""
    if columns is None:
        return None
    unknown = sorted(set(columns) - set(COLUMNS))
    if unknown or not columns:
        raise InvalidInputError(
            f"unknown lexical column {', '.join(unknown) or '(none given)'}; "
            f"use {', '.join(COLUMNS)}"
        )
    return list(dict.fromkeys(columns))


def match_expression(query: str, columns: Sequence[str] | None = None) -> str | None:
    """The FTS5 MATCH string for a question: its non-stop-word terms, quoted and OR-ed.

    None when nothing is left (empty, only stop words or punctuation). Each term is a run of
    word characters, so it never holds a double quote and quoting makes it a plain string.
    ``columns`` (of ``COLUMNS``) limits the match to those columns with an FTS5 column filter,
    ``text : ( "a" OR "b" )``; None (the default) matches every column.
    """
    names = _column_names(columns)
    terms = query_terms(query)
    if not terms:
        return None
    expr = " OR ".join(f'"{t}"' for t in terms)
    if names is None:
        return expr
    target = names[0] if len(names) == 1 else "{" + " ".join(names) + "}"
    return f"{target} : ( {expr} )"


def tsquery_expression(query: str, columns: Sequence[str] | None = None) -> str | None:
    """The ``to_tsquery`` text for a question on PostgreSQL: the same terms as
    ``match_expression``, quoted and OR-ed, each limited to the weights of ``columns``
    (``'scurvy':B | 'ships':B`` for the text alone). None when no term is left."""
    names = _column_names(columns)
    terms = query_terms(query)
    if not terms:
        return None
    weights = "" if names is None else ":" + "".join(_PG_WEIGHTS[c] for c in names)
    return " | ".join(f"'{t}'{weights}" for t in terms)


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
        conds = _filter_conditions(where, params)
        if conds:
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


def _filter_conditions(where: Mapping[str, Any] | None, params: dict[str, Any]) -> list[str]:
    """SQL equality conditions for the filters the dense search accepts (on ``chunks c`` and
    ``documents d``), their values added to ``params``; InvalidInputError names an unknown one."""
    if not where:
        return []
    unknown = sorted(set(where) - set(_FILTER_COLUMNS))
    if unknown:
        raise InvalidInputError(
            f"unknown filter {', '.join(unknown)}; use {', '.join(_FILTER_COLUMNS)}"
        )
    conds = []
    for i, (key, value) in enumerate(sorted(where.items())):
        conds.append(f"{_FILTER_COLUMNS[key]} = :f{i}")
        params[f"f{i}"] = value
    return conds


def create_sqlite_fts(conn: Connection) -> bool:
    """Create the FTS5 index, its keys, view and triggers in a SQLite catalog that lacks them
    and back-fill it from the existing chunks; returns True when it did.

    Runs in the caller's transaction (a migration step, begun with ``BEGIN IMMEDIATE``), so a
    crash mid-way leaves nothing and concurrent openers wait for each other.
    """
    if _installed(conn):
        return False
    fresh = not _exists(conn, FTS_TABLE)
    for ddl in _DDL:
        conn.exec_driver_sql(ddl)
    if fresh:
        conn.exec_driver_sql(f"DELETE FROM {KEYS_TABLE}")
        conn.exec_driver_sql(
            f"INSERT INTO {KEYS_TABLE}(chunk_id) SELECT id FROM chunks ORDER BY rowid"
        )
        conn.exec_driver_sql(f"INSERT INTO {FTS_TABLE}({FTS_TABLE}) VALUES ('rebuild')")
    return True


def _exists(conn: Connection, name: str) -> bool:
    row = conn.execute(text("SELECT 1 FROM sqlite_master WHERE name = :n"), {"n": name}).first()
    return row is not None


def _installed(conn: Connection) -> bool:
    names = ", ".join(f"'{name}'" for name in _OBJECTS)
    n = conn.exec_driver_sql(f"SELECT count(*) FROM sqlite_master WHERE name IN ({names})")
    return int(n.scalar_one()) == len(_OBJECTS)


# ---- PostgreSQL ----------------------------------------------------------------------------


class PostgresLexicalIndex(LexicalIndex):
    """A tsvector column generated from each chunk, a GIN index, BM25 scoring in SQL (see the
    module docstring). One instance per catalog: it caches the collection statistics."""

    #: Below this many chunks the statistics are read exactly on every search (about a
    #: millisecond); at or above it they are estimated and kept for ``stats_ttl_s``.
    exact_stats_below = 1_000
    stats_ttl_s = 60.0

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._stats: tuple[float, float, float] | None = None  # (n, avgdl, expires)

    def search(
        self,
        query: str,
        k: int,
        where: Mapping[str, Any] | None = None,
        columns: Sequence[str] | None = None,
    ) -> list[tuple[str, float]]:
        """BM25 top-``k``, honouring ``document_id`` / ``source`` equality filters; with
        ``columns``, only terms in those columns match and count."""
        expr = tsquery_expression(query, columns)
        names = _column_names(columns)
        if expr is None or k <= 0:
            return []
        params: dict[str, Any] = {"q": expr, "terms": " ".join(query_terms(query)), "k": k}
        conds = _filter_conditions(where, params)
        vector = f"c.{PG_COLUMN}"
        if names is not None:  # the named columns' positions only
            vector = f"ts_filter({vector}, '{{{','.join(_PG_WEIGHTS[c] for c in names)}}}')"
        # The query's lexemes alone: re-weighted D (no stored position has D), then kept by
        # weight. Unnesting this short vector is a fraction of the cost of the whole one.
        query_only = (
            f"ts_filter(setweight({vector}, 'D', tsvector_to_array(to_tsvector('{PG_CONFIG}', "
            ":terms))), '{D}')"
        )
        join = "LEFT JOIN documents d ON d.id = c.document_id " if "source" in (where or {}) else ""
        extra = "".join(f"AND {cond} " for cond in conds)
        sql = (
            f"WITH tf AS (SELECT c.id, length(c.{PG_COLUMN}) AS dl, u.lexeme, "
            f"cardinality(u.positions) AS tf FROM chunks c {join}"
            f"CROSS JOIN LATERAL unnest({query_only}) AS u "
            f"WHERE c.{PG_COLUMN} @@ to_tsquery('{PG_CONFIG}', :q) {extra}), "
            "df AS (SELECT lexeme, count(*) AS df FROM tf GROUP BY lexeme) "
            "SELECT tf.id, sum(ln(1 + (GREATEST(CAST(:n AS float8), df.df) - df.df + 0.5) "
            "/ (df.df + 0.5)) "
            f"* tf.tf * {BM25_K1 + 1} / (tf.tf + {BM25_K1} * ({1 - BM25_B} + {BM25_B} * tf.dl "
            "/ CAST(:avgdl AS float8)))) AS score "
            "FROM tf JOIN df ON df.lexeme = tf.lexeme "
            "GROUP BY tf.id ORDER BY score DESC, tf.id LIMIT :k"
        )
        try:
            with self.engine.connect() as conn:
                params["n"], params["avgdl"] = self._collection_stats(conn)
                rows = conn.execute(text(sql), params).all()
        except SQLAlchemyError as exc:
            raise StoreError(f"lexical search failed: {exc}") from exc
        return [(str(cid), float(score)) for cid, score in rows]

    def _collection_stats(self, conn: Connection) -> tuple[float, float]:
        """(number of chunks, average distinct lexemes per chunk) for BM25's idf and length
        normalisation: exact on small catalogs, a catalog estimate and a 1% sample on large
        ones, refreshed every ``stats_ttl_s``."""
        now = time.monotonic()
        cached = self._stats
        if cached is not None and cached[0] >= self.exact_stats_below and now < cached[2]:
            return cached[0], cached[1]
        n: float | None = None
        avgdl: float | None = None
        if cached is not None and cached[0] >= self.exact_stats_below:
            n = float(
                conn.execute(
                    text("SELECT reltuples FROM pg_class WHERE oid = CAST('chunks' AS regclass)")
                ).scalar_one()
            )
            avgdl = conn.execute(
                text(f"SELECT avg(length({PG_COLUMN})) FROM chunks TABLESAMPLE SYSTEM (1)")
            ).scalar_one()
        if n is None or n < self.exact_stats_below or avgdl is None:
            n_exact, avgdl = conn.execute(
                text(f"SELECT count(*), avg(length({PG_COLUMN})) FROM chunks")
            ).one()
            n = float(n_exact)
        avg = max(float(avgdl or 0.0), 1.0)
        self._stats = (n, avg, now + self.stats_ttl_s)
        return n, avg

    def count(self) -> int:
        """Chunks with a lexical vector (every chunk: the column is generated)."""
        with self.engine.connect() as conn:
            return int(conn.execute(text(f"SELECT count({PG_COLUMN}) FROM chunks")).scalar_one())

    def verify(self) -> LexicalCheck:
        """Every chunk's stored vector against the one its title and text give now (a vector
        goes stale only if the text search configuration changed), then the column and the
        GIN index themselves: generated, present and valid."""
        try:
            with self.engine.connect() as conn:
                chunks, entries, stale = conn.execute(
                    text(
                        f"SELECT count(*), count({PG_COLUMN}), count(*) FILTER (WHERE "
                        f"{PG_COLUMN} IS DISTINCT FROM {PG_VECTOR}) FROM chunks"
                    )
                ).one()
                problems = _pg_structure_problems(conn)
        except SQLAlchemyError as exc:
            return LexicalCheck(0, 0, 0, 0, False, f"lexical index unreadable: {exc}")
        return LexicalCheck(
            chunks=int(chunks),
            entries=int(entries),
            missing=int(stale),
            orphans=0,
            integrity_ok=not problems,
            error="; ".join(problems) or None,
        )


def _pg_structure_problems(conn: Connection) -> list[str]:
    """What is wrong with the lexical column and its index, in words; empty when nothing."""
    problems = []
    generated = conn.execute(
        text(
            "SELECT attgenerated FROM pg_attribute WHERE attrelid = CAST('chunks' AS regclass) "
            "AND attname = :c AND NOT attisdropped"
        ),
        {"c": PG_COLUMN},
    ).scalar_one_or_none()
    if generated != "s":
        problems.append(f"chunks.{PG_COLUMN} is not a stored generated column")
    valid = conn.execute(
        text(
            "SELECT i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
            "WHERE i.indrelid = CAST('chunks' AS regclass) AND c.relname = :i"
        ),
        {"i": PG_INDEX},
    ).scalar_one_or_none()
    if valid is None:
        problems.append(f"the GIN index {PG_INDEX} is missing")
    elif not valid:
        problems.append(f"the GIN index {PG_INDEX} is invalid (rebuild it with REINDEX)")
    return problems


def install_postgres_lexical(conn: Connection) -> bool:
    """Create the text search configuration, the generated column and its GIN index in a
    PostgreSQL catalog that lacks them, in the caller's transaction (a migration step). Adding
    the column to a table that holds chunks computes every chunk's vector (a table rewrite).
    Returns whether accents fold (``unaccent`` could be used)."""
    unaccent = _unaccent(conn)
    have_config = conn.execute(
        text("SELECT 1 FROM pg_ts_config WHERE cfgname = :n"), {"n": PG_CONFIG}
    ).first()
    if have_config is None:
        conn.execute(
            text(f"CREATE TEXT SEARCH CONFIGURATION {PG_CONFIG} (COPY = pg_catalog.english)")
        )
        if unaccent:
            conn.execute(
                text(
                    f"ALTER TEXT SEARCH CONFIGURATION {PG_CONFIG} ALTER MAPPING FOR hword, "
                    "hword_part, word WITH unaccent, english_stem"
                )
            )
    if PG_COLUMN not in {c["name"] for c in inspect(conn).get_columns("chunks")}:
        conn.execute(
            text(
                f"ALTER TABLE chunks ADD COLUMN {PG_COLUMN} tsvector "
                f"GENERATED ALWAYS AS ({PG_VECTOR}) STORED"
            )
        )
    conn.execute(text(f"CREATE INDEX IF NOT EXISTS {PG_INDEX} ON chunks USING gin ({PG_COLUMN})"))
    return unaccent


def _unaccent(conn: Connection) -> bool:
    """Whether the ``unaccent`` extension is there, creating it when the server has it and the
    role may (it is a trusted extension: the database owner may)."""
    if conn.execute(text("SELECT 1 FROM pg_extension WHERE extname = 'unaccent'")).first():
        return True
    if not conn.execute(
        text("SELECT 1 FROM pg_available_extensions WHERE name = 'unaccent'")
    ).first():
        log.warning("PostgreSQL has no unaccent extension: lexical search keeps accents")
        return False
    try:
        with conn.begin_nested():
            conn.execute(text("CREATE EXTENSION IF NOT EXISTS unaccent"))
    except SQLAlchemyError as exc:
        log.warning("cannot create the unaccent extension (%s): lexical search keeps accents", exc)
        return False
    return True
