"""Background job rows (ingest now, retraining later): state, progress, result and errors.

States: queued -> running -> succeeded | failed | cancelled (the learning loop adds its own
intermediate states). A job row is written by the worker thread or process that runs it and
read by whoever polls ``GET /v1/jobs/{id}``.

The one-job rule: with ``leases``, a kind in ``ONE_AT_A_TIME`` runs one job at a time across
every process on the catalog. ``create`` takes the lease ``job:<kind>`` and inserts the row in
one transaction, or raises ConflictError naming the job that runs; the final state releases
the lease. A job whose process died keeps its row unfinished but loses its lease after the
TTL: it is marked failed the next time the jobs of its kind are read.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine, delete, insert, select, update
from sqlalchemy.engine import Connection, Row

from ragloop.core.errors import ConflictError, NotFoundError
from ragloop.core.storage import schema as t
from ragloop.core.storage.leases import Leases

FINAL_STATES = frozenset({"succeeded", "failed", "cancelled", "promoted", "rejected"})
#: Kinds that run one job at a time across processes (when the store has leases).
ONE_AT_A_TIME = frozenset({"retrain"})
#: Why a job whose process died was failed.
ORPHANED = "the process running this job stopped (its lease expired); the old model stayed active"


def job_lease(kind: str) -> str:
    """The lease name of a one-at-a-time kind."""
    return f"job:{kind}"


@dataclass
class Job:
    """One job's row."""

    id: str
    kind: str
    state: str
    created_at: float
    started_at: float | None = None
    finished_at: float | None = None
    progress: float = 0.0
    message: str = ""
    params: dict[str, Any] = field(default_factory=dict)
    result: dict[str, Any] = field(default_factory=dict)
    errors: list[dict[str, Any]] = field(default_factory=list)

    @property
    def done(self) -> bool:
        """True once the job reached a final state."""
        return self.state in FINAL_STATES

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return dict(self.__dict__) | {"done": self.done}


