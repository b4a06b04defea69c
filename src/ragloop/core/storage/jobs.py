"""Background job rows (ingest now, retraining later): state, progress, result and errors.

States: queued -> running -> succeeded | failed | cancelled (the learning loop adds its own
intermediate states). A job row is written by the worker thread or process that runs it and
read by whoever polls ``GET /v1/jobs/{id}``.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine, insert, select, update
from sqlalchemy.engine import Row

from ragloop.core.errors import NotFoundError
from ragloop.core.storage import schema as t

FINAL_STATES = frozenset({"succeeded", "failed", "cancelled", "promoted", "rejected"})


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
    """Creates and updates job rows."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def create(self, kind: str, params: dict[str, Any] | None = None) -> Job:
        """A new queued job."""
        job = Job(id=uuid.uuid4().hex, kind=kind, state="queued", created_at=time.time())
        job.params = params or {}
        with self.engine.begin() as conn:
            conn.execute(insert(t.jobs).values(**job.__dict__))
        return job

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
            return [_job(r) for r in conn.execute(stmt)]

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

    def unfinished(self, kind: str) -> list[Job]:
        """Jobs of ``kind`` still queued or running, oldest first."""
        stmt = (
            select(t.jobs)
            .where(t.jobs.c.kind == kind, t.jobs.c.state.in_(("queued", "running")))
            .order_by(t.jobs.c.created_at)
        )
        with self.engine.connect() as conn:
            return [_job(r) for r in conn.execute(stmt)]

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
