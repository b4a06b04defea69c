"""Schema migrations: an ordered list of steps, applied when a catalog is opened.

A catalog records its version in ``meta.schema_version`` (what every ragloop reads, so an
older one refuses a newer catalog) and each step it ran in ``schema_migrations``. Opening a
catalog older than ``SCHEMA_VERSION`` runs the missing steps in order, each in its own
transaction that also moves the version, so a crash leaves the catalog at the last complete
step and the next open carries on. Concurrent openers wait for each other: SQLite's
``BEGIN IMMEDIATE`` takes the write lock, PostgreSQL's ``pg_advisory_xact_lock`` a lock of
ours; whoever comes second re-reads the version and finds nothing left to do. An empty
database runs every step, so a new catalog and an upgraded one are built by the same code.

A step may create a table with its current definition (``schema.py``): a later step that adds
a column to it then finds the column there and skips it. So every step is written to be
idempotent on what it creates, and upgrade tests compare an upgraded catalog with a new one.
Both dialects run every step; a step does only what its dialect needs.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from sqlalchemy import Engine, MetaData, Table, delete, insert, inspect, select, text
from sqlalchemy.engine import Connection
from sqlalchemy.schema import CreateTable

from ragloop.core.errors import ConfigError, StoreError
from ragloop.core.storage import schema as t
from ragloop.core.storage.lexical import create_sqlite_fts, install_postgres_lexical

log = logging.getLogger(__name__)

#: The key of the PostgreSQL advisory lock migrations hold (any constant of ours).
PG_LOCK_KEY = 0x7261676C  # "ragl"

DIALECTS = ("sqlite", "postgresql")


@dataclass(frozen=True)
class Migration:
    """One schema step: the version it brings the catalog to and what it does."""

    version: int
    description: str
    apply: Callable[[Connection], None]


def _v1(conn: Connection) -> None:
    t.metadata.create_all(
        conn,
        tables=[
            t.meta,
            t.documents,
            t.chunks,
            t.model_versions,
            t.active_pointer,
            t.vector_journal,
        ],
    )


def _v2(conn: Connection) -> None:
    t.metadata.create_all(
        conn,
        tables=[
            t.queries,
            t.feedback,
            t.labelled_pairs,
            t.jobs,
            t.api_keys,
            t.synthetic_questions,
        ],
    )


def _v3(conn: Connection) -> None:
    if conn.dialect.name == "sqlite":
        create_sqlite_fts(conn)


def _v4(conn: Connection) -> None:
    _add_column(conn, t.queries, "raw_question")


def _v5(conn: Connection) -> None:
    _drop_unique_collection(conn)
    if conn.dialect.name != "postgresql":
        return
    _widen_pg_columns(conn)
    _pg_pair_index(conn)
    if not install_postgres_lexical(conn):
        log.warning("the lexical index on PostgreSQL was built without accent folding")


def _v6(conn: Connection) -> None:
    t.metadata.create_all(conn, tables=[t.leases])


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "documents, chunks, model versions, active pointer, vector journal", _v1),
    Migration(2, "query log, feedback, labelled pairs, jobs, API keys, synthetic questions", _v2),
    Migration(3, "lexical index on SQLite: FTS5 table, keys and triggers on chunks", _v3),
    Migration(4, "queries.raw_question: a follow-up as typed", _v4),
    Migration(
        5,
        "migration history; model versions may share a collection; on PostgreSQL: text "
        "columns, the pair index on md5(question), the lexical index (generated tsvector, GIN)",
        _v5,
    ),
    Migration(6, "leases: one owner across processes and hosts (writer, retrain, scheduler)", _v6),
)


def migrate(engine: Engine) -> list[int]:
    """Bring the catalog behind ``engine`` to ``SCHEMA_VERSION``; returns the versions applied
    (empty when it was current). ConfigError for a newer catalog or another database."""
    dialect = engine.dialect.name
    if dialect not in DIALECTS:
        raise ConfigError(
            f"the catalog supports SQLite and PostgreSQL (postgresql+psycopg://), not {dialect}"
        )
    with engine.connect() as conn:
        current = _check(read_version(conn))
        conn.rollback()
        if current == t.SCHEMA_VERSION:
            return []
        applied: list[int] = []
        for step in MIGRATIONS:
            with _step(conn):
                current = _check(read_version(conn))
                if step.version <= current:
                    continue
                _history(conn, current)
                step.apply(conn)
                _set_version(conn, step)
                applied.append(step.version)
        if applied:
            log.info("catalog schema upgraded to %s (steps %s)", t.SCHEMA_VERSION, applied)
        return applied


def read_version(conn: Connection) -> int:
    """The catalog's schema version; 0 for an empty database."""
    if not inspect(conn).has_table(t.meta.name):
        return 0
    value = conn.execute(
        select(t.meta.c.value).where(t.meta.c.key == "schema_version")
    ).scalar_one_or_none()
    return int(value) if value is not None else 0


def _check(version: int) -> int:
    if version > t.SCHEMA_VERSION:
        raise ConfigError(
            f"catalog schema {version} is newer than this ragloop understands "
            f"({t.SCHEMA_VERSION}); upgrade ragloop"
        )
    return version


