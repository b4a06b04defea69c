"""Ingest as background jobs for the HTTP API: uploads are saved, then ingested one job at a
time on a single worker thread (writes to a data dir are serialised), with progress on the
job row.

Uploads live under ``<data_dir>/uploads/<client>/<name>``: ``<client>`` is the uploader's API
key id, ``admin`` for the admin token, or ``anonymous`` while writes are open and no key is in
use. A document's id is a hash of that path, so a client re-uploading a name replaces its own
document and never another client's. Its ``source`` (what citations show) is that path relative
to the uploads root, ``<client>/<name>``: no answer names where the server keeps files. A
request streams its files into a private folder under ``uploads/.staging`` first; a refused
upload leaves nothing there.

Deletes are scoped the same way: a client deletes only documents it uploaded, the admin token
any document (documents ingested from the command line only with it); to anyone else a document
is not found, so the API does not say which documents exist.

A job records its files, client folder and staging folder. At start-up the process that owns
the data dir resumes every upload job a dead process left queued or running: files still in
staging are moved, and every file of the job is ingested (unchanged files cost nothing). A job
interrupted a second time is not resumed again: it fails, naming its files, and those of them
that never became documents are removed. Staging entries that no job needs are removed then
too.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import time
from collections.abc import Collection, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeGuard

from ragloop.core.errors import (
    ConflictError,
    InvalidInputError,
    NotFoundError,
    PayloadTooLargeError,
    UnsupportedFormatError,
)
from ragloop.core.runtime import Runtime
from ragloop.core.storage.catalog import make_private_dir
from ragloop.core.storage.jobs import Job, JobStore
from ragloop.core.storage.locks import StoreWriteGuard, WriterLock
from ragloop.ingest.loaders import LOADERS, file_document_id
from ragloop.ingest.pipeline import Ingestor, delete_documents

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
#: The uploads folder of writers with no identity (open writes, no key in use).
ANONYMOUS = "anonymous"
#: The writer ``check_writer`` names for the admin token: it may delete any document.
ADMIN = "admin"
#: The job message of an upload job that cannot be resumed.
STOPPED = "the server stopped before this job finished; upload its files again"


def safe_filename(name: str) -> str:
    """A file name with no directories or odd characters (uploads never escape their folder)."""
    base = Path(name.replace("\\", "/")).name
    clean = _UNSAFE.sub("_", base).strip("._")
    return clean or "upload"


def client_folder(client: str | None) -> str:
    """The uploads folder of a writer: its key id, ``admin``, or ``anonymous`` (None)."""
    return safe_filename(client) if client else ANONYMOUS


class IngestRunner:
    """Runs ingest jobs one at a time; also serialises document deletes with them."""

    def __init__(
        self,
        runtime: Runtime,
        jobs: JobStore,
        lock: WriterLock | None,
        started: float | None = None,
    ) -> None:
        self.rt = runtime
        self.jobs = jobs
        # ``lock`` is held per write when the server does not own the data dir for its whole
        # life (a Chroma server shared by replicas); None when the server already holds it.
        self.write_guard = StoreWriteGuard(lock)
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ingest")
        #: When this process started: older staging entries belong to no live upload.
        self.started = time.time() if started is None else started
        self.root = runtime.settings.uploads_dir.resolve()

    @property
    def staging_root(self) -> Path:
        """Where uploads are written before their job takes them."""
        return self.root / ".staging"

    def upload_path(self, client: str | None, name: str) -> Path:
        """Where a client's upload of ``name`` (already a safe file name) is kept."""
        return self.root / client_folder(client) / name

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

    def new_staging(self) -> Path:
        """A new private folder for one upload's files; ``discard`` it if the upload fails."""
        make_private_dir(self.staging_root)
        return Path(tempfile.mkdtemp(dir=self.staging_root))  # mkdtemp makes it 0700

    @staticmethod
    def discard(staged: Path) -> None:
        """Remove a staging folder and what it holds."""
        shutil.rmtree(staged, ignore_errors=True)

    def submit(self, staged: Path, names: list[str], client: str | None) -> Job:
        """Queue an ingest of ``client``'s files already written to the ``staged`` folder.

        On any failure the staging folder is removed before the error goes on.
        """
        folder = client_folder(client)
        try:
            job = self.jobs.create(
                "ingest", {"files": names, "client": folder, "staging": staged.name}
            )
        except BaseException:
            self.discard(staged)
            raise
        try:
            self.pool.submit(self._run, job.id, staged, folder, names)
        except RuntimeError:  # the pool is shut down: the server is stopping
            self.jobs.update(job.id, state="failed", message=STOPPED)
            self.discard(staged)
            raise ConflictError("the server is shutting down; upload again in a moment") from None
        return job

    def _run(self, job_id: str, staged: Path, folder: str, names: list[str]) -> None:
        last = 0.0

        def progress(stage: str, done: int, total: int) -> None:
            nonlocal last
            now = time.monotonic()
            if stage == "embed" and total and (now - last > 0.5 or done == total):
                last = now
                self.jobs.update(job_id, progress=round(done / total, 4), message="embedding")

        try:
            self.jobs.update(job_id, state="running", message="saving files")
            with self.write_guard:
                paths, lost = self._move(staged, self.root / folder, names)
                report = Ingestor(self.rt, progress, source_root=self.root).ingest(paths)
            report.failed += [
                {"name": f"{folder}/{name}", "reason": "the file was lost before it was ingested"}
                for name in lost
            ]
            result = self.public_report(report.to_dict())
            self.jobs.update(
                job_id,
                state="succeeded",
                progress=1.0,
                message="done" if not report.failed else f"{len(report.failed)} file(s) failed",
                result=result,
                errors=result["failed"],
            )
        except Exception as exc:  # the job row must say what happened, whatever it was
            message = self.public_path(f"{exc.__class__.__name__}: {exc}")
            self.jobs.update(job_id, state="failed", message=message)
        finally:
            self.discard(staged)

    @staticmethod
    def _move(staged: Path, target: Path, names: list[str]) -> tuple[list[Path], list[str]]:
        """Move the job's staged files into ``target``; returns the files there to ingest and
        the names found in neither place. A resumed job finds some already moved."""
        make_private_dir(target)
        paths: list[Path] = []
        lost: list[str] = []
        for name in names:
            src, dest = staged / name, target / name
            if src.is_file():
                shutil.move(src, dest)
                os.chmod(dest, 0o600)
            if dest.is_file():
                paths.append(dest)
            else:
                lost.append(name)
        return paths, lost

    def public_path(self, text: str) -> str:
        """``text`` with the server's uploads folder cut from any path in it: clients see
        upload paths relative to the uploads root (``<client>/<name>``), never where the
        server keeps them."""
        roots = {str(self.root), str(self.rt.settings.uploads_dir)}
        for root in sorted(roots, key=len, reverse=True):  # a relative root is a tail of the other
            text = text.replace(root.rstrip(os.sep) + os.sep, "")
        return text

    def public_report(self, report: dict[str, Any]) -> dict[str, Any]:
        """An ingest report with the names of failed and warned files made public."""
        out = dict(report)
        for key in ("failed", "warnings"):
            if isinstance(out.get(key), list):
                out[key] = [
                    {k: self.public_path(v) if k == "name" else v for k, v in entry.items()}
                    for entry in out[key]
                ]
        return out

    def recover(self, owner: bool) -> None:
        """Start-up: deal with what a dead process left, then sweep the staging folder.

        ``owner`` says this process holds the data dir for its whole life, so no other
        process runs jobs: each unfinished upload job is resumed once (or, interrupted again,
        failed and its never-ingested files removed). Otherwise unfinished jobs may be running
        in another worker; their staging folders are kept.
        """
        keep: set[str] = set()
        resume: list[tuple[str, Path, str, list[str]]] = []
        for job in self.jobs.unfinished("ingest"):
            names = list(job.params.get("files", []))
            folder, staging = job.params.get("client"), job.params.get("staging")
            if not owner:
                if _is_name(staging):
                    keep.add(staging)
            elif not (_is_name(folder) and _is_name(staging) and all(map(_is_name, names))):
                # Not recorded by this runner (no client or staging folder): nothing to resume.
                self.jobs.update(job.id, state="failed", message=STOPPED)
            elif job.params.get("resumed"):
                self._give_up(job, folder, names)
            else:
                params = job.params | {"resumed": True}
                self.jobs.update(
                    job.id, state="queued", message="resumed after a restart", params=params
                )
                keep.add(staging)
                resume.append((job.id, self.staging_root / staging, folder, names))
        self.sweep_staging(keep)
        for args in resume:  # last: nothing above starts a thread
            self.pool.submit(self._run, *args)

    def _give_up(self, job: Job, folder: str, names: list[str]) -> None:
        """Fail a job that was already resumed once; remove its files that never became
        documents (the others stay: an earlier upload of the same name is still ingested)."""
        removed = []
        for name in names:
            path = self.root / folder / name
            if path.is_file() and self.rt.catalog.get_document(file_document_id(path)) is None:
                path.unlink()
                removed.append(name)
        message = (
            "the server stopped twice while ingesting this upload, so it was not resumed "
            f"again; upload {', '.join(names)} again"
        )
        if removed:
            message += f" (removed, never ingested: {', '.join(removed)})"
        self.jobs.update(job.id, state="failed", message=message)

    def sweep_staging(self, keep: Collection[str] = ()) -> int:
        """Remove staging entries older than this process that no unfinished job needs;
        returns how many went. A newer entry is a live upload of another worker."""
        if not self.staging_root.is_dir():
            return 0
        removed = 0
        for entry in self.staging_root.iterdir():
            if entry.name in keep or _newest_mtime(entry) >= self.started:
                continue
            if entry.is_dir() and not entry.is_symlink():
                self.discard(entry)
            else:
                entry.unlink(missing_ok=True)
            removed += 1
        return removed

    def uploader_of(self, path: str) -> str | None:
        """The uploads folder (``<client>``) holding a document's file; None for a document
        that was not uploaded (ingested from the command line, or from another source)."""
        file = Path(path)
        if not file.is_absolute() or not file.is_relative_to(self.root):
            return None
        parts = file.relative_to(self.root).parts
        return parts[0] if len(parts) == 2 and _is_name(parts[0]) else None

    def delete_as(self, client: str | None, document_id: str) -> int:
        """``delete`` for a writer: the admin token may delete any document, any other writer
        (a key, or anonymous while writes are open) only the ones it uploaded. Another's
        document is a NotFoundError worded as an unknown one."""
        doc = self.rt.catalog.get_document(document_id)
        if doc is None or (client != ADMIN and self.uploader_of(doc.path) != client_folder(client)):
            raise NotFoundError(f"unknown document {document_id!r}")
        return self.delete(document_id)

    def delete(self, document_id: str) -> int:
        """Delete a document (chunks and vectors, and its uploaded file) between ingest jobs."""
        if not self.write_guard.acquire(timeout=30):
            raise ConflictError("an ingest job is writing; retry the delete in a moment")
        try:
            doc = self.rt.catalog.get_document(document_id)
            removed = delete_documents(self.rt, [document_id])
            if doc is not None:
                path = Path(doc.path)
                if path.is_relative_to(self.root) and path.is_file():
                    path.unlink()
            return removed
        finally:
            self.write_guard.release()

    def shutdown(self) -> None:
        """Stop taking jobs; wait for the running one."""
        self.pool.shutdown(wait=True, cancel_futures=True)


def _is_name(value: object) -> TypeGuard[str]:
    """True for a plain file or folder name, as this runner records them."""
    return isinstance(value, str) and safe_filename(value) == value


def _newest_mtime(entry: Path) -> float:
    """The newest modification time of ``entry`` and, for a folder, of what it holds."""
    try:
        newest = entry.lstat().st_mtime
        if entry.is_dir() and not entry.is_symlink():
            for child in entry.iterdir():
                newest = max(newest, child.lstat().st_mtime)
    except FileNotFoundError:  # removed meanwhile
        return 0.0
    return newest
