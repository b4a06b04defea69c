"""EPUB books (ebooklib): each chapter a section, its HTML read as the HTML loader reads pages."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ragloop.core.errors import DocumentError
from ragloop.ingest.cleaning import one_line
from ragloop.ingest.loaders.base import (
    DEFAULT_OPTIONS,
    PARSE_ERRORS,
    Loaded,
    LoadOptions,
    Outline,
    check_zip,
    parse_error,
    single_document,
)
from ragloop.ingest.loaders.html import html_parts


def load_epub(path: Path, data: bytes, options: LoadOptions = DEFAULT_OPTIONS) -> Iterator[Loaded]:
    """EPUB: the documents of the reading order (spine), each a section under its title.

    A chapter's title is its table-of-contents entry, else its first heading, else ``Chapter
    N``; its own headings become subsections. The title is the book's (Dublin Core) title.
    """
    import ebooklib
    from ebooklib import epub

    check_zip(data, ".epub", options)
    outline = Outline()
    try:
        # ignore_ncx: the EPUB 3 navigation document is preferred; an EPUB 2 NCX still serves.
        book = epub.read_epub(io.BytesIO(data), {"ignore_ncx": True})
        titles = _toc_titles(book.toc)
        meta = book.get_metadata("DC", "title")
        book_title = one_line(str(meta[0][0])) if meta and meta[0][0] else ""
        chapter = 0
        for idref, *_ in book.spine:
            item = book.get_item_with_id(idref)
            if item is None or item.get_type() != ebooklib.ITEM_DOCUMENT:
                continue  # the navigation document, or a dangling reference
            name = item.get_name()
            title = titles.get(name, "") or _title_in(item.get_content(), book_title)
            text, _, headings = html_parts(item.get_content(), drop_heading=title, top_level=2)
            if not text.strip():
                continue
            chapter += 1
            outline.heading(1, title or f"Chapter {chapter}")
            outline.add(text, headings)
    except epub.EpubException as exc:
        raise DocumentError(f"corrupt .epub: {exc.msg}") from None
    except PARSE_ERRORS as exc:
        raise parse_error(".epub", exc) from None
    if not outline.has_text:
        raise DocumentError("no chapter text in the book")
    yield from single_document(
        path, data, "epub", outline.text(), book_title or path.stem, outline.headings
    )


def _toc_titles(toc: Any) -> dict[str, str]:
    """Chapter file name -> its first table-of-contents title (entries may nest)."""
    out: dict[str, str] = {}
    pending = list(toc)
    while pending:
        entry = pending.pop(0)
        if isinstance(entry, tuple | list):
            pending[:0] = [entry[0], *entry[1]] if len(entry) == 2 else list(entry)
            continue
        href, title = getattr(entry, "href", None), getattr(entry, "title", None)
        if href and title:
            out.setdefault(str(href).split("#", 1)[0], one_line(str(title)))
    return out


def _title_in(html: bytes, book_title: str) -> str:
    """A chapter's first heading, else its ``<title>`` unless that is the book's."""
    _, page_title, headings = html_parts(html)
    if headings:
        return headings[0][1]
    page_title = one_line(page_title)
    return page_title if page_title != book_title else ""