class JobStore:
    """Creates and updates job rows; with ``leases``, enforces the one-job rule."""

    def __init__(self, engine: Engine, leases: Leases | None = None) -> None:
        self.engine = engine
        self.leases = leases

    def _exclusive(self, kind: str) -> Leases | None:
        return self.leases if kind in ONE_AT_A_TIME else None

    def create(self, kind: str, params: dict[str, Any] | None = None) -> Job:
        """A new queued job; ConflictError when ``kind`` is one-at-a-time and a job of it runs
        in any process."""
        job = Job(id=uuid.uuid4().hex, kind=kind, state="queued", created_at=time.time())
        job.params = params or {}
        leases = self._exclusive(kind)
        with self.engine.begin() as conn:
            if leases is not None:
                self._claim(leases, kind, conn)
            conn.execute(insert(t.jobs).values(**job.__dict__))
        return job

    def _claim(self, leases: Leases, kind: str, conn: Connection) -> None:
        """Take ``job:<kind>`` in the caller's transaction, or raise ConflictError."""
        name = job_lease(kind)
        had = leases.holds(name)
        won = leases.try_acquire(name, conn)
        busy = self._unfinished(conn, kind)
        if won and not had and busy:
            # The lease was free, so nobody runs these: their process died.
            self._fail(conn, [j.id for j in busy], ORPHANED)
            return
        if busy:
            job = busy[-1]
            raise ConflictError(f"{kind} job {job.id} is still {job.state}; one at a time")
        if not won:
            # A live lease without an unfinished job: its job ended where the lease was not
            # known (another process wrote the final state). Nothing runs, so take it over.
            conn.execute(delete(t.leases).where(t.leases.c.name == name))
            leases.try_acquire(name, conn)

    def adopt(self, kind: str) -> bool:
        """Take ``job:<kind>`` for unfinished jobs this process resumes after a restart;
        True when it did (released again when they end)."""
        leases = self._exclusive(kind)
        if leases is None:
            return False
        name = job_lease(kind)
        if not leases.try_acquire(name):
            return False
        with self.engine.connect() as conn:
            if self._unfinished(conn, kind):
                return True
        leases.release(name)
        return False

    def get(self, job_id: str) -> Job:
        """One job; NotFoundError when unknown."""
        with self.engine.connect() as conn:
            row = conn.execute(select(t.jobs).where(t.jobs.c.id == job_id)).first()
        if row is None:
            raise NotFoundError(f"unknown job {job_id!r}")
        return _job(row)

    def recent(self, kind: str | None = None, limit: int = 50) -> list[Job]:
        """Jobs newest first."""
        stmt = select(t.jobs).order_by(t.jobs.c.created_at.desc()).limit(limit)
        if kind:
            stmt = stmt.where(t.jobs.c.kind == kind)
        with self.engine.connect() as conn:
            found = [_job(r) for r in conn.execute(stmt)]
        if self._reap([j for j in found if not j.done]):
            with self.engine.connect() as conn:
                found = [_job(r) for r in conn.execute(stmt)]
        return found

    def _reap(self, unfinished: list[Job]) -> bool:
        """Fail unfinished one-at-a-time jobs nobody holds the lease of; True when any."""
        if self.leases is None:
            return False
        kinds = {j.kind for j in unfinished if j.kind in ONE_AT_A_TIME}
        reaped = False
        for kind in kinds:
            if self.leases.holder(job_lease(kind)) is not None:
                continue
            with self.engine.begin() as conn:
                # Under the lease, so a job created meanwhile is never taken for an orphan.
                if not self.leases.try_acquire(job_lease(kind), conn):
                    continue
                orphans = self._unfinished(conn, kind)
                self._fail(conn, [j.id for j in orphans], ORPHANED)
                self.leases.release(job_lease(kind), conn)
            reaped = reaped or bool(orphans)
        return reaped

    def update(self, job_id: str, **values: Any) -> None:
        """Set fields of a job row; ``state`` changes stamp start and finish times."""
        state = values.get("state")
        now = time.time()
        if state == "running":
            values.setdefault("started_at", now)
        if state in FINAL_STATES:
            values.setdefault("finished_at", now)
        with self.engine.begin() as conn:
            conn.execute(update(t.jobs).where(t.jobs.c.id == job_id).values(**values))
            if state in FINAL_STATES and self.leases is not None:
                kind = conn.execute(
                    select(t.jobs.c.kind).where(t.jobs.c.id == job_id)
                ).scalar_one_or_none()
                if kind in ONE_AT_A_TIME and not self._unfinished(conn, str(kind)):
                    self.leases.release(job_lease(str(kind)), conn)

    def unfinished(self, kind: str) -> list[Job]:
        """Jobs of ``kind`` still queued or running, oldest first."""
        stmt = (
            select(t.jobs)
            .where(t.jobs.c.kind == kind, t.jobs.c.state.in_(("queued", "running")))
            .order_by(t.jobs.c.created_at)
        )
        with self.engine.connect() as conn:
            return [_job(r) for r in conn.execute(stmt)]

    @staticmethod
    def _unfinished(conn: Connection, kind: str) -> list[Job]:
        stmt = (
            select(t.jobs)
            .where(t.jobs.c.kind == kind, t.jobs.c.state.not_in(FINAL_STATES))
            .order_by(t.jobs.c.created_at)
        )
        return [_job(r) for r in conn.execute(stmt)]

    @staticmethod
    def _fail(conn: Connection, ids: list[str], message: str) -> None:
        if ids:
            conn.execute(
                update(t.jobs)
                .where(t.jobs.c.id.in_(ids))
                .values(state="failed", message=message, finished_at=time.time())
            )

    def fail_unfinished(self, kind: str, message: str) -> int:
        """Mark jobs left queued or running by a dead process as failed; returns how many."""
        with self.engine.begin() as conn:
            res = conn.execute(
                update(t.jobs)
                .where(t.jobs.c.kind == kind, t.jobs.c.state.in_(("queued", "running")))
                .values(state="failed", message=message, finished_at=time.time())
            )
        return int(res.rowcount or 0)


def _job(row: Row[Any]) -> Job:
    return Job(**dict(row._mapping))
