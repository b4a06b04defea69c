"""Leases in the catalog: one owner at a time across any number of processes and hosts.

A lease is a row of ``leases`` (name, owner, expires_at). Acquiring is one statement, an
insert that takes the row over only when it has expired or is already ours
(``INSERT ... ON CONFLICT (name) DO UPDATE ... WHERE``, the same on SQLite and PostgreSQL), so
two contenders can never both win. The owner renews what it holds from a heartbeat thread
every third of the TTL; a process that dies stops renewing, and its leases expire after the
TTL, whatever killed it. Time is the database's clock on PostgreSQL (hosts may disagree), the
local clock on SQLite (one host).

Names in use: ``writer`` (ingest into a Chroma server), ``job:retrain`` (the one retrain job),
``scheduler`` (the replica whose scheduler looks at the triggers).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from typing import Any

from sqlalchemy import Engine, delete, func, literal, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection
from sqlalchemy.sql.elements import ColumnElement

from ragloop.core.storage import schema as t

log = logging.getLogger(__name__)

#: Seconds a lease lasts without a renewal (``RAGLOOP_LEASE_TTL_S``).
DEFAULT_TTL_S = 30.0


def new_owner() -> str:
    """An owner id naming this host and process, unique per ``Leases`` object."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class Leases:
    """Acquire, renew and release named leases for one owner; renews them in the background."""

    def __init__(self, engine: Engine, ttl_s: float = DEFAULT_TTL_S, owner: str | None = None):
        if ttl_s <= 0:
            raise ValueError("a lease TTL must be positive")
        self.engine = engine
        self.ttl_s = ttl_s
        self.owner = owner or new_owner()
        self._held: set[str] = set()
        self._mutex = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # ---- one statement each -----------------------------------------------------------------

    def _now(self, conn: Connection) -> ColumnElement[Any]:
        if conn.dialect.name == "postgresql":
            return func.extract("epoch", func.clock_timestamp())
        return literal(time.time())

    def try_acquire(self, name: str, conn: Connection | None = None) -> bool:
        """Take ``name`` if it is free, expired or already ours; True when we hold it now.
        With ``conn``, inside the caller's transaction."""
        if conn is None:
            with self.engine.begin() as own:
                return self.try_acquire(name, own)
        now = self._now(conn)
        values = {"name": name, "owner": self.owner, "expires_at": now + self.ttl_s}
        dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
        stmt = dialect.insert(t.leases).values(**values)
        stmt = stmt.on_conflict_do_update(
            index_elements=[t.leases.c.name],
            set_={"owner": stmt.excluded.owner, "expires_at": stmt.excluded.expires_at},
            where=(t.leases.c.expires_at < now) | (t.leases.c.owner == self.owner),
        )
        # RETURNING, not rowcount: drivers disagree on the count of an upsert that did nothing
        won = conn.execute(stmt.returning(t.leases.c.owner)).first() is not None
        if won:
            with self._mutex:
                self._held.add(name)
            self._start_heartbeat()
        return won

    def renew(self, name: str) -> bool:
        """Push ``name``'s expiry a TTL ahead; False (and forgotten) when it is no longer ours."""
        with self.engine.begin() as conn:
            res = conn.execute(
                update(t.leases)
                .where(t.leases.c.name == name, t.leases.c.owner == self.owner)
                .values(expires_at=self._now(conn) + self.ttl_s)
            )
        if not res.rowcount:
            with self._mutex:
                self._held.discard(name)
            return False
        return True

    def release(self, name: str, conn: Connection | None = None) -> None:
        """Give ``name`` up (nothing happens when it is not ours)."""
        with self._mutex:
            self._held.discard(name)
        stmt = delete(t.leases).where(t.leases.c.name == name, t.leases.c.owner == self.owner)
        if conn is not None:
            conn.execute(stmt)
            return
        with self.engine.begin() as own:
            own.execute(stmt)

    def holder(self, name: str) -> tuple[str, float] | None:
        """(owner, seconds left) of a live lease on ``name``, or None when nobody holds it."""
        with self.engine.connect() as conn:
            now = self._now(conn)
            row = conn.execute(
                select(t.leases.c.owner, t.leases.c.expires_at - now).where(
                    t.leases.c.name == name, t.leases.c.expires_at >= now
                )
            ).first()
        return None if row is None else (str(row[0]), float(row[1]))

    def holds(self, name: str) -> bool:
        """Whether this owner holds ``name`` (as far as the last renewal knows)."""
        with self._mutex:
            return name in self._held

    # ---- the heartbeat ------------------------------------------------------------------------

    def _start_heartbeat(self) -> None:
        with self._mutex:
            if self._thread is not None or self._stop.is_set():
                return
            self._thread = threading.Thread(target=self._beat, daemon=True, name="lease-heartbeat")
            self._thread.start()

    def _beat(self) -> None:
        while not self._stop.wait(self.ttl_s / 3):
            with self._mutex:
                names = sorted(self._held)
            for name in names:
                try:
                    if not self.renew(name):
                        log.warning("lease %r was lost (expired and taken over)", name)
                except Exception as exc:  # a database hiccup: try again on the next beat
                    log.warning("renewing lease %r failed: %s", name, exc)

    def close(self) -> None:
        """Stop renewing and release everything held."""
        self._stop.set()
        with self._mutex:
            names = sorted(self._held)
        for name in names:
            try:
                self.release(name)
            except Exception as exc:  # the database may be gone; the lease then just expires
                log.warning("releasing lease %r failed: %s", name, exc)
        if self._thread is not None:
            self._thread.join(timeout=5)
