"""Document structure for the chunker: where each section starts and its heading path.

Loaders find the sections of the text they hand over (offsets into the cleaned text), so the
chunker can keep a heading with its section's text and give every chunk its heading path as a
title. Markdown (ATX and setext headings, fenced code skipped), reStructuredText (underlined and
overlined titles, levels in order of first appearance as docutils assigns them) and the
Markdown-like text made from HTML and .docx (``#`` headings only) are understood.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Section:
    """A span of a document's text under one heading.

    ``path`` holds the headings from the outermost down to this section's own (empty for text
    before the first heading); ``start`` is where the heading begins, ``body`` where its text
    begins (after the heading and its underline) and ``end`` where the next section begins.
    """

    path: tuple[str, ...]
    start: int
    body: int
    end: int


_ATX = re.compile(r"^ {0,3}(#{1,6})[ \t]+(.*?)(?:[ \t]+#+)?[ \t]*$")
_SETEXT = re.compile(r"^ {0,3}(=+|-+)[ \t]*$")
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
_NOT_SETEXT_TEXT = re.compile(r"^(?: {4}|\t| {0,3}(?:[-*+>]|\d+[.)])(?:\s|$)|\s*$)")
_RST_ADORNMENT = re.compile(r"^([=\-~^\"'`#*+:.!$%&,;/<>?@\\_|])\1{2,}[ \t]*$")


def atx_heading(line: str) -> tuple[int, str] | None:
    """(level, title) of a ``#`` heading line, or None."""
    m = _ATX.match(line)
    return (len(m.group(1)), m.group(2).strip()) if m and m.group(2).strip() else None


def _lines(text: str) -> list[tuple[int, str]]:
    """Each line with its start offset."""
    out, pos = [], 0
    for line in text.split("\n"):
        out.append((pos, line))
        pos += len(line) + 1
    return out


def _build(text: str, headings: Iterable[tuple[int, int, int, str]]) -> list[Section]:
    """Sections from (start, body, level, title) headings in document order."""
    found = list(headings)
    sections: list[Section] = []
    first = found[0][0] if found else len(text)
    if text[:first].strip():
        sections.append(Section((), 0, 0, first))
    stack: list[tuple[int, str]] = []
    for i, (start, body, level, title) in enumerate(found):
        while stack and stack[-1][0] >= level:
            stack.pop()
        stack.append((level, title))
        end = found[i + 1][0] if i + 1 < len(found) else len(text)
        sections.append(Section(tuple(t for _, t in stack), start, min(body, end), end))
    return sections


def markdown_sections(
    text: str, only: Sequence[tuple[int, str]] | None = None, setext: bool = True
) -> list[Section]:
    """Sections of Markdown text; headings inside fenced code blocks are not headings.

    ``only`` lists the real headings as (level, title) in order when the loader knows them
    (HTML ``<h1>``..``<h6>``): a line of page text that merely starts with ``#`` is then not
    taken for one. ``setext`` also reads underlined (``===``/``---``) headings; text made from
    HTML or .docx marks its headings with ``#`` only.
    """
    lines = _lines(text)
    headings: list[tuple[int, int, int, str]] = []
    expected = list(only) if only is not None else None
    fence = ""
    for n, (pos, line) in enumerate(lines):
        m = _FENCE.match(line)
        if m:
            mark = m.group(1)
            if not fence:
                fence = mark
            elif mark[0] == fence[0] and len(mark) >= len(fence) and not line.strip()[len(mark) :]:
                fence = ""
            continue
        if fence:
            continue
        atx = atx_heading(line)
        if atx:
            if expected is not None:
                if atx not in expected:
                    continue  # page text that happens to start with "#"
                del expected[: expected.index(atx) + 1]
            headings.append((pos, pos + len(line), *atx))
            continue
        if setext and expected is None and n > 0 and _SETEXT.match(line):
            prev_pos, prev = lines[n - 1]
            taken = bool(headings) and headings[-1][0] == prev_pos
            one_line = n < 2 or not lines[n - 2][1].strip()  # a one-line paragraph only
            plain = not _NOT_SETEXT_TEXT.match(prev) and not _FENCE.match(prev)
            if one_line and not taken and plain:
                level = 1 if line.strip()[0] == "=" else 2
                headings.append((prev_pos, pos + len(line), level, prev.strip()))
    return _build(text, headings)


def rst_sections(text: str) -> list[Section]:
    """Sections of reStructuredText: a title line under (and optionally over) an adornment.

    As in docutils, each adornment style (character, with or without an overline) gets the
    next level the first time it appears.
    """
    lines = _lines(text)
    styles: list[tuple[str, bool]] = []
    headings: list[tuple[int, int, int, str]] = []
    n = 0
    while n < len(lines) - 1:
        pos, line = lines[n]
        title_at = n
        over = _RST_ADORNMENT.match(line)
        if over and n + 2 < len(lines):
            title_at = n + 1
        title = lines[title_at][1]
        under = _RST_ADORNMENT.match(lines[title_at + 1][1]) if title_at + 1 < len(lines) else None
        usable = (
            under is not None
            and title.strip()
            and not title[0].isspace()
            and not _RST_ADORNMENT.match(title)
            and (title_at == n or (over is not None and over.group(1) == under.group(1)))
            and (n == 0 or not lines[n - 1][1].strip())
        )
        if not usable or under is None:
            n += 1
            continue
        style = (under.group(1), title_at != n)
        if style not in styles:
            styles.append(style)
        end_pos, end_line = lines[title_at + 1]
        headings.append((pos, end_pos + len(end_line), styles.index(style) + 1, title.strip()))
        n = title_at + 2
    return _build(text, headings)


def find_sections(text: str, fmt: str) -> list[Section]:
    """Sections of a document in a format with headings; ``[]`` for formats without them."""
    if fmt == "markdown":
        return markdown_sections(text)
    if fmt in ("html", "docx"):
        return markdown_sections(text, setext=False)
    if fmt == "rst":
        return rst_sections(text)
    return []
