"""Blue/green promotion, rollback and retention of model versions.

A version's collection is filled while the active one keeps serving; the switch happens under
the write lock after a catch-up pass (chunks ingested or deleted meanwhile), so the active
pointer only ever names a complete collection, and ``Runtime.refresh`` swaps model and
collection as one unit.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ragloop.core.calibration import recalibrate
from ragloop.core.errors import ConflictError, RagloopError
from ragloop.core.records import ModelVersion
from ragloop.core.runtime import ActiveIndex, Runtime
from ragloop.core.storage.locks import WriteLock
from ragloop.finetune.jobspec import JobFiles
from ragloop.ingest.pipeline import embed_sorted

UPSERT_BATCH = 1000
SERVABLE = ("active", "retired", "candidate")

log = logging.getLogger(__name__)


class Promoter:
    """Fills collections and moves the active pointer."""

    def __init__(self, runtime: Runtime, write_lock: WriteLock) -> None:
        self.rt = runtime
        self.write_lock = write_lock

    def promote(
        self, mv: ModelVersion, job_dir: Path, progress: Callable[[int, int], bool]
    ) -> bool:
        """Fill ``mv``'s collection from the worker's vectors, then activate it.

        Resumable: ids already in the collection are skipped. Returns False when cancelled
        (the half-filled collection is dropped; the active version is untouched).
        """
        if mv.info.get("kind") != "query_adapter":
            files = JobFiles(job_dir)
            corpus = files.read_corpus()
            vecs = np.load(files.candidate_vectors, mmap_mode="r")
            docs = self.rt.catalog.documents_by_ids(list({c["doc"] for c in corpus}))
            self.rt.store.ensure_collection(mv.collection)
            present = self.rt.store.ids(mv.collection)
            todo = [i for i, c in enumerate(corpus) if c["id"] not in present]
            done = len(corpus) - len(todo)
            for start in range(0, len(todo), UPSERT_BATCH):
                part = todo[start : start + UPSERT_BATCH]
                self.rt.store.upsert(
                    mv.collection,
                    [corpus[i]["id"] for i in part],
                    np.asarray(vecs[part], dtype=np.float32),
                    [
                        {
                            "document_id": corpus[i]["doc"],
                            "source": docs[corpus[i]["doc"]].source
                            if corpus[i]["doc"] in docs
                            else "",
                        }
                        for i in part
                    ],
                )
                done += len(part)
                if progress(done, len(corpus)):
                    self.rt.store.drop(mv.collection)
                    return False
        self.activate(mv.version, allow_candidate=True)
        return True

    def activate(self, version: str, allow_candidate: bool = False) -> ActiveIndex:
        """Make ``version`` the active one (promotion, rollback or roll-forward)."""
        mv = self.rt.catalog.get_version(version)
        allowed = SERVABLE if allow_candidate else ("active", "retired")
        if mv.status not in allowed:
            raise ConflictError(
                f"version {version} is {mv.status}; only {', '.join(allowed)} versions can be "
                "activated"
            )
        if not self.write_lock.acquire(timeout=600):
            raise ConflictError("another write (an ingest) holds the store; retry")
        try:
            index = self.rt.index_for(mv)
            self._catch_up(index)
            self._recalibrate(index)
            self.rt.catalog.set_active(version)
            active = self.rt.refresh()
            self.retire_old()
            return active
        finally:
            self.write_lock.release()

    def _recalibrate(self, index: ActiveIndex) -> None:
        """Measure the version's miss thresholds on its now complete collection, before it
        serves, so its first question is judged by its own cuts (see ``core.calibration``)."""
        try:
            recalibrate(self.rt, index)
        except RagloopError as exc:  # never block a promotion: it calibrates on first query
            log.warning("miss calibration of %s failed: %s", index.version.version, exc)

    def _catch_up(self, index: ActiveIndex) -> None:
        """Make the collection hold exactly the catalog's chunks (the caller holds the lock)."""
        catalog_chunks = {c.id: c for batch in self.rt.catalog.iter_chunks(5000) for c in batch}
        present = self.rt.store.ids(index.collection)
        missing = [c for cid, c in catalog_chunks.items() if cid not in present]
        extra = sorted(present - set(catalog_chunks))
        if missing:
            vecs = embed_sorted(index, missing, self.rt.settings.embed_batch_size)
            docs = self.rt.catalog.documents_by_ids([c.document_id for c in missing])
            self.rt.store.upsert(
                index.collection,
                [c.id for c in missing],
                vecs,
                [
                    {
                        "document_id": c.document_id,
                        "source": docs[c.document_id].source if c.document_id in docs else "",
                    }
                    for c in missing
                ],
            )
        if extra:
            self.rt.store.delete(index.collection, extra)

    def retire_old(self) -> list[str]:
        """Keep the newest ``keep_versions`` servable versions; drop older collections."""
        versions = self.rt.catalog.list_versions()
        active = self.rt.catalog.active_version()
        servable = [v for v in versions if v.status in ("active", "retired")]
        keep = {v.version for v in servable[-self.rt.settings.keep_versions :]}
        if active is not None:
            keep.add(active.version)
        by_name = {v.version: v for v in versions}
        for name in list(keep):  # a kept query adapter needs its parent's model and vectors
            v = by_name[name]
            while v.info.get("kind") == "query_adapter" and v.parent:
                keep.add(v.parent)
                v = by_name[v.parent]
        kept_collections = {by_name[v].collection for v in keep}
        dropped = []
        for v in servable:
            if v.version not in keep:
                if v.collection not in kept_collections:
                    self.rt.store.drop(v.collection)
                self.rt.catalog.set_status(v.version, "deleted")
                dropped.append(v.version)
        return dropped
