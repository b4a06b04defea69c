"""The query log, misses, feedback and labelled pairs, in the catalog's database.

A query is a miss when retrieval found nothing good enough (``low_score``), when the dense and
lexical retrievers disagree (``no_overlap``, ``weak_top``; see ``core.calibration``), when the
generator said the documents do not hold the answer (``no_answer``), or when a user disliked
the answer (``negative_feedback``). Feedback that names the right chunks becomes a labelled pair.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import ColumnElement, Engine, func, insert, select, update
from sqlalchemy.engine import Row

from ragloop.core.errors import InvalidInputError, NotFoundError
from ragloop.core.storage import schema as t
from ragloop.core.storage.catalog import insert_ignoring_conflicts

MISS_REASONS = ("low_score", "no_overlap", "weak_top", "no_answer", "negative_feedback")
#: Pair sources that are human truth: user feedback and admin-imported judgements
#: (``ragloop pairs import``); the ``labelled`` retrain source trains on both.
FEEDBACK_SOURCE = "feedback"
IMPORT_SOURCE = "import"
LABELLED_SOURCES = (FEEDBACK_SOURCE, IMPORT_SOURCE)


@dataclass
class QueryRecord:
    """One logged query; ``question`` is the text retrieval used (and training learns from)."""

    id: str
    created_at: float
    question: str
    k: int
    model_version: str
    generator: str
    answer: str
    retrieved: list[tuple[str, float]]
    top_score: float | None
    miss: bool
    miss_reasons: list[str]
    latency_ms: float
    generator_error: str | None = None
    filters: dict[str, Any] = field(default_factory=dict)
    conversation_id: str | None = None
    client: str | None = None
    #: What the user typed when it differs from ``question`` (a follow-up that retrieval saw
    #: rewritten to stand alone, see ``core.condense``); None when they are the same.
    raw_question: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return dict(self.__dict__) | {"retrieved": [list(r) for r in self.retrieved]}


class QueryLog:
    """Writes and reads queries, feedback and labelled pairs."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def log(self, rec: QueryRecord) -> None:
        """Store a query as it was answered."""
        with self.engine.begin() as conn:
            conn.execute(insert(t.queries).values(**_values(rec)))

    def new_id(self) -> str:
        """A fresh query id."""
        return uuid.uuid4().hex

    def get(self, query_id: str) -> QueryRecord:
        """One query; NotFoundError when the id is unknown."""
        with self.engine.connect() as conn:
            row = conn.execute(select(t.queries).where(t.queries.c.id == query_id)).first()
        if row is None:
            raise NotFoundError(f"unknown query_id {query_id!r}")
        return _record(row)

    def find(
        self,
        *,
        misses_only: bool = False,
        reason: str | None = None,
        since: float | None = None,
        until: float | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> tuple[list[QueryRecord], int]:
        """Queries newest first with the total matching count; filters by miss reason and time."""
        if reason is not None and reason not in MISS_REASONS:
            raise InvalidInputError(
                f"unknown miss reason {reason!r}; known: {', '.join(MISS_REASONS)}"
            )
        cond: list[ColumnElement[bool]] = []
        if misses_only or reason:
            cond.append(t.queries.c.miss.is_(True))
        if since is not None:
            cond.append(t.queries.c.created_at >= since)
        if until is not None:
            cond.append(t.queries.c.created_at < until)
        stmt = select(t.queries).where(*cond).order_by(t.queries.c.created_at.desc())
        with self.engine.connect() as conn:
            rows = [_record(r) for r in conn.execute(stmt)] if reason else None
            if rows is not None:
                # JSON containment differs across databases; reasons are few, filter here.
                matching = [r for r in rows if reason in r.miss_reasons]
                return matching[offset : offset + limit], len(matching)
            total = conn.execute(
                select(func.count()).select_from(t.queries).where(*cond)
            ).scalar_one()
            page = [_record(r) for r in conn.execute(stmt.limit(limit).offset(offset))]
        return page, int(total)

    def add_feedback(
        self,
        query_id: str,
        rating: str,
        relevant_chunk_ids: Sequence[str] = (),
        comment: str | None = None,
    ) -> QueryRecord:
        """Record feedback; ``down`` marks the query a miss, named chunks become labelled pairs."""
        rec = self.get(query_id)
        now = time.time()
        with self.engine.begin() as conn:
            conn.execute(
                insert(t.feedback).values(
                    query_id=query_id,
                    rating=rating,
                    comment=comment,
                    relevant_chunk_ids=list(relevant_chunk_ids),
                    created_at=now,
                )
            )
            if rating == "down" and "negative_feedback" not in rec.miss_reasons:
                rec.miss_reasons = [*rec.miss_reasons, "negative_feedback"]
                rec.miss = True
                conn.execute(
                    update(t.queries)
                    .where(t.queries.c.id == query_id)
                    .values(miss=True, miss_reasons=rec.miss_reasons)
                )
        for chunk_id in dict.fromkeys(relevant_chunk_ids):
            self.add_pair(rec.question, chunk_id, FEEDBACK_SOURCE, query_id)
        return rec

    def clear_negative_feedback(self, query_id: str) -> None:
        """Undo a dislike (a client withdrew it): the query is a miss only for other reasons."""
        rec = self.get(query_id)
        reasons = [r for r in rec.miss_reasons if r != "negative_feedback"]
        with self.engine.begin() as conn:
            conn.execute(
                update(t.queries)
                .where(t.queries.c.id == query_id)
                .values(miss=bool(reasons), miss_reasons=reasons)
            )

    def add_pair(self, question: str, chunk_id: str, source: str, query_id: str | None) -> bool:
        """Store a (question, chunk) pair once; returns False when it was already there."""
        row = {
            "query_id": query_id,
            "question": question,
            "chunk_id": chunk_id,
            "source": source,
            "created_at": time.time(),
        }
        with self.engine.begin() as conn:
            return insert_ignoring_conflicts(conn, t.labelled_pairs, [row]) == 1

    def pairs(self, source: str | Sequence[str] | None = None) -> list[dict[str, Any]]:
        """Labelled pairs, oldest first; ``source`` keeps one source (or any of several)."""
        stmt = select(t.labelled_pairs).order_by(t.labelled_pairs.c.id)
        if source:
            names = [source] if isinstance(source, str) else list(source)
            stmt = stmt.where(t.labelled_pairs.c.source.in_(names))
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(stmt)]

    def counts(self) -> dict[str, Any]:
        """Totals of queries and misses by reason (for metrics and status)."""
        with self.engine.connect() as conn:
            total = conn.execute(select(func.count()).select_from(t.queries)).scalar_one()
            reasons = conn.execute(
                select(t.queries.c.miss_reasons).where(t.queries.c.miss.is_(True))
            ).all()
        by_reason = {r: 0 for r in MISS_REASONS}
        for (rs,) in reasons:
            for r in rs or []:
                by_reason[r] = by_reason.get(r, 0) + 1
        return {"queries": int(total), "misses": len(reasons), "misses_by_reason": by_reason}

    def misses_since(self, since: float) -> int:
        """How many queries logged at or after ``since`` (epoch seconds) were flagged misses:
        the scheduler's trigger, counted in the catalog so every replica sees the same number."""
        with self.engine.connect() as conn:
            return int(
                conn.execute(
                    select(func.count())
                    .select_from(t.queries)
                    .where(t.queries.c.miss.is_(True), t.queries.c.created_at >= since)
                ).scalar_one()
            )


def _values(r: QueryRecord) -> dict[str, Any]:
    out = dict(r.__dict__)
    out["retrieved"] = [[cid, float(s)] for cid, s in r.retrieved]
    return out


def _record(row: Row[Any]) -> QueryRecord:
    m = row._mapping
    return QueryRecord(
        id=m["id"],
        created_at=m["created_at"],
        question=m["question"],
        k=m["k"],
        model_version=m["model_version"],
        generator=m["generator"],
        answer=m["answer"],
        retrieved=[(c, float(s)) for c, s in (m["retrieved"] or [])],
        top_score=m["top_score"],
        miss=bool(m["miss"]),
        miss_reasons=list(m["miss_reasons"] or []),
        latency_ms=m["latency_ms"],
        generator_error=m["generator_error"],
        filters=dict(m["filters"] or {}),
        conversation_id=m["conversation_id"],
        client=m["client"],
        raw_question=m["raw_question"],
    )
