"""What the console reads and writes beside the service's own stores: labels per miss, the
"not answerable" mark, and the overview's counts."""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import distinct, func, select

from ragloop.core.storage import schema as t
from ragloop.core.storage.querylog import LABELLED_SOURCES, MISS_REASONS, QueryLog, QueryRecord

#: The pair source that marks a miss "not answerable". It is no training source: the labelled
#: source reads only ``LABELLED_SOURCES``, and pseudo-labelling skips every query that has a
#: pair of any source, so a marked miss is kept out of training; ``ragloop pairs`` counts it.
NOT_ANSWERABLE = "not_answerable"
#: Days of misses the overview charts.
OVERVIEW_DAYS = 14


def not_answerable_chunk(query_id: str) -> str:
    """The placeholder chunk id of a mark: one per query, so equal questions each get theirs."""
    return f"{NOT_ANSWERABLE}:{query_id}"


def mark_not_answerable(log: QueryLog, rec: QueryRecord) -> bool:
    """Mark a miss "not answerable"; False when it already was."""
    return log.add_pair(rec.question, not_answerable_chunk(rec.id), NOT_ANSWERABLE, rec.id)


def labels_of(log: QueryLog, query_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
    """For each query that has any: ``{"status": labelled|not_answerable, "chunks": [...]}``."""
    if not query_ids:
        return {}
    stmt = select(
        t.labelled_pairs.c.query_id, t.labelled_pairs.c.chunk_id, t.labelled_pairs.c.source
    ).where(
        t.labelled_pairs.c.query_id.in_(list(query_ids)),
        t.labelled_pairs.c.source.in_([*LABELLED_SOURCES, NOT_ANSWERABLE]),
    )
    out: dict[str, dict[str, Any]] = {}
    with log.engine.connect() as conn:
        for qid, chunk_id, source in conn.execute(stmt):
            entry = out.setdefault(qid, {"status": NOT_ANSWERABLE, "chunks": []})
            if source != NOT_ANSWERABLE:
                entry["status"] = "labelled"
                entry["chunks"].append(chunk_id)
    return out


@dataclass
class Overview:
    """The overview page's numbers."""

    documents: int
    chunks: int
    active_version: str
    queries: int
    misses: int
    labelled_misses: int
    not_answerable: int
    pairs_total: int
    pairs_waiting: int
    days: list[str] = field(default_factory=list)
    per_day: dict[str, dict[str, int]] = field(default_factory=dict)
    reasons: tuple[str, ...] = MISS_REASONS

    @property
    def unlabelled_misses(self) -> int:
        """Misses nobody labelled or marked yet."""
        return max(0, self.misses - self.labelled_misses - self.not_answerable)


def day_of(ts: float) -> str:
    """A unix time's UTC date."""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d")


def overview(log: QueryLog, counts: dict[str, int], active: str, active_since: float) -> Overview:
    """Counts for the overview; ``active_since``: when the serving version was made (pairs
    newer than it are waiting for a retrain)."""
    totals = log.counts()
    miss_ids = select(t.queries.c.id).where(t.queries.c.miss.is_(True))
    with log.engine.connect() as conn:
        by_source: dict[str, int] = dict(
            conn.execute(
                select(t.labelled_pairs.c.source, func.count(distinct(t.labelled_pairs.c.query_id)))
                .where(t.labelled_pairs.c.query_id.in_(miss_ids))
                .group_by(t.labelled_pairs.c.source)
            ).all()
        )
        labelled_queries = conn.execute(
            select(func.count(distinct(t.labelled_pairs.c.query_id))).where(
                t.labelled_pairs.c.query_id.in_(miss_ids),
                t.labelled_pairs.c.source.in_(LABELLED_SOURCES),
            )
        ).scalar_one()
        pairs_total, pairs_waiting = (
            conn.execute(
                select(func.count()).where(t.labelled_pairs.c.source.in_(LABELLED_SOURCES), *extra)
            ).scalar_one()
            for extra in ((), (t.labelled_pairs.c.created_at > active_since,))
        )
    now = time.time()
    days = [day_of(now - 86400 * i) for i in range(OVERVIEW_DAYS - 1, -1, -1)]
    recent, _ = log.find(misses_only=True, since=now - 86400 * OVERVIEW_DAYS, limit=100_000)
    per_day: dict[str, Counter[str]] = defaultdict(Counter)
    for rec in recent:
        per_day[day_of(rec.created_at)].update(rec.miss_reasons)
    return Overview(
        documents=counts.get("documents", 0),
        chunks=counts.get("chunks", 0),
        active_version=active,
        queries=int(totals["queries"]),
        misses=int(totals["misses"]),
        labelled_misses=int(labelled_queries),
        not_answerable=int(by_source.get(NOT_ANSWERABLE, 0)),
        pairs_total=int(pairs_total),
        pairs_waiting=int(pairs_waiting),
        days=days,
        per_day={d: dict(per_day.get(d, Counter())) for d in days},
    )
