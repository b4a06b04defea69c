"""File discovery and loaders: txt, md, rst, html, pdf, docx, and BEIR json/jsonl corpora.

Each loader turns one file into documents (a BEIR corpus gives one per line). A problem with a
file or a record is reported as a ``LoadFailure`` naming it, with a one-line reason; the batch
goes on.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ragloop.core.beir_corpus import CorpusRecord, corpus_lines, corpus_record
from ragloop.core.errors import DocumentError, InvalidInputError, UnsupportedFormatError
from ragloop.ingest.cleaning import clean_text, looks_binary
from ragloop.ingest.sections import Section, atx_heading, find_sections, markdown_sections


@dataclass(frozen=True)
class LoadedDocument:
    """A document ready for chunking; ``sections`` maps its headings (offsets into ``text``)."""

    id: str
    path: str
    source: str
    title: str
    text: str
    format: str
    size_bytes: int
    meta: dict[str, Any] = field(default_factory=dict)
    sections: tuple[Section, ...] = ()


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


def load_pdf(path: Path, data: bytes) -> Iterator[Loaded]:
    """PDF text via pypdf; a truncated or damaged file is reported, not crashed on."""
    import io

    from pypdf import PdfReader
    from pypdf.errors import PyPdfError

    if not data.startswith(b"%PDF"):
        raise DocumentError("not a PDF (missing %PDF header)")
    try:
        reader = PdfReader(io.BytesIO(data), strict=False)
        pages = [page.extract_text() or "" for page in reader.pages]
        meta_title = (reader.metadata.title if reader.metadata else None) or ""
    except (PyPdfError, ValueError, KeyError, TypeError, AttributeError, OSError) as exc:
        raise DocumentError(f"corrupt PDF: {exc.__class__.__name__}: {exc}") from None
    text = "\n\n".join(p.strip() for p in pages if p.strip())
    if not text.strip():
        raise DocumentError("PDF has no extractable text (scanned images need OCR first)")
    yield from _single(path, data, "pdf", text, str(meta_title) or path.stem)


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


def load_file(path: Path, max_bytes: int) -> Iterator[Loaded]:
    """Load every document in one file, turning any problem into a ``LoadFailure``."""
    name = str(path)
    try:
        loader = loader_for(path)
        size = path.stat().st_size
        if size > max_bytes:
            # RAGLOOP_MAX_FILE_MB counts MiB; bytes say exactly how far over the file is
            # (in rounded MB a file just over 50 MiB read "52.4 MB is over the 52.4 MB limit").
            raise DocumentError(
                f"{size} bytes is over the {max_bytes / 2**20:g} MiB limit ({max_bytes} bytes, "
                "RAGLOOP_MAX_FILE_MB)"
            )
        data = path.read_bytes()
        yield from loader(path, data)
    except (DocumentError, UnsupportedFormatError) as exc:
        yield LoadFailure(name, exc.message, str(path))
    except OSError as exc:
        yield LoadFailure(name, f"cannot read: {exc.strerror or exc}", str(path))
    except RecursionError:
        yield LoadFailure(name, "document too deeply nested to parse", str(path))


def discover(
    paths: Sequence[Path], include: Sequence[str] = (), exclude: Sequence[str] = ()
) -> tuple[list[Path], list[LoadFailure]]:
    """Files to ingest under ``paths`` (directories recursively), filtered by glob patterns.

    In directories, only files with a known extension are taken (a README without one is not an
    error); a file named explicitly is always tried, so its problem gets reported.
    """
    found: list[Path] = []
    missing: list[LoadFailure] = []
    for root in paths:
        if root.is_file():
            found.append(root)
        elif root.is_dir():
            for p in sorted(root.rglob("*")):
                if not p.is_file() or p.suffix.lower() not in LOADERS:
                    continue
                if any(part.startswith(".") for part in p.relative_to(root).parts):
                    continue  # hidden files and folders (.git, .venv) are never documents
                rel = str(p.relative_to(root))
                if include and not any(_match(rel, pat) for pat in include):
                    continue
                if any(_match(rel, pat) for pat in exclude):
                    continue
                found.append(p)
        else:
            missing.append(LoadFailure(str(root), "no such file or directory", str(root)))
    return list(dict.fromkeys(found)), missing


def _match(rel: str, pattern: str) -> bool:
    return fnmatch.fnmatch(rel, pattern) or fnmatch.fnmatch(Path(rel).name, pattern)
