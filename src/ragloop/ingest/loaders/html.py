"""HTML pages: visible text with ``#`` headings (also used for EPUB chapters)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

from ragloop.ingest.cleaning import one_line
from ragloop.ingest.loaders.base import DEFAULT_OPTIONS, Loaded, LoadOptions, single_document
from ragloop.ingest.loaders.text import MD_H1, decode_text
from ragloop.ingest.sections import atx_heading

_DROPPED = ["script", "style", "noscript", "template", "nav", "svg"]
_BLOCKS = ["p", "div", "li", "tr", "br", "pre", "blockquote", "section"]


def html_to_markdownish(html: str) -> tuple[str, str]:
    """Visible text of an HTML page with headings marked ``#``, and the page title."""
    text, title, _ = html_parts(html)
    return text, title


def html_parts(
    html: str | bytes, *, drop_heading: str = "", top_level: int = 1
) -> tuple[str, str, list[tuple[int, str]]]:
    """Text with ``#`` headings, the page title, and the real headings as (level, title).

    Scripts, styles and navigation are dropped. For a page that becomes one section of a larger
    document (an EPUB chapter): a first heading equal to ``drop_heading`` is left out (the
    caller writes it), and heading levels move down so that none is above ``top_level``.
    Bytes are decoded as the page declares (an XML declaration or a meta charset).
    """
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(html, "html.parser")
    for tag in soup(_DROPPED):
        tag.decompose()
    title = soup.title.get_text(" ", strip=True) if soup.title else ""
    if soup.title:
        soup.title.decompose()
    tags = soup.find_all(["h1", "h2", "h3", "h4", "h5", "h6"])
    if drop_heading and tags and one_line(tags[0].get_text(" ")) == one_line(drop_heading):
        tags.pop(0).decompose()
    shift = max(0, top_level - min((int(h.name[1]) for h in tags), default=top_level))
    headings: list[tuple[int, str]] = []
    for h in tags:
        # One line, cleaned as the page text will be, so the heading is found again there.
        line = f"{'#' * min(6, int(h.name[1]) + shift)} {one_line(h.get_text(' '))}"
        found = atx_heading(line)
        if found:
            headings.append(found)
        h.replace_with(f"\n\n{line}\n\n")
    for tag in soup.find_all(_BLOCKS):
        tag.insert_before("\n")
        tag.insert_after("\n")
    text = soup.get_text()
    text = re.sub(r"[ \t]+", " ", text)
    text = re.sub(r"\n[ \t]+", "\n", text)
    if not title:
        m = MD_H1.search(text)
        title = m.group(1) if m else ""
    return text, title, headings


def load_html(path: Path, data: bytes, options: LoadOptions = DEFAULT_OPTIONS) -> Iterator[Loaded]:
    """HTML: visible text, headings kept as markdown headings for the splitter."""
    text, title, headings = html_parts(decode_text(path, data))
    yield from single_document(path, data, "html", text, title or path.stem, headings)
