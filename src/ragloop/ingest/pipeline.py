"""The ingest pipeline: discover -> load -> chunk -> embed (length-sorted) -> store.

Crash safety: chunk ids are journaled before Chroma is written, the catalog commit of a group
of documents is one transaction, and leftovers are repaired on the next run (a journaled id
the catalog lacks loses its vector). So after any failure a document has all its chunks and
vectors or none, and re-running the same command finishes the work.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from ragloop.core.progress import ProgressFn
from ragloop.core.records import ChunkRecord, DocumentRecord, ModelVersion
from ragloop.core.runtime import ActiveIndex, Runtime
from ragloop.core.settings import Settings
from ragloop.core.storage.catalog import Catalog
from ragloop.core.storage.vectors import VectorStore
from ragloop.ingest.chunking import CHUNKER_VERSION, Chunker, ChunkerConfig
from ragloop.ingest.loaders import LoadedDocument, LoadFailure, LoadOptions, discover, load_file

# Documents are committed in groups of about this many new chunks: big enough to batch the
# embedder well, small enough that a crash loses little work.
GROUP_CHUNKS = 512


@dataclass
class IngestReport:
    """What an ingest run did.

    ``failed`` names each file or record not ingested with its reason; ``warnings`` names each
    ingested file the parser had to repair, one entry per message (and a web crawl that
    stopped at its page limit); ``skipped`` names what a source left out by design, not by
    failure (links to hosts a crawl does not visit).
    """

    documents_seen: int = 0
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    removed: int = 0
    failed: list[dict[str, str]] = field(default_factory=list)
    warnings: list[dict[str, str]] = field(default_factory=list)
    skipped: list[dict[str, str]] = field(default_factory=list)
    chunks_embedded: int = 0
    chunks_reused: int = 0
    chunks_deleted: int = 0
    repaired_vectors: int = 0
    seconds: float = 0.0
    model_version: str = ""

    @property
    def chunks_per_second(self) -> float:
        """Embedded chunks per wall-clock second."""
        return self.chunks_embedded / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary."""
        out = asdict(self)
        out["failed_count"] = len(self.failed)
        out["chunks_per_second"] = round(self.chunks_per_second, 2)
        out["seconds"] = round(self.seconds, 3)
        return out


def content_hash(doc: LoadedDocument, chunker_signature: str) -> str:
    """Hash of everything that decides a document's chunks and vectors."""
    h = hashlib.sha256()
    for part in (chunker_signature, doc.format, doc.title, doc.source, doc.text):
        h.update(part.encode())
        h.update(b"\0")
    return h.hexdigest()


def load_options(settings: Settings) -> LoadOptions:
    """How files are read, from ``RAGLOOP_JSON_TEXT_FIELD`` and the per-file record caps."""
    return LoadOptions(
        json_text_field=settings.json_text_field,
        max_records=settings.max_file_records,
        max_chars=settings.max_file_record_chars,
    )


def repair_vectors(catalog: Catalog, store: VectorStore) -> int:
    """Finish what a crashed run left: delete journaled vectors the catalog does not have."""
    repaired = 0
    for collection, ids in catalog.journal_pending().items():
        orphans = catalog.missing_chunks(ids)
        store.delete(collection, orphans)
        repaired += len(orphans)
        catalog.journal_clear(collection, ids)
    return repaired


def embed_sorted(
    index: ActiveIndex,
    chunks: Sequence[ChunkRecord],
    batch_size: int,
    progress: ProgressFn | None = None,
) -> np.ndarray:
    """Embed chunks in batches of similar token length (less padding), in input order."""
    return index.embedder.embed_many(
        [c.embedding_input for c in chunks],
        batch_size,
        progress,
        lengths=[c.n_tokens for c in chunks],
        stage="embed",
    )


@dataclass(frozen=True)
class Unchanged:
    """A stored document its source knows to be unchanged without loading it (an HTTP 304, the
    same Git blob). ``meta``, when given, replaces the stored metadata (new validators) without
    touching chunks or vectors."""

    id: str
    name: str
    meta: dict[str, Any] | None = None


@dataclass(frozen=True)
class Gone:
    """A document its source says no longer exists (HTTP 404 or 410): reported as failed with
    ``reason``, and removed by ``prune`` if it was stored under ``path``."""

    name: str
    reason: str
    path: str


SourceItem = LoadedDocument | LoadFailure | Unchanged | Gone


