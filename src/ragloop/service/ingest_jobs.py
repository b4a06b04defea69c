"""Ingest as background jobs for the HTTP API: uploads are saved, then ingested one job at a
time on a single worker thread (writes to a data dir are serialised), with progress on the
job row."""

from __future__ import annotations

import re
import shutil
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from ragloop.core.errors import (
    ConflictError,
    InvalidInputError,
    PayloadTooLargeError,
    UnsupportedFormatError,
)
from ragloop.core.runtime import Runtime
from ragloop.core.storage.jobs import Job, JobStore
from ragloop.core.storage.locks import WriterLock
from ragloop.ingest.loaders import LOADERS
from ragloop.ingest.pipeline import Ingestor, delete_documents

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def safe_filename(name: str) -> str:
    """A file name with no directories or odd characters (uploads never escape their folder)."""
    base = Path(name.replace("\\", "/")).name
    clean = _UNSAFE.sub("_", base).strip("._")
    return clean or "upload"


class IngestRunner:
    """Runs ingest jobs one at a time; also serialises document deletes with them."""

    def __init__(self, runtime: Runtime, jobs: JobStore, lock: WriterLock | None) -> None:
        self.rt = runtime
        self.jobs = jobs
        # Held per job when the server does not own the data dir for its whole life
        # (a Chroma server with several workers); None when the server already holds it.
        self.lock = lock
        self.write_mutex = threading.Lock()
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ingest")

    def check_upload(self, files: Sequence[tuple[str, int]]) -> None:
        """Refuse an upload before reading it further: count, types, sizes."""
        s = self.rt.settings
        if not files:
            raise InvalidInputError("no files in the upload (multipart field 'files')")
        if len(files) > s.max_upload_files:
            raise InvalidInputError(
                f"{len(files)} files in one upload; the limit is {s.max_upload_files} "
                "(RAGLOOP_MAX_UPLOAD_FILES)"
            )
        for name, size in files:
            suffix = Path(name).suffix.lower()
            if suffix not in LOADERS:
                raise UnsupportedFormatError(
                    f"{name}: unsupported file type {suffix or '(none)'!r}; supported: "
                    + ", ".join(sorted(LOADERS))
                )
            if size > s.max_file_bytes:
                raise PayloadTooLargeError(
                    f"{name} is {size} bytes; the limit is {s.max_file_mb:g} MiB "
                    f"({s.max_file_bytes} bytes, RAGLOOP_MAX_FILE_MB)"
                )

    def submit(self, staged: Path, names: list[str]) -> Job:
        """Queue an ingest of files already written to the ``staged`` folder."""
        job = self.jobs.create("ingest", {"files": names})
        self.pool.submit(self._run, job.id, staged)
        return job

    def _run(self, job_id: str, staged: Path) -> None:
        last = 0.0

        def progress(stage: str, done: int, total: int) -> None:
            nonlocal last
            now = time.monotonic()
            if stage == "embed" and total and (now - last > 0.5 or done == total):
                last = now
                self.jobs.update(job_id, progress=round(done / total, 4), message="embedding")

        try:
            self.jobs.update(job_id, state="running", message="saving files")
            with self.write_mutex:
                if self.lock is not None:
                    self.lock.acquire()
                try:
                    paths = self._move(staged)
                    report = Ingestor(self.rt, progress).ingest(paths)
                finally:
                    if self.lock is not None:
                        self.lock.release()
            self.jobs.update(
                job_id,
                state="succeeded",
                progress=1.0,
                message="done" if not report.failed else f"{len(report.failed)} file(s) failed",
                result=report.to_dict(),
                errors=report.failed,
            )
        except Exception as exc:  # the job row must say what happened, whatever it was
            self.jobs.update(job_id, state="failed", message=f"{exc.__class__.__name__}: {exc}")
        finally:
            shutil.rmtree(staged, ignore_errors=True)

    def _move(self, staged: Path) -> list[Path]:
        target = self.rt.settings.uploads_dir
        target.mkdir(parents=True, exist_ok=True)
        paths = []
        for f in sorted(staged.iterdir()):
            dest = target / f.name
            shutil.move(str(f), dest)
            paths.append(dest)
        return paths

    def delete(self, document_id: str) -> int:
        """Delete a document (chunks and vectors, and its uploaded file) between ingest jobs."""
        if not self.write_mutex.acquire(timeout=30):
            raise ConflictError("an ingest job is writing; retry the delete in a moment")
        try:
            doc = self.rt.catalog.get_document(document_id)
            removed = delete_documents(self.rt, [document_id])
            if doc is not None:
                path = Path(doc.path)
                if path.parent == self.rt.settings.uploads_dir.resolve() and path.exists():
                    path.unlink()
            return removed
        finally:
            self.write_mutex.release()

    def shutdown(self) -> None:
        """Stop taking jobs; wait for the running one."""
        self.pool.shutdown(wait=True, cancel_futures=True)
