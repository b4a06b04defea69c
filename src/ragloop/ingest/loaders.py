"""File discovery and loaders: txt, md, rst, html, pdf, docx, and BEIR json/jsonl corpora.

Each loader turns one file into documents (a BEIR corpus gives one per line). A problem with a
file or a record is reported as a ``LoadFailure`` naming it, with a one-line reason; the batch
goes on.

Only regular files are read. A FIFO, a device, a socket, a symlink loop or a broken link is
reported with what it is (and never opened in a way that could block), and in a folder a link
whose target leaves that folder is refused unless the caller allows it.
"""

from __future__ import annotations

import errno
import fnmatch
import hashlib
import json
import logging
import os
import re
import stat
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ragloop.core.beir_corpus import CorpusRecord, corpus_lines, corpus_record
from ragloop.core.errors import DocumentError, InvalidInputError, UnsupportedFormatError
from ragloop.ingest.cleaning import bom_encoding, clean_text, looks_binary
from ragloop.ingest.sections import Section, atx_heading, find_sections, markdown_sections


@dataclass(frozen=True)
class LoadedDocument:
    """A document ready for chunking; ``sections`` maps its headings (offsets into ``text``).

    ``warnings`` are one-line notes from the parser about a file it could still read (pypdf's
    repairs of a damaged PDF, for example).
    """

    id: str
    path: str
    source: str
    title: str
    text: str
    format: str
    size_bytes: int
    meta: dict[str, Any] = field(default_factory=dict)
    sections: tuple[Section, ...] = ()
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class LoadFailure:
    """A file or record that could not be loaded, and why (one line)."""

    name: str
    reason: str
    path: str = ""


Loaded = LoadedDocument | LoadFailure
Loader = Callable[[Path, bytes], Iterator[Loaded]]


def file_document_id(path: Path) -> str:
    """Stable id of a file's document: a hash of its absolute path."""
    return "f-" + hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:20]


def _decode(path: Path, data: bytes) -> str:
    codec = bom_encoding(data)
    if codec is not None:
        try:
            text = data.decode(codec)
        except UnicodeDecodeError as exc:
            raise DocumentError(
                f"not valid {codec.upper()} ({exc.reason} at offset {exc.start})"
            ) from None
        if not text.strip():
            raise DocumentError("empty file")
        return text
    if not data.strip():
        raise DocumentError("empty file")
    if looks_binary(data):
        raise DocumentError("binary content (NUL bytes), not a text file")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DocumentError(
            f"not valid UTF-8 (byte 0x{data[exc.start]:02x} at offset {exc.start})"
        ) from None


def _single(
    path: Path,
    data: bytes,
    fmt: str,
    text: str,
    title: str,
    headings: list[tuple[int, str]] | None = None,
    warnings: Sequence[str] = (),
) -> Iterator[Loaded]:
    text = clean_text(text)
    if not text:
        raise DocumentError("no text after extraction")
    # Sections are found in the cleaned text, so their offsets are the chunks' offsets.
    if headings is not None:
        sections = markdown_sections(text, only=headings, setext=False)
    else:
        sections = find_sections(text, fmt)
    yield LoadedDocument(
        id=file_document_id(path),
        path=str(path.resolve()),
        source=str(path),
        title=title.strip() or path.stem,
        text=text,
        format=fmt,
        size_bytes=len(data),
        sections=tuple(sections),
        warnings=tuple(warnings),
    )


_MD_H1 = re.compile(r"^#\s+(.+?)\s*#*\s*$", re.MULTILINE)


def load_text(path: Path, data: bytes) -> Iterator[Loaded]:
    """Plain text; the file name is the title."""
    yield from _single(path, data, "text", _decode(path, data), path.stem)


def load_markdown(path: Path, data: bytes) -> Iterator[Loaded]:
    """Markdown; the first level-one heading is the title."""
    text = _decode(path, data)
    m = _MD_H1.search(text)
    yield from _single(path, data, "markdown", text, m.group(1) if m else path.stem)


_RST_TITLE = re.compile(r"^(?:[=\-~^\"'`#*+]{3,}\n)?(\S.*)\n[=\-~^\"'`#*+]{3,}\s*$", re.MULTILINE)