@contextmanager
def _step(conn: Connection) -> Iterator[None]:
    """One step's transaction, holding the catalog's migration lock."""
    if conn.dialect.name == "sqlite":
        # pysqlite runs DDL outside a transaction unless one is begun explicitly; foreign keys
        # are off so a table can be rebuilt (checked again before the commit), and that pragma
        # only takes effect outside a transaction.
        conn.exec_driver_sql("PRAGMA foreign_keys=OFF")
        try:
            conn.exec_driver_sql("BEGIN IMMEDIATE")
            try:
                yield
                broken = conn.exec_driver_sql("PRAGMA foreign_key_check").all()
                if broken:
                    raise StoreError(f"a migration step broke foreign keys: {broken[:5]}")
                conn.commit()
            except BaseException:
                conn.rollback()
                raise
        finally:
            conn.exec_driver_sql("PRAGMA foreign_keys=ON")
            conn.commit()
    else:
        with conn.begin():
            conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": PG_LOCK_KEY})
            yield


def _history(conn: Connection, current: int) -> None:
    """Create the history table if missing; steps a catalog ran before it existed are listed
    without a time."""
    if inspect(conn).has_table(t.schema_migrations.name):
        return
    t.schema_migrations.create(conn)
    rows = [
        {"version": m.version, "description": m.description, "applied_at": None}
        for m in MIGRATIONS
        if m.version <= current
    ]
    if rows:
        conn.execute(insert(t.schema_migrations), rows)


def _set_version(conn: Connection, step: Migration) -> None:
    conn.execute(delete(t.meta).where(t.meta.c.key == "schema_version"))
    conn.execute(insert(t.meta).values(key="schema_version", value=str(step.version)))
    # a step that runs again (a catalog whose version was set back by hand) is recorded anew
    version = t.schema_migrations.c.version
    conn.execute(delete(t.schema_migrations).where(version == step.version))
    conn.execute(
        insert(t.schema_migrations).values(
            version=step.version, description=step.description, applied_at=time.time()
        )
    )


def history(conn: Connection) -> list[dict[str, object]]:
    """The steps a catalog ran, oldest first (``applied_at`` None: before the history)."""
    if not inspect(conn).has_table(t.schema_migrations.name):
        return []
    rows = conn.execute(select(t.schema_migrations).order_by(t.schema_migrations.c.version))
    return [dict(r._mapping) for r in rows]


# ---- what the steps share -------------------------------------------------------------------


def _add_column(conn: Connection, table: Table, name: str) -> None:
    """``ALTER TABLE ... ADD COLUMN`` unless the table has it (nullable: every row is kept)."""
    if name in {c["name"] for c in inspect(conn).get_columns(table.name)}:
        return
    kind = table.c[name].type.compile(dialect=conn.dialect)
    conn.exec_driver_sql(f"ALTER TABLE {table.name} ADD COLUMN {name} {kind}")


def _drop_unique_collection(conn: Connection) -> None:
    """Schema 1 made ``model_versions.collection`` unique; a query-only version shares its
    parent's collection, so schema 2 dropped that, but only from new catalogs: one made by
    schema 1 kept it until version 5."""
    unique = [
        u
        for u in inspect(conn).get_unique_constraints(t.model_versions.name)
        if u["column_names"] == ["collection"]
    ]
    if not unique:
        return
    if conn.dialect.name == "postgresql":
        for u in unique:
            conn.exec_driver_sql(f'ALTER TABLE model_versions DROP CONSTRAINT "{u["name"]}"')
        return
    # SQLite cannot drop a constraint: rebuild the table (foreign keys are off in the step).
    new = t.model_versions.to_metadata(MetaData(), name="model_versions__new")
    conn.execute(CreateTable(new))
    cols = ", ".join(c.name for c in t.model_versions.c)
    conn.exec_driver_sql(
        f"INSERT INTO model_versions__new ({cols}) SELECT {cols} FROM model_versions"
    )
    conn.exec_driver_sql("DROP TABLE model_versions")
    conn.exec_driver_sql("ALTER TABLE model_versions__new RENAME TO model_versions")


def _widen_pg_columns(conn: Connection) -> None:
    """PostgreSQL catalogs made before version 5 have VARCHAR(n) and INTEGER where the tables
    now say TEXT and BIGINT (see ``schema.key_type``, ``schema.size_type``): change them
    (VARCHAR to TEXT rewrites nothing; INTEGER to BIGINT rewrites the table)."""
    insp = inspect(conn)
    for table in t.metadata.sorted_tables:
        if not insp.has_table(table.name):
            continue
        have = {c["name"]: c["type"] for c in insp.get_columns(table.name)}
        for column in table.c:
            want = column.type.compile(dialect=conn.dialect)
            got = have.get(column.name)
            if got is None:
                continue
            got_sql = got.compile(dialect=conn.dialect)
            if (want, got_sql.split("(")[0]) in (("TEXT", "VARCHAR"), ("BIGINT", "INTEGER")):
                conn.exec_driver_sql(
                    f"ALTER TABLE {table.name} ALTER COLUMN {column.name} TYPE {want}"
                )


def _pg_pair_index(conn: Connection) -> None:
    """Replace a B-tree unique constraint on the whole question (too long a question cannot be
    indexed) by the unique index on its md5 that ``schema.labelled_pairs`` declares."""
    insp = inspect(conn)
    for u in insp.get_unique_constraints(t.labelled_pairs.name):
        if u["name"] == "uq_pair":
            conn.exec_driver_sql("ALTER TABLE labelled_pairs DROP CONSTRAINT uq_pair")
    conn.exec_driver_sql(
        "CREATE UNIQUE INDEX IF NOT EXISTS uq_pair ON labelled_pairs "
        "(md5(question), chunk_id, source)"
    )
