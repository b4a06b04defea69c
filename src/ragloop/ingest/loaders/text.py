"""Text decoding, and the loaders of plain text, Markdown and reStructuredText."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

from ragloop.core.errors import DocumentError
from ragloop.ingest.cleaning import bom_encoding, looks_binary
from ragloop.ingest.loaders.base import DEFAULT_OPTIONS, Loaded, LoadOptions, single_document


def decode_text(path: Path, data: bytes) -> str:
    """A text file's content: UTF-8, or UTF-16/32 behind a byte-order mark.

    Empty, binary (NUL bytes) and undecodable files raise DocumentError with the offset.
    """
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


MD_H1 = re.compile(r"^#\s+(.+?)\s*#*\s*$", re.MULTILINE)
_RST_TITLE = re.compile(r"^(?:[=\-~^\"'`#*+]{3,}\n)?(\S.*)\n[=\-~^\"'`#*+]{3,}\s*$", re.MULTILINE)


def load_text(path: Path, data: bytes, options: LoadOptions = DEFAULT_OPTIONS) -> Iterator[Loaded]:
    """Plain text; the file name is the title."""
    yield from single_document(path, data, "text", decode_text(path, data), path.stem)


def load_markdown(
    path: Path, data: bytes, options: LoadOptions = DEFAULT_OPTIONS
) -> Iterator[Loaded]:
    """Markdown; the first level-one heading is the title."""
    text = decode_text(path, data)
    m = MD_H1.search(text)
    yield from single_document(path, data, "markdown", text, m.group(1) if m else path.stem)


def load_rst(path: Path, data: bytes, options: LoadOptions = DEFAULT_OPTIONS) -> Iterator[Loaded]:
    """reStructuredText; the first underlined title is the title."""
    text = decode_text(path, data)
    m = _RST_TITLE.search(text)
    yield from single_document(path, data, "rst", text, m.group(1) if m else path.stem)
