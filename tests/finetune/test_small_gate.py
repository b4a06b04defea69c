"""A gate that can judge a small deployment: enough non-copying questions from documents kept
out of training, or a job that ends not promoted naming what is missing; hard negatives come
through the serving retriever (fake embedder, fast)."""

import threading
from pathlib import Path
from typing import Any

import pytest

from ragloop.core.runtime import Runtime
from ragloop.core.storage.jobs import JobStore
from ragloop.core.storage.querylog import QueryLog
from ragloop.finetune import pairs as pairs_module
from ragloop.finetune.options import RetrainOptions
from ragloop.finetune.pairs import build_training_set
from ragloop.finetune.retrain import RetrainManager
from ragloop.ingest.pipeline import Ingestor


@pytest.fixture
def fake_runtime(fake_runtime_any: Runtime) -> Runtime:
    """Every test here runs once on a SQLite catalog and once on a PostgreSQL one."""
    return fake_runtime_any


def _guides(rt: Runtime, root: Path, n: int) -> list[str]:
    """``n`` markdown guides with two headed sections each; returns their document ids."""
    root.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        (root / f"guide{i}.md").write_text(
            f"# Guide {i}\n\n## How sailors avoid scurvy {i}\n\n"
            "Sailors ate citrus fruit on long ocean voyages to get vitamin C.\n\n"
            f"## Where coral reefs grow {i}\n\n"
            "Coral reef systems grow in warm shallow ocean water near the coast.\n"
        )
    Ingestor(rt).ingest([root])
    return sorted({c.document_id for b in rt.catalog.iter_chunks() for c in b})


def _label(rt: Runtime, log: QueryLog, docs: list[str], n: int = 10) -> None:
    """One feedback pair on each of the first ``n`` documents' first chunk."""
    for i, doc in enumerate(docs[:n]):
        log.add_pair(
            f"why did sailors get scurvy {i}", rt.catalog.chunks_of(doc)[0].id, "feedback", None
        )


def test_ten_labelled_pairs_and_headings_give_the_gate_thirty_questions(
    fake_runtime: Runtime, tmp_path: Path
) -> None:
    docs = _guides(fake_runtime, tmp_path / "docs", 100)
    log = QueryLog(fake_runtime.catalog.engine)
    _label(fake_runtime, log, docs)
    options = RetrainOptions(hard_negatives=False, synthetic_per_chunk=2)
    data = build_training_set(fake_runtime, log, options, None)
    m = data.manifest
    assert len(data.heldout) >= 30 and "gate_shortfall" not in m
    # 2 of the 10 labelled pairs are held out; the rest are one heading per gate-only document,
    # which is half of the 90 documents no label points to
    assert m["gate_questions"] == {"labelled": 2, "synthetic": 45}
    chunks = {c.id: c for b in fake_runtime.catalog.iter_chunks() for c in b}
    gate_docs = set()
    for question, (chunk_id,) in data.heldout:
        if data.origins[question] == "synthetic":
            assert chunks[chunk_id].title.endswith(" > " + question)  # a heading, not a crop
            gate_docs.add(chunks[chunk_id].document_id)
    assert len(gate_docs) == 45 and not gate_docs & set(docs[:10])
    # no pair of a gate-only document is trained on, crops included
    assert not {chunks[p.chunk_id].document_id for p in data.train} & gate_docs
    # crops (a second question per chunk) are trained on, never held out
    crops = {p.question for p in data.train if p.copies}
    assert crops and not crops & {q for q, _ in data.heldout}


def test_too_few_questions_end_the_job_not_promoted_naming_what_is_missing(
    fake_runtime: Runtime, tmp_path: Path
) -> None:
    docs = _guides(fake_runtime, tmp_path / "docs", 20)
    log = QueryLog(fake_runtime.catalog.engine)
    _label(fake_runtime, log, docs)
    jobs = JobStore(fake_runtime.catalog.engine)
    manager = RetrainManager(fake_runtime, log, jobs, threading.Lock(), lambda: None)
    job = manager.start(RetrainOptions(), wait=True)
    assert job.state == "rejected"
    # 2 labelled held out + half of the 10 unlabelled documents' headings
    assert job.message.startswith(
        "the gate needs 30 questions and has 7 (2 held-out labelled pairs, 5 section headings"
    )
    assert "label about 115 more misses" in job.message
    assert "add about 46 documents with section headings or titles" in job.message
    gate = job.result["gate"]
    assert gate["promote"] is False and gate["n_queries"] == 7 and gate["min_questions"] == 30
    # nothing was trained: no worker ran, no version was registered
    assert not (manager._job_files(job.id).log).exists()
    assert [v.version for v in fake_runtime.catalog.list_versions()] == ["base"]
    # the minimum is an option: a smaller one lets the job go on to training
    assert (
        "gate_shortfall"
        not in build_training_set(
            fake_runtime, log, RetrainOptions(min_gate_questions=7, hard_negatives=False), None
        ).manifest
    )


def test_hard_negatives_come_through_the_serving_retriever(
    fake_runtime: Runtime, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # ten guides: the other documents' coral sections rank 11-20 and share no keyword
    docs = _guides(fake_runtime, tmp_path / "docs", 10)
    log = QueryLog(fake_runtime.catalog.engine)
    _label(fake_runtime, log, docs)
    calls: list[dict[str, Any]] = []
    returned: dict[str, set[str]] = {}
    real = pairs_module.search

    def spy(index, store, catalog, query, k=5, where=None, mode=None, vector=None):  # type: ignore[no-untyped-def]
        calls.append({"index": index, "query": query, "k": k, "mode": mode, "vector": vector})
        hits = real(index, store, catalog, query, k, where, mode, vector)
        returned[query] = {h.chunk.id for h in hits}
        return hits

    monkeypatch.setattr(pairs_module, "search", spy)
    data = build_training_set(fake_runtime, log, RetrainOptions(sources=["labelled"]), None)
    assert len(calls) == len(data.train) == 8
    active = fake_runtime.active_index()
    assert active.retrieval == "hybrid"
    for call in calls:
        # the active index, so its mode and recipe; the batch-encoded question vector
        assert call["index"] is active and call["mode"] is None and call["k"] == 30
        assert call["vector"] is not None
    mined = [p for p in data.train if p.negative_id]
    assert data.manifest["hard_negatives"] == len(mined) > 0
    chunks = {c.id: c for b in fake_runtime.catalog.iter_chunks() for c in b}
    for p in mined:
        assert p.negative_id in returned[p.question]
        assert chunks[p.negative_id].document_id != chunks[p.chunk_id].document_id
