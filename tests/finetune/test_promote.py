"""Blue/green promotion is resumable after a crash and never activates a half-filled collection."""

import threading
import time
from pathlib import Path

import numpy as np
import pytest

from ragloop.core.records import ModelVersion
from ragloop.core.runtime import Runtime
from ragloop.core.storage.jobs import JobStore
from ragloop.core.storage.querylog import QueryLog
from ragloop.core.storage.vectors import collection_name
from ragloop.finetune import promote as promote_mod
from ragloop.finetune.jobspec import CorpusRow, JobFiles, JobSpec
from ragloop.finetune.options import RetrainOptions
from ragloop.finetune.retrain import RetrainManager
from ragloop.ingest.pipeline import Ingestor
from tests.ingest.samples import write_corpus


def _candidate(rt: Runtime, job_dir: Path) -> ModelVersion:
    """A candidate version whose vectors (the base model's, scaled) sit in a job dir."""
    corpus = [c for b in rt.catalog.iter_chunks() for c in b]
    job_dir.mkdir(parents=True)
    files = JobFiles(job_dir)
    files.write_corpus(
        CorpusRow(id=c.id, doc=c.document_id, text=c.embedding_input) for c in corpus
    )
    vecs = rt.active_index().embedder.embed_documents([c.embedding_input for c in corpus])
    np.save(files.candidate_vectors, vecs)
    files.write_spec(
        JobSpec(
            job_id=job_dir.name,
            version="v2",
            data_dir=str(rt.settings.data_dir),
            current_version="base",
            candidate_dir=str(rt.settings.models_dir / "v2"),
            options=RetrainOptions(),
        )
    )
    mv = ModelVersion(
        "v2",
        "fake-keyword",
        "base",
        vecs.shape[1],
        66,
        collection_name(rt.catalog.instance_id(), "v2"),
        "candidate",
        time.time(),
        {"kind": "full"},
    )
    rt.catalog.add_version(mv)
    return mv


def test_crash_mid_upsert_then_resume(
    fake_runtime: Runtime, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    Ingestor(fake_runtime).ingest([write_corpus(tmp_path / "docs")])
    mv = _candidate(fake_runtime, tmp_path / "job")
    monkeypatch.setattr(promote_mod, "UPSERT_BATCH", 3)
    promoter = promote_mod.Promoter(fake_runtime, threading.Lock())
    calls = []

    def crash_after_first_batch(done: int, total: int) -> bool:
        calls.append(done)
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError):
        promoter.promote(mv, tmp_path / "job", crash_after_first_batch)
    assert fake_runtime.refresh().version.version == "base"  # never a half-filled collection
    assert fake_runtime.store.count(mv.collection) == 3
    total = fake_runtime.catalog.counts()["chunks"]
    assert promoter.promote(mv, tmp_path / "job", lambda done, total: False)
    active = fake_runtime.refresh()
    assert active.version.version == "v2" and active.collection == mv.collection
    assert fake_runtime.store.ids(mv.collection) == {
        c.id for b in fake_runtime.catalog.iter_chunks() for c in b
    }
    assert fake_runtime.store.count(mv.collection) == total


def test_cancel_during_re_embedding_drops_the_new_collection(
    fake_runtime: Runtime, tmp_path: Path
) -> None:
    Ingestor(fake_runtime).ingest([write_corpus(tmp_path / "docs")])
    mv = _candidate(fake_runtime, tmp_path / "job")
    promoter = promote_mod.Promoter(fake_runtime, threading.Lock())
    assert promoter.promote(mv, tmp_path / "job", lambda done, total: True) is False
    assert mv.collection not in fake_runtime.store.collections()
    assert fake_runtime.refresh().version.version == "base"


def test_server_restart_resumes_an_interrupted_promotion(
    fake_runtime: Runtime, tmp_path: Path
) -> None:
    Ingestor(fake_runtime).ingest([write_corpus(tmp_path / "docs")])
    jobs = JobStore(fake_runtime.catalog.engine)
    job = jobs.create("retrain")
    job_dir = fake_runtime.settings.data_dir / "jobs" / job.id
    _candidate(fake_runtime, job_dir)
    jobs.update(job.id, state="re-embedding")  # the process died here
    stale = jobs.create("retrain")
    jobs.update(stale.id, state="running")  # its worker died with the server
    manager = RetrainManager(
        fake_runtime, QueryLog(fake_runtime.catalog.engine), jobs, threading.Lock(), lambda: None
    )
    manager.resume()
    manager.threads[job.id].join(timeout=60)
    assert jobs.get(job.id).state == "promoted"
    assert jobs.get(stale.id).state == "failed"
    assert fake_runtime.refresh().version.version == "v2"


def test_ingest_during_re_embedding_is_caught_up_and_rollback_too(
    fake_runtime: Runtime, tmp_path: Path
) -> None:
    root = write_corpus(tmp_path / "docs")
    Ingestor(fake_runtime).ingest([root])
    mv = _candidate(fake_runtime, tmp_path / "job")
    # a document arrives and one leaves after the candidate's vectors were computed
    (root / "late.md").write_text("# Late\n\nA banana arrived late.")
    (root / "volcano.txt").unlink()
    Ingestor(fake_runtime).ingest([root], prune=True)
    promoter = promote_mod.Promoter(fake_runtime, threading.Lock())
    assert promoter.promote(mv, tmp_path / "job", lambda d, t: False)
    catalog_ids = {c.id for b in fake_runtime.catalog.iter_chunks() for c in b}
    assert fake_runtime.store.ids(mv.collection) == catalog_ids
    # rolling back to base catches base's collection up the same way
    (root / "later.md").write_text("# Later\n\nAn orange arrived even later.")
    Ingestor(fake_runtime).ingest([root])
    promoter.activate("base")
    base = fake_runtime.refresh()
    assert base.version.version == "base"
    assert fake_runtime.store.ids(base.collection) == {
        c.id for b in fake_runtime.catalog.iter_chunks() for c in b
    }
