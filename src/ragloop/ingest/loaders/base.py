"""What every loader shares: the documents and failures it yields, its options, and helpers.

A loader turns one file's bytes into documents. It raises ``DocumentError`` for a file it
cannot read at all, and yields a ``LoadFailure`` for a record it skips while the rest of the
file loads. Formats with structure hand their headings over as ``#`` lines (``Outline``), so
the sections the chunker keeps together are found in the cleaned text as for Markdown.
"""

from __future__ import annotations

import hashlib
import io
import re
import zipfile
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from ragloop.core.errors import DocumentError
from ragloop.ingest.cleaning import clean_text, one_line
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


@dataclass(frozen=True)
class LoadOptions:
    """How files are read.

    ``json_text_field``: the field of a plain JSON/JSONL record that holds its text.
    ``max_records``: rows of a CSV or spreadsheet, or records of a plain JSON file, per file.
    ``max_chars``: characters of text made from such records, per file.
    ``max_unpacked_bytes``: what a .docx, .pptx, .xlsx or .epub (zip archives) may unpack to.
    """

    json_text_field: str = "text"
    max_records: int = 100_000
    max_chars: int = 64 * 2**20
    max_unpacked_bytes: int = 2**30


DEFAULT_OPTIONS = LoadOptions()


class Loader(Protocol):
    """Reads one file's bytes into documents (and failures of single records)."""

    def __call__(
        self, path: Path, data: bytes, options: LoadOptions = ..., /
    ) -> Iterator[Loaded]: ...


# What a parser may raise on a damaged file (a truncated archive, broken XML, a missing part).
PARSE_ERRORS: tuple[type[BaseException], ...] = (
    zipfile.BadZipFile,
    zipfile.LargeZipFile,
    zlib.error,
    EOFError,
    KeyError,
    IndexError,
    ValueError,
    TypeError,
    AttributeError,
    SyntaxError,  # lxml's XMLSyntaxError
    OSError,
)


_STREAM = re.compile(r"(?:file )?'?<_io\.BytesIO object at 0x[0-9a-fA-F]+>'?")


def parse_error(kind: str, exc: BaseException) -> DocumentError:
    """``corrupt .pptx: BadZipFile: ...`` on one line."""
    detail = " ".join(str(exc).split()) or "unreadable"
    # Libraries name the stream they were given; the file's own name is in the report already.
    detail = _STREAM.sub("the file", detail)
    return DocumentError(f"corrupt {kind}: {exc.__class__.__name__}: {detail}")


def check_zip(data: bytes, kind: str, options: LoadOptions) -> None:
    """Refuse bytes that are not a zip archive, or that would unpack past the limit."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            unpacked = sum(info.file_size for info in archive.infolist())
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, OSError, EOFError) as exc:
        raise DocumentError(f"corrupt {kind}: not a readable zip archive ({exc})") from None
    if unpacked > options.max_unpacked_bytes:
        raise DocumentError(
            f"{kind} unpacks to {unpacked} bytes, over the limit of "
            f"{options.max_unpacked_bytes} bytes"
        )


def file_document_id(path: Path) -> str:
    """Stable id of a file's document: a hash of its absolute path."""
    return "f-" + hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:20]


def single_document(
    path: Path,
    data: bytes,
    fmt: str,
    text: str,
    title: str,
    headings: list[tuple[int, str]] | None = None,
    warnings: Sequence[str] = (),
) -> Iterator[Loaded]:
    """The one document of a file; ``headings`` lists its real ``#`` headings in order."""
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


class Outline:
    """A document's text built part by part, with ``#`` headings for its sections.

    Parts are separated by blank lines; ``headings`` is what ``single_document`` needs to find
    the sections again, so only these lines count as headings (not text that starts with #).
    """

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.headings: list[tuple[int, str]] = []
        self.blocks = 0

    def heading(self, level: int, title: str) -> None:
        """A heading line; one with no text after cleaning is left out."""
        line = f"{'#' * max(1, min(level, 6))} {one_line(title)}"
        found = atx_heading(line)
        if found:
            self.headings.append(found)
            self.parts.append(line)

    def add(self, text: str, headings: Sequence[tuple[int, str]] = ()) -> None:
        """A block of text (blank blocks are dropped), with the ``#`` headings written in it."""
        if text.strip():
            self.parts.append(text.strip())
            self.headings += headings
            self.blocks += 1

    @property
    def has_text(self) -> bool:
        """Whether anything besides headings was added."""
        return self.blocks > 0

    def text(self) -> str:
        """The whole text, parts separated by blank lines."""
        return "\n\n".join(self.parts)


class RecordBudget:
    """Counts the records and characters a file yields against the per-file limits."""

    def __init__(self, options: LoadOptions) -> None:
        self.options = options
        self.records = 0
        self.chars = 0

    def take(self, text: str) -> None:
        """Count one record; DocumentError once a limit is passed."""
        self.records += 1
        self.chars += len(text)
        limit = self.options.max_records
        if self.records > limit:
            raise DocumentError(f"more than {limit} records (rows); {limit} is the limit per file")
        if self.chars > self.options.max_chars:
            raise DocumentError(
                f"records make more than {self.options.max_chars} characters of text, "
                "the limit per file"
            )
