"""Finding files to ingest and reading them safely.

Only regular files are read. A FIFO, a device, a socket, a symlink loop or a broken link is
reported with what it is (and never opened in a way that could block), and in a folder a link
whose target leaves that folder is refused unless the caller allows it.
"""

from __future__ import annotations

import errno
import fnmatch
import os
import stat
from collections.abc import Iterator, Sequence
from pathlib import Path

from ragloop.core.errors import DocumentError, UnsupportedFormatError
from ragloop.ingest.loaders.base import DEFAULT_OPTIONS, Loaded, LoadFailure, LoadOptions
from ragloop.ingest.loaders.registry import LOADERS, loader_for


def not_regular(mode: int) -> str | None:
    """Why a file of this ``st_mode`` is not read as a document, or None for a regular file."""
    if stat.S_ISREG(mode):
        return None
    if stat.S_ISDIR(mode):
        return "is a directory, not a regular file"
    if stat.S_ISFIFO(mode):
        return "is a FIFO, not a regular file"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "is a device file, not a regular file"
    if stat.S_ISSOCK(mode):
        return "is a socket, not a regular file"
    return "is not a regular file"


def _read_regular(path: Path, max_bytes: int) -> bytes:
    """A regular file's bytes; anything else is refused without blocking or reading it.

    The file is opened non-blocking (opening a FIFO would otherwise wait for a writer) and
    checked on the open descriptor, so it cannot be swapped between the check and the read.
    """
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY)
    with os.fdopen(fd, "rb") as fh:
        info = os.fstat(fd)
        reason = not_regular(info.st_mode)
        if reason is not None:
            raise DocumentError(reason)
        os.set_blocking(fd, True)
        if info.st_size > max_bytes:
            raise DocumentError(_over_limit(info.st_size, max_bytes))
        data = fh.read()
    if len(data) > max_bytes:  # it grew while being read
        raise DocumentError(_over_limit(len(data), max_bytes))
    return data


def _over_limit(size: int, max_bytes: int) -> str:
    # RAGLOOP_MAX_FILE_MB counts MiB; the size is in bytes, so it never rounds to the limit.
    return (
        f"{size} bytes is over the {max_bytes / 2**20:g} MiB limit ({max_bytes} bytes, "
        "RAGLOOP_MAX_FILE_MB)"
    )


def load_file(path: Path, max_bytes: int, options: LoadOptions | None = None) -> Iterator[Loaded]:
    """Load every document in one file, turning any problem into a ``LoadFailure``.

    ``options`` choose how some formats are read (the JSON text field, per-file record caps).
    """
    name = str(path)
    try:
        loader = loader_for(path)
        data = _read_regular(path, max_bytes)
        yield from loader(path, data, options or DEFAULT_OPTIONS)
    except (DocumentError, UnsupportedFormatError) as exc:
        yield LoadFailure(name, exc.message, str(path))
    except OSError as exc:
        yield LoadFailure(name, _os_reason(exc), str(path))
    except RecursionError:
        yield LoadFailure(name, "document too deeply nested to parse", str(path))


def _os_reason(exc: OSError) -> str:
    if exc.errno == errno.ELOOP:
        return "symlink loop"
    if exc.errno == errno.ENOENT:
        return "no such file or directory"
    return f"cannot read: {exc.strerror or exc}"


def _link_problem(path: Path, root: Path | None, follow_outside_links: bool) -> str | None:
    """Why ``path`` (a file, or a link to one) is not a document, or None when it may be read.

    ``root`` is the resolved folder being scanned; a link whose target resolves outside it is
    refused unless ``follow_outside_links``. None for ``root``: the path was named itself.
    """
    try:
        info = os.lstat(path)
    except OSError as exc:
        return _os_reason(exc)
    if stat.S_ISLNK(info.st_mode):
        try:
            info = os.stat(path)
        except OSError as exc:
            if exc.errno == errno.ENOENT:
                return f"broken symlink (its target {os.readlink(path)} does not exist)"
            return _os_reason(exc)
        kind = not_regular(info.st_mode)  # a link to a device is a device, wherever it is
        if kind is not None:
            return kind
        if root is not None and not follow_outside_links:
            target = Path(os.path.realpath(path))
            if not target.is_relative_to(root):
                return (
                    f"link leaves the ingested folder (it points to {target}; "
                    "--follow-outside-links allows that)"
                )
    return not_regular(info.st_mode)


def _walk(root: Path, failures: list[LoadFailure]) -> Iterator[Path]:
    """Every non-hidden entry under ``root`` that is not a folder; links to folders are not
    followed. A folder that cannot be listed is reported in ``failures``."""
    pending = [root]
    while pending:
        folder = pending.pop()
        try:
            with os.scandir(folder) as it:
                entries = list(it)
        except OSError as exc:
            failures.append(LoadFailure(str(folder), _os_reason(exc), str(folder)))
            continue
        for entry in entries:
            if entry.name.startswith("."):
                continue  # hidden files and folders (.git, .venv) are never documents
            try:
                is_dir = entry.is_dir(follow_symlinks=False)
            except OSError:
                is_dir = False
            if is_dir:
                pending.append(Path(entry.path))
            else:
                yield Path(entry.path)


def discover(
    paths: Sequence[Path],
    include: Sequence[str] = (),
    exclude: Sequence[str] = (),
    *,
    follow_outside_links: bool = False,
) -> tuple[list[Path], list[LoadFailure]]:
    """Files to ingest under ``paths`` (directories recursively), filtered by glob patterns.

    In directories, only files with a known extension are taken (a README without one is not an
    error); a file named explicitly is always tried, so its problem gets reported. Among the
    files that pass those filters, anything that is not a regular file (FIFO, device, socket,
    symlink loop, broken link) is reported, and so is a link whose target leaves the named
    folder unless ``follow_outside_links``. Links to folders are not followed. A named path
    that is a link is followed: naming it chose its target. A file reached twice (a link and
    its target in the same tree) is taken once, by its own name.
    """
    found: dict[Path, Path] = {}  # resolved file -> the path it is ingested under
    failures: list[LoadFailure] = []

    def take(p: Path) -> None:
        real = Path(os.path.realpath(p))
        if real not in found or (found[real].is_symlink() and not p.is_symlink()):
            found[real] = p

    for root in paths:
        problem = _link_problem(root, None, follow_outside_links)
        if problem is None:
            take(root)
            continue
        if not root.is_dir():
            failures.append(LoadFailure(str(root), problem, str(root)))
            continue
        real_root = Path(os.path.realpath(root))
        candidates: list[Path] = []
        for p in _walk(root, failures):
            if p.suffix.lower() not in LOADERS:
                continue
            rel = str(p.relative_to(root))
            if include and not any(_match(rel, pat) for pat in include):
                continue
            if any(_match(rel, pat) for pat in exclude):
                continue
            candidates.append(p)
        for p in sorted(candidates):
            problem = _link_problem(p, real_root, follow_outside_links)
            if problem is None:
                take(p)
            else:
                failures.append(LoadFailure(str(p), problem, str(p)))
    return list(found.values()), failures


def _match(rel: str, pattern: str) -> bool:
    return fnmatch.fnmatch(rel, pattern) or fnmatch.fnmatch(Path(rel).name, pattern)
