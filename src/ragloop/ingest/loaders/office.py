"""Office documents: Word .docx (python-docx) and PowerPoint .pptx (python-pptx).

Both are zip archives: a file that is not one, or that would unpack past the limit, is refused
before the library reads it.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

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

if TYPE_CHECKING:
    from pptx.shapes.autoshape import Shape
    from pptx.shapes.base import BaseShape
    from pptx.slide import Slide


def load_docx(path: Path, data: bytes, options: LoadOptions = DEFAULT_OPTIONS) -> Iterator[Loaded]:
    """Word .docx: paragraphs in order, heading styles kept as markdown headings."""
    import docx

    check_zip(data, ".docx", options)
    try:
        document = docx.Document(io.BytesIO(data))
    except PARSE_ERRORS as exc:
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
    yield from single_document(path, data, "docx", "\n\n".join(lines), title or path.stem)


def load_pptx(path: Path, data: bytes, options: LoadOptions = DEFAULT_OPTIONS) -> Iterator[Loaded]:
    """PowerPoint .pptx: each slide a section under its title (``Slide N`` without one).

    A slide's text frames and tables are read in the slide's shape order, then its speaker
    notes. The title is the presentation's own, else the first slide's.
    """
    from pptx import Presentation

    check_zip(data, ".pptx", options)
    outline = Outline()
    first_title = ""
    try:
        deck = Presentation(io.BytesIO(data))
        for n, slide in enumerate(deck.slides, start=1):
            heading, blocks = _slide(slide)
            first_title = first_title or (heading if n == 1 else "")
            if not heading and not blocks:
                continue
            outline.heading(1, heading or f"Slide {n}")
            for block in blocks:
                outline.add(block)
        title = deck.core_properties.title or first_title
    except PARSE_ERRORS as exc:
        raise parse_error(".pptx", exc) from None
    if not outline.parts:
        raise DocumentError("no text on any slide")
    yield from single_document(
        path, data, "pptx", outline.text(), title or path.stem, outline.headings
    )


def _slide(slide: Slide) -> tuple[str, list[str]]:
    """A slide's title (one line, may be empty) and its blocks of text."""
    title_shape = slide.shapes.title
    title = ""
    if title_shape is not None and title_shape.has_text_frame:
        title = one_line(_frame_text(title_shape))
    skip = title_shape.shape_id if title_shape is not None else None
    blocks = [b for b in _shape_texts(slide.shapes, skip) if b.strip()]
    if slide.has_notes_slide:
        notes = slide.notes_slide.notes_text_frame
        if notes is not None and notes.text.strip():
            blocks.append(notes.text.replace("\v", "\n"))
    return title, blocks


def _frame_text(shape: Shape) -> str:
    # A line break inside a paragraph reads as a vertical tab, which cleaning would drop.
    return str(shape.text_frame.text).replace("\v", "\n")


def _shape_texts(shapes: Iterable[BaseShape], skip: int | None) -> Iterator[str]:
    """Text frames and tables in shape order, groups opened."""
    from pptx.shapes.autoshape import Shape
    from pptx.shapes.graphfrm import GraphicFrame
    from pptx.shapes.group import GroupShape

    for shape in shapes:
        if shape.shape_id == skip:
            continue
        if isinstance(shape, GroupShape):
            yield from _shape_texts(shape.shapes, skip)
        elif isinstance(shape, Shape) and shape.has_text_frame:
            yield _frame_text(shape)
        elif isinstance(shape, GraphicFrame) and shape.has_table:
            rows = shape.table.rows
            yield "\n".join(" | ".join(one_line(cell.text) for cell in row.cells) for row in rows)