class DocumentSource(Protocol):
    """Documents that are not local files: web pages, files of a Git repository.

    Its documents' ``path`` lies under one of ``scopes()`` (prefix + ``/``), so prune knows what
    it owns. ``documents`` gets those stored documents that the current chunker made, by id, to
    compare its validators with (their ``meta``), and yields what it finds; a ``LoadFailure``
    keeps the document at its ``path`` from prune. After the iteration, ``complete`` says whether
    the source saw everything it owns: when it did not (a crawl stopped by its page limit),
    prune removes only documents reported ``Gone``; ``warnings`` and ``skipped`` (each
    ``{name, warning}`` / ``{name, reason}``) go to the report as they are.
    """

    complete: bool
    warnings: list[dict[str, str]]
    skipped: list[dict[str, str]]

    def scopes(self) -> Sequence[str]:
        """Path prefixes of the documents this source owns."""
        ...

    def documents(self, stored: Mapping[str, DocumentRecord]) -> Iterator[SourceItem]:
        """The source's documents, failures and unchanged documents, in order."""
        ...


# LoadedDocuments of a source are checked against the catalog in batches of this many.
_SOURCE_BATCH = 64


@dataclass
class _Pending:
    doc: DocumentRecord
    chunks: list[ChunkRecord]
    new: list[ChunkRecord]
    is_update: bool


