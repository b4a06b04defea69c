"""Files of a Git repository at a ref as a document source, read with the ``git`` command.

The repository is a local path (its committed files are read, not the working tree) or a clone
URL (cloned into a temporary folder for the run). Files are chosen by globs on their path in
the repository; each becomes one document whose id is a hash of (repository, file path) and
whose source names the file and the commit it was read at. A file whose blob is the one stored
last time is not read at all.
"""

from __future__ import annotations

import fnmatch
import hashlib
import os
import subprocess
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath

from ragloop.core.errors import DocumentError, InvalidInputError, UnsupportedFormatError
from ragloop.core.records import DocumentRecord
from ragloop.ingest.loaders import (
    DEFAULT_OPTIONS,
    LoadedDocument,
    LoadFailure,
    LoadOptions,
    loader_for,
)
from ragloop.ingest.pipeline import SourceItem, Unchanged

#: Files taken when no ``--include`` is given: text and documentation formats.
DEFAULT_INCLUDE = ("*.md", "*.markdown", "*.rst", "*.txt", "*.text", "*.html", "*.htm")
# Formats whose files hold many documents with their own ids (BEIR corpora).
_CORPUS_SUFFIXES = (".json", ".jsonl")
_SYMLINK, _SUBMODULE = "120000", "160000"


@dataclass(frozen=True)
class _Entry:
    mode: str
    kind: str
    blob: str
    size: int
    path: str


def run_git(args: Sequence[str], cwd: Path | None = None) -> bytes:
    """Output of ``git ARGS``; a failure becomes an InvalidInputError with git's message.

    Git never prompts (for credentials, say): a clone that needs them fails instead.
    """
    env = os.environ | {"GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C"}
    try:
        done = subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, check=False)
    except FileNotFoundError:
        raise InvalidInputError("the git command is not installed") from None
    if done.returncode != 0:
        lines = done.stderr.decode("utf-8", "replace").strip().splitlines()
        raise InvalidInputError(f"git {args[0]} failed: {lines[-1] if lines else done.returncode}")
    return done.stdout


def git_document_id(repo: str, path: str) -> str:
    """Stable id of a repository file's document: a hash of (repository, file path)."""
    return "g-" + hashlib.sha256(f"{repo}\0{path}".encode()).hexdigest()[:20]


def _is_local(repo: str) -> bool:
    return "://" not in repo and Path(repo).exists()