def load_rst(path: Path, data: bytes) -> Iterator[Loaded]:
    """reStructuredText; the first underlined title is the title."""
    text = _decode(path, data)
    m = _RST_TITLE.search(text)
    yield from _single(path, data, "rst", text, m.group(1) if m else path.stem)


def html_to_markdownish(html: str) -> tuple[str, str]:
    """Visible text of an HTML page with headings marked ``#``, and the page title."""
    text, title, _ = _html_parts(html)
    return text, title


def _html_parts(html: str) -> tuple[str, str, list[tuple[int, str]]]:
    """Text with ``#`` headings, the page title, and the real headings as (level, title)."""
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(html, "html.parser")
    for tag in soup(["script", "style", "noscript", "template", "nav", "svg"]):
        tag.decompose()
    title = soup.title.get_text(" ", strip=True) if soup.title else ""
    if soup.title:
        soup.title.decompose()
    headings: list[tuple[int, str]] = []
    for h in soup.find_all(["h1", "h2", "h3", "h4", "h5", "h6"]):
        # One line, cleaned as the page text will be, so the heading is found again there.
        line = f"{'#' * int(h.name[1])} {' '.join(clean_text(h.get_text(' ')).split())}"
        found = atx_heading(line)
        if found:
            headings.append(found)
        h.replace_with(f"\n\n{line}\n\n")
    for tag in soup.find_all(["p", "div", "li", "tr", "br", "pre", "blockquote", "section"]):
        tag.insert_before("\n")
        tag.insert_after("\n")
    text = soup.get_text()
    text = re.sub(r"[ \t]+", " ", text)
    text = re.sub(r"\n[ \t]+", "\n", text)
    if not title:
        m = _MD_H1.search(text)
        title = m.group(1) if m else ""
    return text, title, headings


def load_html(path: Path, data: bytes) -> Iterator[Loaded]:
    """HTML: visible text, headings kept as markdown headings for the splitter."""
    text, title, headings = _html_parts(_decode(path, data))
    yield from _single(path, data, "html", text, title or path.stem, headings)


class _ThreadLogCapture(logging.Handler):
    """Keeps a logger's records in a list per capturing thread, off stderr.

    While any thread captures, the logger stops propagating; records of threads that are not
    capturing are handed to the root logger, as propagation would have done.
    """

    def __init__(self, logger_name: str) -> None:
        super().__init__(logging.DEBUG)
        self.logger_name = logger_name
        self._sinks: dict[int, list[str]] = {}
        self._guard = threading.Lock()
        self._propagate = True

    def emit(self, record: logging.LogRecord) -> None:
        sink = self._sinks.get(record.thread or 0)
        if sink is None:
            if self._propagate:
                logging.getLogger().handle(record)
            return
        try:
            message = record.getMessage()
        except (TypeError, ValueError):
            message = str(record.msg)
        line = " ".join(message.split())
        if line and line not in sink:
            sink.append(line)

    @contextmanager
    def captured(self) -> Iterator[list[str]]:
        """The messages this thread logs (deduplicated, one line each) until the block ends."""
        logger = logging.getLogger(self.logger_name)
        ident = threading.get_ident()
        sink: list[str] = []
        with self._guard:
            if not self._sinks:
                self._propagate = logger.propagate
                logger.addHandler(self)
                logger.propagate = False
            self._sinks[ident] = sink
        try:
            yield sink
        finally:
            with self._guard:
                del self._sinks[ident]
                if not self._sinks:
                    logger.removeHandler(self)
                    logger.propagate = self._propagate


# pypdf reports the repairs it makes to a damaged file through the "pypdf" loggers.
_PYPDF_LOG = _ThreadLogCapture("pypdf")


def load_pdf(path: Path, data: bytes) -> Iterator[Loaded]:
    """PDF text via pypdf; a truncated or damaged file is reported, not crashed on.

    What pypdf logs while reading the file becomes the document's ``warnings``.
    """
    import io

    from pypdf import PdfReader
    from pypdf.errors import PyPdfError

    if not data.startswith(b"%PDF"):
        raise DocumentError("not a PDF (missing %PDF header)")
    with _PYPDF_LOG.captured() as logged:
        try:
            reader = PdfReader(io.BytesIO(data), strict=False)
            pages = [page.extract_text() or "" for page in reader.pages]
            meta_title = (reader.metadata.title if reader.metadata else None) or ""
        except (PyPdfError, ValueError, KeyError, TypeError, AttributeError, OSError) as exc:
            raise DocumentError(f"corrupt PDF: {exc.__class__.__name__}: {exc}") from None
    text = "\n\n".join(p.strip() for p in pages if p.strip())
    if not text.strip():
        raise DocumentError("PDF has no extractable text (scanned images need OCR first)")
    yield from _single(path, data, "pdf", text, str(meta_title) or path.stem, warnings=logged)