class Ingestor:
    """Runs ingest for one runtime; the caller holds the data dir's writer lock."""

    # Progress stages are "scan" (files) and "embed" (chunks). With ``source_root`` (the
    # uploads root), the source of a file under it is stored relative to it, so citations never
    # show where the server keeps uploads; other files keep their path as given.
    def __init__(
        self,
        runtime: Runtime,
        progress: ProgressFn | None = None,
        *,
        source_root: Path | None = None,
    ) -> None:
        self.rt = runtime
        self.progress = progress or (lambda stage, done, total: None)
        self.source_root = source_root
        s = runtime.settings
        self.config = ChunkerConfig(s.chunk_tokens, s.chunk_overlap)
        self._index: ActiveIndex | None = None
        self._chunker: Chunker | None = None
        active = runtime.catalog.active_version()
        if active is None or (active.parent is None and active.model_ref != s.embedder):
            active = self.index.version  # registers the base model, or refuses a mismatch
        self.version: ModelVersion = active
        # The chunker's signature is part of every content hash. It is remembered per version
        # so that a re-ingest of unchanged files compares hashes without loading the model.
        # The key names the chunker version, so a new chunker re-chunks existing documents.
        key = (
            f"chunker_signature:v{CHUNKER_VERSION}:{self.version.version}:"
            f"{s.chunk_tokens}:{s.chunk_overlap}"
        )
        known = runtime.catalog.get_meta(key)
        if known is None:
            known = self.chunker.signature
            runtime.catalog.set_meta(key, known)
        self.signature = known

    @property
    def index(self) -> ActiveIndex:
        """The active version with its model, loaded on first need (a changed document)."""
        if self._index is None:
            self._index = self.rt.active_index()
        return self._index

    @property
    def chunker(self) -> Chunker:
        """The chunker for the active model, built on first need."""
        if self._chunker is None:
            self._chunker = Chunker(self.index.embedder, self.config)
        return self._chunker

    def ingest(
        self,
        paths: Sequence[Path],
        include: Sequence[str] = (),
        exclude: Sequence[str] = (),
        prune: bool = False,
        *,
        follow_outside_links: bool = False,
    ) -> IngestReport:
        """Ingest files and directories; ``prune`` removes documents whose files are gone.

        A link in a folder whose target is outside that folder is refused (and reported)
        unless ``follow_outside_links``.
        """
        started = time.perf_counter()
        report = IngestReport(model_version=self.version.version)
        report.repaired_vectors = repair_vectors(self.rt.catalog, self.rt.store)
        files, skipped = discover(
            paths, include, exclude, follow_outside_links=follow_outside_links
        )
        report.failed += [_failure(f) for f in skipped]
        pending, seen, protected = self._scan(files, report)
        # A path that is there but could not be taken this time keeps its documents.
        protected |= {os.path.realpath(f.path) for f in skipped if f.path}
        self._commit(pending, report)
        if prune:
            self._prune(paths, seen, protected, report)
        report.seconds = time.perf_counter() - started
        return report

    def _scan(
        self, files: Sequence[Path], report: IngestReport
    ) -> tuple[list[_Pending], set[str], set[str]]:
        pending: list[_Pending] = []
        seen: set[str] = set()
        failed_paths: set[str] = set()
        options = load_options(self.rt.settings)
        for n, path in enumerate(files, start=1):
            loaded = list(load_file(path, self.rt.settings.max_file_bytes, options))
            docs = [self._relative(d) for d in loaded if isinstance(d, LoadedDocument)]
            for doc in docs:
                report.warnings += [{"name": doc.source, "warning": w} for w in doc.warnings]
            for f in loaded:
                if isinstance(f, LoadFailure):
                    report.failed.append(_failure(f))
                    # Any failure inside a file protects all its documents from --prune.
                    failed_paths.add(str(path.resolve()))
            pending += self._stage(docs, seen, report)
            self.progress("scan", n, len(files))
        return pending, seen, failed_paths

    def _relative(self, doc: LoadedDocument) -> LoadedDocument:
        """``doc`` with a source under ``source_root`` made relative to it."""
        root, source = self.source_root, Path(doc.source)
        if root is None or not source.is_absolute() or not source.is_relative_to(root):
            return doc
        return replace(doc, source=source.relative_to(root).as_posix())

    def _stage(
        self,
        docs: Sequence[LoadedDocument],
        seen: set[str],
        report: IngestReport,
        meta_extra: Mapping[str, Any] | None = None,
    ) -> list[_Pending]:
        """Chunk the changed documents of ``docs``; count the unchanged ones.

        With ``meta_extra`` (documents of a source), it is merged into each document's
        metadata, and an unchanged document whose metadata changed gets it stored (no chunking,
        no embedding).
        """
        catalog = self.rt.catalog
        existing = catalog.documents_by_ids([d.id for d in docs])
        changed: list[tuple[LoadedDocument, str]] = []
        for doc in docs:
            report.documents_seen += 1
            if doc.id in seen:
                report.failed.append(
                    {"name": doc.source, "reason": f"duplicate document id {doc.id!r}"}
                )
                continue
            old = existing.get(doc.id)
            if old is not None and old.path != doc.path:
                report.failed.append(
                    {
                        "name": doc.source,
                        "reason": f"document id {doc.id!r} already belongs to {old.path}",
                    }
                )
                continue
            seen.add(doc.id)
            digest = content_hash(doc, self.signature)
            if old is not None and old.content_hash == digest:
                report.unchanged += 1
                if meta_extra is not None and old.meta != doc.meta | dict(meta_extra):
                    self._save_meta(old, doc.meta | dict(meta_extra))
            else:
                changed.append((doc, digest))
        old_ids = catalog.chunk_ids_of([d.id for d, _ in changed])
        pending: list[_Pending] = []
        for doc, digest in changed:
            chunks = self.chunker.split(doc.id, doc.title, doc.text, doc.format, doc.sections)
            record = DocumentRecord(
                id=doc.id,
                path=doc.path,
                source=doc.source,
                title=doc.title,
                format=doc.format,
                content_hash=digest,
                size_bytes=doc.size_bytes,
                n_chunks=len(chunks),
                meta=doc.meta if meta_extra is None else doc.meta | dict(meta_extra),
            )
            have = old_ids.get(doc.id, set())
            new = [c for c in chunks if c.id not in have]
            pending.append(_Pending(record, chunks, new, doc.id in existing))
        return pending

    def _save_meta(self, old: DocumentRecord, meta: dict[str, Any]) -> None:
        """Store new metadata of an unchanged document, keeping its chunks (and vectors)."""
        catalog = self.rt.catalog
        catalog.save_documents(
            [(replace(old, meta=meta), catalog.chunks_of(old.id))], self.version.collection
        )

    @property
    def chunker_tag(self) -> str:
        """A short digest of the chunker's signature, kept in the metadata of a source's
        documents: a source's validators only count for documents this chunker made."""
        return hashlib.sha256(self.signature.encode()).hexdigest()[:16]

    def ingest_source(self, source: DocumentSource, prune: bool = False) -> IngestReport:
        """Ingest the documents of a source that is not local files (see ``DocumentSource``).

        ``prune`` removes the source's stored documents it did not yield this time, except
        those at the path of a failure; after an incomplete run, only those reported gone.
        """
        started = time.perf_counter()
        catalog = self.rt.catalog
        report = IngestReport(model_version=self.version.version)
        report.repaired_vectors = repair_vectors(catalog, self.rt.store)
        tag = self.chunker_tag
        owned: dict[str, DocumentRecord] = {}
        for scope in source.scopes():
            owned |= catalog.documents_under(scope)
        stored = {i: d for i, d in owned.items() if d.meta.get("chunker") == tag}
        extra = {"chunker": tag}
        pending: list[_Pending] = []
        seen: set[str] = set()
        protected: set[str] = set()
        gone: set[str] = set()
        batch: list[LoadedDocument] = []
        for n, item in enumerate(source.documents(stored), start=1):
            if isinstance(item, LoadedDocument):
                report.warnings += [{"name": item.source, "warning": w} for w in item.warnings]
                batch.append(item)
                if len(batch) >= _SOURCE_BATCH:
                    pending += self._stage(batch, seen, report, extra)
                    batch = []
            elif isinstance(item, Unchanged):
                report.documents_seen += 1
                old = stored.get(item.id)
                if old is None or item.id in seen:
                    report.failed.append(
                        {"name": item.name, "reason": "no stored copy of this document to keep"}
                    )
                    continue
                seen.add(item.id)
                report.unchanged += 1
                if item.meta is not None and old.meta != item.meta | extra:
                    self._save_meta(old, item.meta | extra)
            elif isinstance(item, Gone):
                report.failed.append({"name": item.name, "reason": item.reason})
                gone.add(item.path)
            else:
                report.failed.append(_failure(item))
                protected.add(item.path)
            self.progress("scan", n, 0)
        if batch:
            pending += self._stage(batch, seen, report, extra)
        report.warnings += source.warnings
        report.skipped += source.skipped
        self._commit(pending, report)
        if prune:
            doomed = [
                doc_id
                for doc_id, doc in owned.items()
                if doc_id not in seen
                and doc.path not in protected
                and (source.complete or doc.path in gone)
            ]
            self._remove(doomed, report)
        report.seconds = time.perf_counter() - started
        return report

    def _commit(self, pending: list[_Pending], report: IngestReport) -> None:
        total = sum(len(p.new) for p in pending)
        done = 0
        self.progress("embed", 0, total)
        group: list[_Pending] = []
        size = 0
        for item in pending:
            group.append(item)
            size += len(item.new)
            if size >= GROUP_CHUNKS:
                done = self._commit_group(group, report, done, total)
                group, size = [], 0
        if group:
            self._commit_group(group, report, done, total)

    def _commit_group(
        self, group: list[_Pending], report: IngestReport, done: int, total: int
    ) -> int:
        catalog, store = self.rt.catalog, self.rt.store
        coll = self.index.collection
        new = [c for item in group for c in item.new]
        catalog.journal_vectors(coll, [c.id for c in new])

        def tick(stage: str, n: int, _group_total: int) -> None:
            self.progress(stage, done + n, total)

        if new:
            vectors = embed_sorted(self.index, new, self.rt.settings.embed_batch_size, tick)
            sources = {item.doc.id: item.doc.source for item in group}
            store.upsert(
                coll,
                [c.id for c in new],
                vectors,
                [{"document_id": c.document_id, "source": sources[c.document_id]} for c in new],
            )
        removed = catalog.save_documents([(i.doc, i.chunks) for i in group], coll)
        store.delete(coll, removed)
        catalog.journal_clear(coll, [c.id for c in new] + removed)
        for item in group:
            if item.is_update:
                report.updated += 1
            else:
                report.added += 1
            report.chunks_reused += len(item.chunks) - len(item.new)
        report.chunks_embedded += len(new)
        report.chunks_deleted += len(removed)
        return done + len(new)

    def _prune(
        self, paths: Sequence[Path], seen: set[str], protected: set[str], report: IngestReport
    ) -> None:
        gone: list[str] = []
        for root in paths:
            for doc_id, doc in self.rt.catalog.documents_under(str(root.resolve())).items():
                if doc_id not in seen and doc.path not in protected:
                    gone.append(doc_id)
        self._remove(gone, report)

    def _remove(self, document_ids: Sequence[str], report: IngestReport) -> None:
        gone = sorted(set(document_ids))
        if gone:
            removed = self.rt.catalog.delete_documents(gone, self.version.collection)
            self.rt.store.delete(self.version.collection, removed)
            self.rt.catalog.journal_clear(self.version.collection, removed)
            report.removed += len(gone)
            report.chunks_deleted += len(removed)


def delete_documents(runtime: Runtime, document_ids: Sequence[str]) -> int:
    """Delete documents with their chunks and vectors; returns how many chunks went."""
    index = runtime.active_index()
    removed = runtime.catalog.delete_documents(document_ids, index.collection)
    runtime.store.delete(index.collection, removed)
    runtime.catalog.journal_clear(index.collection, removed)
    return len(removed)


def _failure(f: LoadFailure) -> dict[str, str]:
    return {"name": f.name, "reason": f.reason}
