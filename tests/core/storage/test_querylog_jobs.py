"""The query log, feedback, labelled pairs and job rows, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest

from ragloop.core.errors import InvalidInputError, NotFoundError
from ragloop.core.storage.catalog import Catalog
from ragloop.core.storage.jobs import JobStore
from ragloop.core.storage.querylog import QueryLog, QueryRecord


def _rec(qid: str, at: float, reasons: list[str], **kw: object) -> QueryRecord:
    return QueryRecord(
        id=qid,
        created_at=at,
        question=f"question {qid}",
        k=5,
        model_version="base",
        generator="extractive",
        answer="an answer",
        retrieved=[("c1", 0.5), ("c2", 0.25)],
        top_score=0.5,
        miss=bool(reasons),
        miss_reasons=reasons,
        latency_ms=3.5,
        **kw,  # type: ignore[arg-type]
    )


def test_queries_misses_feedback_and_pairs(catalog: Catalog) -> None:
    log = QueryLog(catalog.engine)
    log.log(_rec("q1", 1.0, [], filters={"source": "a.txt"}, conversation_id="conv"))
    log.log(_rec("q2", 2.0, ["low_score"], raw_question="Why?", client="k1"))
    log.log(_rec("q3", 3.0, ["no_answer", "weak_top"]))
    got = log.get("q2")
    assert (got.retrieved, got.raw_question, got.client) == (
        [("c1", 0.5), ("c2", 0.25)],
        "Why?",
        "k1",
    )
    assert log.get("q1").filters == {"source": "a.txt"}
    with pytest.raises(NotFoundError):
        log.get("nope")
    page, total = log.find(limit=2)
    assert [r.id for r in page] == ["q3", "q2"] and total == 3
    assert [r.id for r in log.find(misses_only=True)[0]] == ["q3", "q2"]
    assert [r.id for r in log.find(reason="no_answer")[0]] == ["q3"]
    assert [r.id for r in log.find(since=2.0, until=3.0)[0]] == ["q2"]
    with pytest.raises(InvalidInputError):
        log.find(reason="bad")
    # a dislike naming the right chunk: a miss and a labelled pair, once
    rec = log.add_feedback("q1", "down", ["c2", "c2"], comment="wrong")
    assert rec.miss and rec.miss_reasons == ["negative_feedback"]
    log.add_feedback("q1", "down", ["c2"])
    assert [(p["question"], p["chunk_id"], p["source"]) for p in log.pairs()] == [
        ("question q1", "c2", "feedback")
    ]
    assert log.add_pair("question q1", "c2", "import", None)
    assert [p["source"] for p in log.pairs(["import"])] == ["import"]
    counts = log.counts()
    assert counts["queries"] == 3 and counts["misses"] == 3
    assert counts["misses_by_reason"]["negative_feedback"] == 1
    log.clear_negative_feedback("q1")
    assert not log.get("q1").miss and log.get("q1").miss_reasons == []


def test_job_rows(catalog: Catalog) -> None:
    jobs = JobStore(catalog.engine)
    first = jobs.create("ingest", {"paths": ["/x"]})
    second = jobs.create("retrain")
    jobs.update(first.id, state="running", progress=0.5, message="half")
    got = jobs.get(first.id)
    assert (got.state, got.progress, got.params, got.started_at is not None) == (
        "running",
        0.5,
        {"paths": ["/x"]},
        True,
    )
    assert [j.id for j in jobs.unfinished("ingest")] == [first.id]
    assert {j.id for j in jobs.recent()} == {first.id, second.id}
    assert [j.id for j in jobs.recent("retrain")] == [second.id]
    jobs.update(second.id, state="succeeded", result={"ok": True}, errors=[{"e": 1}])
    done = jobs.get(second.id)
    assert done.done and done.result == {"ok": True} and done.finished_at is not None
    assert jobs.fail_unfinished("ingest", "server restarted") == 1
    assert jobs.get(first.id).state == "failed"
    with pytest.raises(NotFoundError):
        jobs.get("nope")