def load_docx(path: Path, data: bytes) -> Iterator[Loaded]:
    """Word .docx: paragraphs in order, heading styles kept as markdown headings."""
    import io
    import zipfile

    import docx

    try:
        document = docx.Document(io.BytesIO(data))
    except (zipfile.BadZipFile, KeyError, ValueError) as exc:
        raise DocumentError(f"corrupt .docx: {exc}") from None
    lines, title = [], ""
    for para in document.paragraphs:
        style = (para.style.name if para.style is not None else "") or ""
        text = para.text.strip()
        if not text:
            continue
        if style.startswith("Heading") and style[7:].strip().isdigit():
            lines.append(f"{'#' * int(style[7:].strip())} {text}")
        elif style == "Title":
            title = title or text
            lines.append(f"# {text}")
        else:
            lines.append(text)
    title = title or (document.core_properties.title or "")
    yield from _single(path, data, "docx", "\n\n".join(lines), title or path.stem)


def _beir_document(
    path: Path, resolved: str, parsed: CorpusRecord | InvalidInputError, where: str
) -> Loaded:
    if isinstance(parsed, InvalidInputError):
        return LoadFailure(where, parsed.message, str(path))
    if not parsed.text.strip():
        return LoadFailure(f"{where} (_id {parsed.id})", "missing or empty text", str(path))
    return LoadedDocument(
        id=parsed.id,
        path=resolved,
        source=f"{path.name}#{parsed.id}",
        title=clean_text(parsed.title),
        text=clean_text(parsed.text),
        format="beir",
        size_bytes=len(parsed.text.encode()),
        meta=parsed.metadata,
    )


def load_beir(path: Path, data: bytes) -> Iterator[Loaded]:
    """A BEIR corpus: JSON lines (or a JSON array) of ``{_id, title, text}``, one document each.

    Records are parsed by ``core.beir_corpus``, as the eval datasets parse them.
    """
    raw = _decode(path, data)
    resolved = str(path.resolve())  # once per file: per record it was a third of a re-scan
    if raw.lstrip().startswith("["):
        try:
            items = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise DocumentError(f"invalid JSON at line {exc.lineno}: {exc.msg}") from None
        for i, obj in enumerate(items):
            try:
                parsed: CorpusRecord | InvalidInputError = corpus_record(obj)
            except InvalidInputError as exc:
                parsed = exc
            yield _beir_document(path, resolved, parsed, f"{path.name}[{i}]")
        return
    for lineno, parsed in corpus_lines(raw.splitlines()):
        yield _beir_document(path, resolved, parsed, f"{path.name}:{lineno}")


LOADERS: dict[str, Loader] = {
    ".txt": load_text,
    ".text": load_text,
    ".md": load_markdown,
    ".markdown": load_markdown,
    ".rst": load_rst,
    ".html": load_html,
    ".htm": load_html,
    ".pdf": load_pdf,
    ".docx": load_docx,
    ".jsonl": load_beir,
    ".json": load_beir,
}


def loader_for(path: Path) -> Loader:
    """The loader for a file's extension, or UnsupportedFormatError listing the known ones."""
    loader = LOADERS.get(path.suffix.lower())
    if loader is None:
        raise UnsupportedFormatError(
            f"unsupported file type {path.suffix or '(none)'!r}; supported: "
            + ", ".join(sorted(LOADERS))
        )
    return loader


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


def load_file(path: Path, max_bytes: int) -> Iterator[Loaded]:
    """Load every document in one file, turning any problem into a ``LoadFailure``."""
    name = str(path)
    try:
        loader = loader_for(path)
        data = _read_regular(path, max_bytes)
        yield from loader(path, data)
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
