"""Copy a whole catalog into another, empty database (``ragloop migrate-catalog``).

Both catalogs are opened first, so both are at the current schema (the source is upgraded as
any ragloop command would). The source is read in one snapshot (a read transaction on SQLite,
REPEATABLE READ on PostgreSQL), so a server writing to it meanwhile cannot make the copy
inconsistent; its later writes are simply not copied. Every table of ``schema.DATA_TABLES`` is
streamed in key order, in batches, into one target transaction: a failure leaves the target
as empty as it was. The target's own lexical index fills itself (triggers on SQLite, the
generated column on PostgreSQL), and so do its migration history and schema version. Then the
counts of both sides are compared, table by table, and the target's lexical index verified.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Integer, Table, func, insert, select, text
from sqlalchemy.engine import Connection

from ragloop.core.errors import ConflictError, StoreError
from ragloop.core.progress import ProgressFn
from ragloop.core.storage import schema as t
from ragloop.core.storage.catalog import Catalog

#: The target's own ``meta`` row; every other key is copied.
OWN_META = ("schema_version",)


@dataclass
class CopyReport:
    """What ``copy_catalog`` did: rows per table on each side, and the verdicts."""

    source: str
    target: str
    tables: dict[str, dict[str, int]] = field(default_factory=dict)
    lexical: dict[str, Any] | None = None
    seconds: float = 0.0

    @property
    def counts_match(self) -> bool:
        """Every table has as many rows in the target as in the source snapshot."""
        return all(n["source"] == n["target"] for n in self.tables.values())

    @property
    def ok(self) -> bool:
        """Counts match and the target's lexical index holds every chunk."""
        return self.counts_match and (self.lexical is None or bool(self.lexical["ok"]))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary."""
        return {
            "source": self.source,
            "target": self.target,
            "tables": self.tables,
            "lexical": self.lexical,
            "seconds": round(self.seconds, 3),
            "counts_match": self.counts_match,
            "ok": self.ok,
        }


def copy_catalog(
    source: Catalog,
    target: Catalog,
    batch_size: int = 1000,
    progress: ProgressFn | None = None,
) -> CopyReport:
    """Copy every row of ``source`` into the empty ``target``; ConflictError when the target
    holds anything, StoreError when a count differs afterwards."""
    started = time.monotonic()
    src_url = source.engine.url.render_as_string(hide_password=True)
    dst_url = target.engine.url.render_as_string(hide_password=True)
    if src_url == dst_url:
        raise ConflictError("the source and the target are the same catalog")
    report = CopyReport(source=src_url, target=dst_url)
    with target.engine.connect() as conn:
        present = {table.name: n for table, n in _counts(conn).items() if n}
    if present:
        held = ", ".join(f"{name} {n}" for name, n in present.items())
        raise ConflictError(
            f"the target catalog {dst_url} is not empty ({held}); copy into an empty database"
        )
    with _snapshot(source) as src, target.engine.begin() as dst:
        totals = _counts(src)
        for table in t.DATA_TABLES:
            total = totals[table]
            done = 0
            if progress:
                progress(table.name, 0, total)
            for rows in _batches(src, table, batch_size):
                dst.execute(insert(table), rows)
                done += len(rows)
                if progress:
                    progress(table.name, done, total)
            report.tables[table.name] = {"source": total}
        if dst.dialect.name == "postgresql":
            _reset_sequences(dst)
    with target.engine.connect() as conn:
        for table, n in _counts(conn).items():
            report.tables[table.name]["target"] = n
    lexical = target.lexical
    if lexical is not None:
        report.lexical = lexical.verify().to_dict()
    report.seconds = time.monotonic() - started
    if not report.counts_match:
        differ = ", ".join(
            f"{name} {n['source']} -> {n['target']}"
            for name, n in report.tables.items()
            if n["source"] != n["target"]
        )
        raise StoreError(f"the copy's row counts differ from the source: {differ}")
    return report


def _counts(conn: Connection) -> dict[Table, int]:
    """Rows per data table; ``meta`` without the rows each catalog keeps for itself."""
    out: dict[Table, int] = {}
    for table in t.DATA_TABLES:
        stmt = select(func.count()).select_from(table)
        if table is t.meta:
            stmt = stmt.where(t.meta.c.key.not_in(OWN_META))
        out[table] = int(conn.execute(stmt).scalar_one())
    return out


@contextmanager
def _snapshot(catalog: Catalog) -> Iterator[Connection]:
    """A connection that sees the catalog as it was at its first read, until it closes."""
    with catalog.engine.connect() as conn:
        if conn.dialect.name == "sqlite":
            conn.exec_driver_sql("BEGIN")  # a WAL read transaction: one snapshot
        else:
            conn = conn.execution_options(isolation_level="REPEATABLE READ")
        try:
            yield conn
        finally:
            conn.rollback()


def _batches(conn: Connection, table: Table, size: int) -> Iterator[list[dict[str, Any]]]:
    """The table's rows in primary-key order, ``size`` at a time, streamed (a server-side
    cursor on PostgreSQL)."""
    stmt = select(table).order_by(*table.primary_key.columns)
    if table is t.meta:
        stmt = stmt.where(t.meta.c.key.not_in(OWN_META))
    result = conn.execute(stmt.execution_options(yield_per=size))
    for part in result.partitions():
        yield [dict(row._mapping) for row in part]


def _reset_sequences(conn: Connection) -> None:
    """Rows copied with their ids leave PostgreSQL's sequences behind; move each to its
    table's largest id so the next insert does not collide."""
    for table in t.DATA_TABLES:
        for column in table.primary_key.columns:
            if isinstance(column.type, Integer) and column.autoincrement is True:
                conn.execute(
                    text(
                        f"SELECT setval(pg_get_serial_sequence('{table.name}', '{column.name}'), "
                        f"COALESCE(max({column.name}), 1), max({column.name}) IS NOT NULL) "
                        f"FROM {table.name}"
                    )
                )