@dataclass
class GitSource:
    """Documents from the files of ``repo`` (a path or a clone URL) at ``ref`` (HEAD when
    None) matching ``include`` (``DEFAULT_INCLUDE`` when empty) and no ``exclude`` glob; a
    ``DocumentSource`` for ``Ingestor.ingest_source``. Files over ``max_bytes`` are refused.

    Paths with a hidden part (``.github/...``) are left out unless an ``include`` glob was
    given. Symbolic links and submodules are not followed.
    """

    repo: str
    ref: str | None = None
    include: Sequence[str] = ()
    exclude: Sequence[str] = ()
    max_bytes: int = 50 * 2**20
    #: How files are read (the JSON text field, per-file record caps), as for local files.
    options: LoadOptions = DEFAULT_OPTIONS
    complete: bool = True
    warnings: list[dict[str, str]] = field(default_factory=list)
    skipped: list[dict[str, str]] = field(default_factory=list)
    #: The commit read by the last ``documents`` run.
    commit: str = ""

    def __post_init__(self) -> None:
        if self.repo.startswith("-"):
            raise InvalidInputError(f"not a repository path or URL: {self.repo!r}")
        if _is_local(self.repo):
            here = Path(self.repo).resolve()
            bare = run_git(["rev-parse", "--is-bare-repository"], here).strip() == b"true"
            top = (
                here
                if bare
                else Path(run_git(["rev-parse", "--show-toplevel"], here).strip().decode())
            )
            self.key = str(top)
        elif "://" in self.repo or (":" in self.repo and "@" in self.repo.split(":")[0]):
            self.key = self.repo.rstrip("/")
        else:
            raise InvalidInputError(f"no such repository path: {self.repo}")
        self.label = PurePosixPath(self.key.rstrip("/")).name.removesuffix(".git") or self.key

    def scopes(self) -> list[str]:
        """Where this repository's documents live in the catalog."""
        return [f"git:{self.key}"]

    def documents(self, stored: Mapping[str, DocumentRecord]) -> Iterator[SourceItem]:
        """Each matching file: ``Unchanged`` when its blob is the stored one, else loaded."""
        self.skipped.clear()
        with self._repository() as where:
            rev = self.ref or "HEAD"
            if rev.startswith("-"):
                raise InvalidInputError(f"not a ref: {rev!r}")
            try:
                commit = run_git(["rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}"], where)
            except InvalidInputError:
                raise InvalidInputError(f"no commit {rev!r} in {self.repo}") from None
            self.commit = commit.strip().decode()
            for entry in self._entries(where):
                doc_id = git_document_id(self.key, entry.path)
                source = f"{self.label}:{entry.path}@{self.commit[:12]}"
                path = f"git:{self.key}/{entry.path}"
                old = stored.get(doc_id)
                if old is not None and old.meta.get("blob") == entry.blob:
                    yield Unchanged(doc_id, str(old.source))
                    continue
                yield self._load(where, entry, doc_id, source, path)

    def _load(self, where: Path, entry: _Entry, doc_id: str, source: str, path: str) -> SourceItem:
        """One file's document, or why it cannot be one."""
        name = PurePosixPath(entry.path)
        try:
            if name.suffix.lower() in _CORPUS_SUFFIXES:
                raise UnsupportedFormatError(
                    "BEIR corpora are ingested from files, not from a Git repository"
                )
            loader = loader_for(Path(entry.path))
            if entry.size > self.max_bytes:
                raise DocumentError(
                    f"{entry.size} bytes is over the {self.max_bytes / 2**20:g} MiB limit "
                    f"({self.max_bytes} bytes, RAGLOOP_MAX_FILE_MB)"
                )
            data = run_git(["cat-file", "blob", entry.blob], where)
            loaded = next(iter(loader(Path(name.name), data, self.options)))
        except (DocumentError, UnsupportedFormatError) as exc:
            return LoadFailure(source, exc.message, path)
        except RecursionError:
            return LoadFailure(source, "document too deeply nested to parse", path)
        if isinstance(loaded, LoadFailure):
            return replace(loaded, name=source, path=path)
        meta = {
            "repo": self.key,
            "ref": self.ref or "HEAD",
            "commit": self.commit,
            "file": entry.path,
            "blob": entry.blob,
        }
        doc: LoadedDocument = replace(loaded, id=doc_id, path=path, source=source, meta=meta)
        return doc

    def _entries(self, where: Path) -> Iterator[_Entry]:
        """Files of the commit that the globs take, in path order."""
        out = run_git(["ls-tree", "-r", "-l", "-z", "--full-tree", self.commit], where)
        include = list(self.include) or list(DEFAULT_INCLUDE)
        for record in out.split(b"\0"):
            if not record:
                continue
            head, _, raw_path = record.partition(b"\t")
            mode, kind, blob, size = head.decode().split()
            rel = raw_path.decode("utf-8", "replace")
            if not any(_match(rel, p) for p in include) or any(
                _match(rel, p) for p in self.exclude
            ):
                continue
            if not self.include and any(part.startswith(".") for part in rel.split("/")):
                continue
            if mode in (_SYMLINK, _SUBMODULE) or kind != "blob":
                what = "a symbolic link" if mode == _SYMLINK else "a submodule"
                self.skipped.append({"name": f"{self.label}:{rel}", "reason": f"{what}, not read"})
                continue
            yield _Entry(mode, kind, blob, int(size), rel)

    @contextmanager
    def _repository(self) -> Iterator[Path]:
        """The repository to read: the local one, or a bare clone kept for the run."""
        if _is_local(self.repo):
            yield Path(self.key)
            return
        with tempfile.TemporaryDirectory(prefix="ragloop-git-") as tmp:
            target = Path(tmp) / "repo.git"
            try:
                run_git(["clone", "--bare", "--quiet", "--", self.repo, str(target)])
            except InvalidInputError as exc:
                raise InvalidInputError(f"cannot clone {self.repo}: {exc.message}") from None
            yield target


def _match(rel: str, pattern: str) -> bool:
    return fnmatch.fnmatch(rel, pattern) or fnmatch.fnmatch(PurePosixPath(rel).name, pattern)
